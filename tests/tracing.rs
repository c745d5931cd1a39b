//! OpenTelemetry traces: a real OTLP receiver (HTTP/protobuf and gRPC, decoding the
//! protobuf export) gets banyan's spans with the right parent/child links for a
//! forwarded, a retried, a fallen-back and a shadowed request; a backend sees the
//! `traceparent` banyan sent, in the client's trace; the access log names the same trace.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

type Spans = Arc<Mutex<Vec<Span>>>;

fn keep(spans: &Spans, request: ExportTraceServiceRequest) {
    let mut all = spans.lock().unwrap();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            all.extend(scope.spans);
        }
    }
}

/// An OTLP/HTTP receiver: POST /v1/traces with a protobuf body.
async fn http_receiver() -> (SocketAddr, Spans) {
    use http_body_util::BodyExt;
    let spans: Spans = Arc::default();
    let kept = spans.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/v1/traces");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            keep(&kept, ExportTraceServiceRequest::decode(body).unwrap());
                            let answer = ExportTraceServiceResponse::default().encode_to_vec();
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/x-protobuf")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(answer)))
                                    .unwrap(),
                            )
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (addr, spans)
}

struct GrpcReceiver(Spans);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver.
async fn grpc_receiver() -> (SocketAddr, Spans) {
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(GrpcReceiver(spans.clone()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    (addr, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.clone()?.value)
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attribute(span, key)? {
        AnyValue::StringValue(s) => Some(s),
        other => Some(format!("{other:?}")),
    }
}

fn flag(span: &Span, key: &str) -> bool {
    matches!(attribute(span, key), Some(AnyValue::BoolValue(true)))
}

/// The spans of one trace, once `n` of them have arrived.
async fn trace_of(spans: &Spans, trace: &str, n: usize) -> Vec<Span> {
    let of_trace = || {
        spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| hex(&s.trace_id) == trace)
            .cloned()
            .collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(15), || async { of_trace().len() >= n }).await;
    of_trace()
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn config(
    collector: &str,
    protocol: &str,
    new: &Backend,
    legacy: &Backend,
    dead: SocketAddr,
    log: &std::path::Path,
) -> String {
    format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{legacy}"]
[upstreams.new]
endpoints = ["{new}"]
[upstreams.flaky]
endpoints = ["http://{dead}", "{new}"]
retries = 1
connect_timeout = "300ms"
[upstreams.down]
endpoints = ["http://{dead}"]
connect_timeout = "300ms"

[[routes]]
name = "fwd"
match = {{ path = {{ prefix = "/fwd/" }} }}
action = "forward"
upstream = "new"

[[routes]]
name = "retry"
match = {{ path = {{ prefix = "/retry/" }} }}
action = "forward"
upstream = "flaky"

[[routes]]
name = "fb"
match = {{ path = {{ prefix = "/fb/" }} }}
action = "forward"
upstream = "down"
fallback = "legacy"

[[routes]]
name = "sh"
match = {{ path = {{ prefix = "/sh/" }} }}
action = "shadow"
upstream = "legacy"
shadow = {{ to = "new" }}

[tracing]
endpoint = "{collector}"
protocol = "{protocol}"

[access_log]
path = "{log}"
"#,
        legacy = legacy.url(),
        new = new.url(),
        log = log.display(),
    )
}

/// One banyan process (the batch exporter's interval is shortened through the SDK's
/// standard `OTEL_BSP_SCHEDULE_DELAY`), the spans of every kind of request checked.
fn spans_link_up(protocol: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (collector, spans) = rt.block_on(async {
        match protocol {
            "grpc" => {
                let (addr, spans) = grpc_receiver().await;
                (format!("http://{addr}"), spans)
            }
            _ => {
                let (addr, spans) = http_receiver().await;
                (format!("http://{addr}/v1/traces"), spans)
            }
        }
    });
    let new = rt.block_on(Backend::start("new"));
    let legacy = rt.block_on(Backend::start("legacy"));
    let dead = rt.block_on(dead_addr());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let p = Process::start_with_env(
        &config(&collector, protocol, &new, &legacy, dead, &log),
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let proxy = p.proxy_addr;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");

    // Forwarded, in the client's trace.
    let got = rt.block_on(get(
        proxy,
        "/fwd/1",
        &[("traceparent", &traceparent), ("tracestate", "vendor=abc")],
    ));
    assert_eq!(got.status, 200);
    let fwd = rt.block_on(trace_of(&spans, CLIENT_TRACE, 2));
    let server = named(&fwd, "GET fwd");
    assert_eq!(server.len(), 1, "{fwd:#?}");
    let server = server[0];
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(server.kind, 2, "a server span");
    assert_eq!(
        text(server, "http.response.status_code").as_deref(),
        Some("IntValue(200)")
    );
    let attempt = named(&fwd, "banyan upstream")[0];
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(attempt.kind, 3, "a client span");
    assert_eq!(text(attempt, "banyan.upstream").as_deref(), Some("new"));
    // The backend saw the attempt's span as its parent, in the client's trace.
    let seen = new.seen.lock().unwrap().last().unwrap().headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        seen,
        format!("00-{CLIENT_TRACE}-{}-01", hex(&attempt.span_id))
    );
    let state = new.seen.lock().unwrap().last().unwrap().headers["tracestate"].clone();
    assert_eq!(state, "vendor=abc", "tracestate goes on with the trace");

    // Retried: two attempts under one server span, the second marked as a retry.
    let mut retried = None;
    for i in 0..4 {
        let got = rt.block_on(get(proxy, &format!("/retry/{i}"), &[]));
        assert_eq!(got.status, 200);
        let id = rt.block_on(eventually(Duration::from_secs(15), || async {
            spans
                .lock()
                .unwrap()
                .iter()
                .any(|s| flag(s, "banyan.retry"))
        }));
        if id {
            retried = spans
                .lock()
                .unwrap()
                .iter()
                .find(|s| flag(s, "banyan.retry"))
                .cloned();
            break;
        }
    }
    let retry = retried.expect("one of four requests to a pool with a dead endpoint is retried");
    let trace = hex(&retry.trace_id);
    let all = rt.block_on(trace_of(&spans, &trace, 3));
    let server = named(&all, "GET retry")[0];
    let attempts = named(&all, "banyan upstream");
    assert_eq!(attempts.len(), 2, "{all:#?}");
    assert!(attempts.iter().all(|a| a.parent_span_id == server.span_id));
    assert!(
        attempts
            .iter()
            .any(|a| a.status.as_ref().is_some_and(|s| s.code == 2)),
        "the failed attempt is an error"
    );

    // Fallen back: the attempt to the dead service, then one to legacy marked fallback.
    assert_eq!(rt.block_on(get(proxy, "/fb/1", &[])).status, 200);
    let fb_server = rt.block_on(async {
        eventually(Duration::from_secs(15), || async {
            spans.lock().unwrap().iter().any(|s| s.name == "GET fb")
        })
        .await;
        spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == "GET fb")
            .cloned()
            .unwrap()
    });
    let all = rt.block_on(trace_of(&spans, &hex(&fb_server.trace_id), 3));
    let attempts = named(&all, "banyan upstream");
    let (to_legacy, to_down): (Vec<&&Span>, Vec<&&Span>) = attempts
        .iter()
        .partition(|a| text(a, "banyan.upstream").as_deref() == Some("legacy"));
    assert_eq!(to_legacy.len(), 1, "{all:#?}");
    assert!(flag(to_legacy[0], "banyan.fallback"));
    // The dead service's attempts (its retry too) failed, and were not the fallback.
    assert!(!to_down.is_empty());
    assert!(to_down
        .iter()
        .all(|a| !flag(a, "banyan.fallback") && a.status.as_ref().is_some_and(|s| s.code == 2)));
    assert!(attempts
        .iter()
        .all(|a| a.parent_span_id == fb_server.span_id));

    // Shadowed: the copy's span and the comparison's, under the request's.
    assert_eq!(rt.block_on(get(proxy, "/sh/1", &[])).status, 200);
    let sh_server = rt.block_on(async {
        eventually(Duration::from_secs(15), || async {
            spans.lock().unwrap().iter().any(|s| s.name == "GET sh")
        })
        .await;
        spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == "GET sh")
            .cloned()
            .unwrap()
    });
    let trace = hex(&sh_server.trace_id);
    let all = rt.block_on(trace_of(&spans, &trace, 4));
    let shadow = named(&all, "banyan shadow");
    assert_eq!(shadow.len(), 1, "{all:#?}");
    let shadow = shadow[0];
    assert_eq!(shadow.parent_span_id, sh_server.span_id);
    assert_eq!(text(shadow, "banyan.shadow.to").as_deref(), Some("new"));
    assert_eq!(
        text(shadow, "banyan.shadow.outcome").as_deref(),
        Some("mismatch")
    );
    let compare = named(&all, "banyan compare")[0];
    assert_eq!(compare.parent_span_id, shadow.span_id);
    // The copy went to `new` naming the shadow span as its parent.
    let copy = new
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.uri.path() == "/sh/1")
        .map(|s| s.headers["traceparent"].to_str().unwrap().to_string())
        .unwrap();
    assert!(copy.contains(&hex(&shadow.span_id)), "{copy}");

    // The access log names the same traces (its writer flushes every 100 ms).
    let shadowed_line = format!("\"trace_id\":\"{trace}\"");
    rt.block_on(eventually(Duration::from_secs(10), || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&shadowed_line)
    }));
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(
        lines.contains(&format!("\"trace_id\":\"{CLIENT_TRACE}\"")),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("\"trace_id\":\"{trace}\"")),
        "{lines}"
    );
}

#[test]
fn spans_link_up_over_otlp_http() {
    spans_link_up("http/protobuf");
}

#[test]
fn spans_link_up_over_otlp_grpc() {
    spans_link_up("grpc");
}

#[test]
fn a_collector_that_is_down_costs_the_client_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let new = rt.block_on(Backend::start("new"));
    let dead = rt.block_on(dead_addr());
    let text = format!(
        r#"default = "new"
[upstreams.new]
endpoints = ["{}"]
[tracing]
endpoint = "http://{dead}/v1/traces"
"#,
        new.url()
    );
    let p = Process::start_with_env(&text, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]);
    for i in 0..200 {
        let got = rt.block_on(get(p.proxy_addr, &format!("/x/{i}"), &[]));
        assert_eq!(got.status, 200);
    }
    // Without a client's traceparent banyan starts the trace: the backend is in it.
    let seen = new.seen.lock().unwrap();
    let sent = seen.last().unwrap().headers["traceparent"]
        .to_str()
        .unwrap();
    assert!(
        sent.starts_with("00-") && sent.ends_with("-01") && sent.len() == 55,
        "{sent}"
    );
}

#[test]
fn sampling_follows_the_parent_and_the_percent_for_new_traces() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (collector, spans) = rt.block_on(http_receiver());
    let new = rt.block_on(Backend::start("new"));
    let text = format!(
        r#"default = "new"
[upstreams.new]
endpoints = ["{}"]
[tracing]
endpoint = "http://{collector}/v1/traces"
percent = 0
"#,
        new.url()
    );
    let p = Process::start_with_env(&text, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]);
    let sent = |headers: &[(&str, &str)]| {
        assert_eq!(rt.block_on(get(p.proxy_addr, "/x", headers)).status, 200);
        let seen = new.seen.lock().unwrap();
        seen.last().unwrap().headers["traceparent"]
            .to_str()
            .unwrap()
            .to_string()
    };
    // A new trace at percent = 0: continued upstream, not sampled, nothing exported.
    let unsampled_new = sent(&[]);
    assert!(unsampled_new.ends_with("-00"), "{unsampled_new}");
    // The client's sampled trace is sampled, whatever the percent.
    let sampled = sent(&[(
        "traceparent",
        &format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
    )]);
    assert!(sampled.starts_with(&format!("00-{CLIENT_TRACE}-")) && sampled.ends_with("-01"));
    // The client's unsampled trace stays unsampled.
    let other = "0af7651916cd43dd8448eb211c80319c";
    let unsampled = sent(&[("traceparent", &format!("00-{other}-b7ad6b7169203331-00"))]);
    assert!(unsampled.starts_with(&format!("00-{other}-")) && unsampled.ends_with("-00"));
    let exported = rt.block_on(trace_of(&spans, CLIENT_TRACE, 2));
    assert_eq!(exported.len(), 2, "{exported:#?}");
    // Time for the others to arrive, had they been exported.
    std::thread::sleep(Duration::from_millis(500));
    let all = spans.lock().unwrap();
    assert!(
        all.iter().all(|s| hex(&s.trace_id) == CLIENT_TRACE),
        "{all:#?}"
    );
}
