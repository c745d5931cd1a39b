//! Sending a prepared request to an upstream pool, and the fallback to legacy.

use super::error::ProxyError;
use crate::access::entry::trace_hex;
use crate::body;
use crate::telemetry::spans::{ChildSpan, RequestTrace};
use crate::trace::context::TRACEPARENT;
use crate::upstream::client::RequestBody;
use crate::upstream::failure::{describe, UpstreamFailure};
use crate::upstream::h1;
use crate::upstream::request::Outgoing;
use crate::upstream::{Pool, UpstreamBody};
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use smallvec::SmallVec;

/// Where a request went, for the access log and traces: the endpoint of its last
/// attempt, and whether an attempt before it failed and another endpoint was tried. With
/// the request's trace, each attempt gets a span and names it in `traceparent`.
#[derive(Default, Clone)]
pub struct Trail {
    pub endpoint: Option<usize>,
    pub retried: bool,
    pub trace: Option<RequestTrace>,
    /// The trace the request belongs to (banyan's, or the client's when banyan exports
    /// none), for the log lines about it.
    pub trace_id: Option<[u8; 16]>,
    /// The attempts now go to the route's fallback.
    falling_back: bool,
}

impl Trail {
    /// The attempt's span, named to the upstream in the request's `traceparent`.
    fn attempt_span(
        &self,
        pool: &Pool,
        index: usize,
        headers: &mut HeaderMap,
    ) -> Option<ChildSpan> {
        let trace = self.trace.as_ref()?;
        let endpoint = &pool.endpoints()[index].spec.authority;
        let span = trace.child(
            "banyan upstream",
            SpanKind::Client,
            vec![
                KeyValue::new("banyan.upstream", pool.name().to_owned()),
                KeyValue::new("server.address", endpoint.host().to_owned()),
                KeyValue::new("server.port", i64::from(endpoint.port_u16().unwrap_or(80))),
                KeyValue::new("banyan.retry", self.retried),
                KeyValue::new("banyan.fallback", self.falling_back),
            ],
        );
        headers.insert(TRACEPARENT, span.traceparent());
        Some(span)
    }
}

/// End an attempt's span with its status or its failure.
fn end_attempt(span: Option<ChildSpan>, outcome: Result<StatusCode, ProxyError>) {
    let Some(span) = span else { return };
    match outcome {
        Ok(status) => {
            span.set(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            span.end(is_gateway_failure(status).then_some("gateway_status"));
        }
        Err(e) => span.end(Some(e.cause())),
    }
}

/// A failed attempt, and whether it failed before the upstream could have acted on it.
struct Failure {
    error: ProxyError,
    /// The retry count's label, when another endpoint may be tried.
    retry: Option<&'static str>,
}

/// Send one request to one endpoint, and count the outcome for outlier detection: a
/// connection failure, a timeout or a gateway status (502, 503, 504) is a failure.
async fn attempt(
    pool: &Pool,
    index: usize,
    mut req: Request<RequestBody>,
    trail: &Trail,
) -> Result<Response<UpstreamBody>, Failure> {
    let span = trail.attempt_span(pool, index, req.headers_mut());
    match pool.client().request(req).await {
        Ok(resp) => {
            pool.record(index, is_gateway_failure(resp.status()));
            end_attempt(span, Ok(resp.status()));
            Ok(resp.map(UpstreamBody::Hyper))
        }
        Err(e) => {
            pool.record(index, true);
            let error = ProxyError::from_client(&e);
            log_failure(pool, index, &e, error, trail);
            end_attempt(span, Err(error));
            Err(Failure::new(error, e.is_connect()))
        }
    }
}

/// `attempt`, on banyan's own HTTP/1.1 client: the request's body is in memory.
async fn attempt_h1(
    pool: &Pool,
    client: &h1::Client,
    index: usize,
    outgoing: &mut Outgoing,
    body: &Bytes,
    trail: &Trail,
) -> Result<Response<UpstreamBody>, Failure> {
    if let Some(host) = outgoing.host_for(pool, index) {
        outgoing.headers.insert(header::HOST, host);
    }
    let span = trail.attempt_span(pool, index, &mut outgoing.headers);
    let req = h1::Request {
        method: &outgoing.method,
        target: &outgoing.path_and_query,
        headers: &outgoing.headers,
        body,
    };
    match client.send(index, &pool.endpoints()[index].spec, req).await {
        Ok(resp) => {
            pool.record(index, is_gateway_failure(resp.status()));
            end_attempt(span, Ok(resp.status()));
            Ok(resp.map(UpstreamBody::H1))
        }
        Err(e) => {
            pool.record(index, true);
            let error = ProxyError::from(UpstreamFailure::of_h1(&e));
            log_failure(pool, index, &e, error, trail);
            end_attempt(span, Err(error));
            Err(Failure::new(error, e.is_connect()))
        }
    }
}

/// Say why an attempt failed, with the whole cause ("client error (SendRequest)" alone
/// names none: a stream the upstream reset is further down the chain).
fn log_failure(
    pool: &Pool,
    index: usize,
    e: &(dyn std::error::Error + 'static),
    error: ProxyError,
    trail: &Trail,
) {
    let trace_id = trail.trace_id.as_ref().map(trace_hex);
    tracing::warn!(
        upstream = %pool.name(),
        endpoint = %pool.endpoints()[index].spec.authority,
        error = describe(e),
        cause = error.cause(),
        trace_id = trace_id.as_deref().unwrap_or("-"),
        "upstream request failed"
    );
}

/// banyan's own client carries the request: the upstream is one it can reach, and the
/// request asks for no protocol switch (tunnels need hyper's upgrade machinery).
fn h1_client<'a>(pool: &'a Pool, outgoing: &Outgoing) -> Option<&'a h1::Client> {
    let switching =
        outgoing.method == Method::CONNECT || outgoing.headers.contains_key(header::UPGRADE);
    pool.fast_client().filter(|_| !switching)
}

impl Failure {
    /// The retry count's label: a failure to connect (or a broken connection) may go to
    /// another endpoint; a timeout waiting for an answer may not.
    fn new(error: ProxyError, connecting: bool) -> Self {
        let retry = match error {
            ProxyError::UpstreamConnect => Some("connect_failed"),
            ProxyError::UpstreamTimeout if connecting => Some("connect_timeout"),
            ProxyError::UpstreamError => Some("connection_error"),
            _ => None,
        };
        Failure { error, retry }
    }
}

fn is_gateway_failure(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Send a request with a streamed body: one attempt, it cannot be replayed.
pub async fn send(
    pool: &Pool,
    outgoing: Outgoing,
    body: RequestBody,
    trail: &mut Trail,
) -> Result<Response<UpstreamBody>, ProxyError> {
    let index = pool.pick(&[]);
    trail.endpoint = Some(index);
    attempt(pool, index, outgoing.request_for(pool, index, body), trail)
        .await
        .map_err(|f| f.error)
}

/// Send a request whose body is in memory. An idempotent one that failed on its
/// connection is sent again to another endpoint, up to the upstream's `retries`.
pub async fn send_replayable(
    pool: &Pool,
    outgoing: Outgoing,
    body: Bytes,
    trail: &mut Trail,
) -> Result<Response<UpstreamBody>, ProxyError> {
    let retries = if is_idempotent(&outgoing.method) {
        pool.spec().retries as usize
    } else {
        0
    };
    let mut tried: SmallVec<[usize; 4]> = SmallVec::new();
    if let Some(client) = h1_client(pool, &outgoing) {
        let mut outgoing = outgoing;
        loop {
            let index = pool.pick(&tried);
            tried.push(index);
            trail.endpoint = Some(index);
            match attempt_h1(pool, client, index, &mut outgoing, &body, trail).await {
                Ok(resp) => return Ok(resp),
                Err(Failure {
                    retry: Some(reason),
                    ..
                }) if tried.len() <= retries => {
                    trail.retried = true;
                    crate::metrics::upstream_retry(pool.name(), reason)
                }
                Err(f) => return Err(f.error),
            }
        }
    }
    loop {
        let index = pool.pick(&tried);
        tried.push(index);
        trail.endpoint = Some(index);
        if tried.len() > retries {
            // The last attempt sends the request itself: only one that may be followed
            // by another needs a copy.
            let req = outgoing.request_for(pool, index, body::full(body));
            return attempt(pool, index, req, trail).await.map_err(|f| f.error);
        }
        let req = outgoing
            .clone()
            .request_for(pool, index, body::full(body.clone()));
        match attempt(pool, index, req, trail).await {
            Ok(resp) => return Ok(resp),
            Err(Failure {
                retry: Some(reason),
                ..
            }) => {
                trail.retried = true;
                crate::metrics::upstream_retry(pool.name(), reason)
            }
            Err(f) => return Err(f.error),
        }
    }
}

pub use crate::upstream::request::is_idempotent;

/// Why a first attempt should go to the fallback, if it should: the label of the count.
pub fn fallback_reason(
    result: &Result<Response<UpstreamBody>, ProxyError>,
) -> Option<&'static str> {
    match result {
        Err(ProxyError::UpstreamConnect) => Some("connect_failed"),
        Err(ProxyError::UpstreamTimeout) => Some("timeout"),
        Err(_) => None,
        Ok(resp) => match resp.status() {
            StatusCode::BAD_GATEWAY => Some("status_502"),
            StatusCode::SERVICE_UNAVAILABLE => Some("status_503"),
            StatusCode::GATEWAY_TIMEOUT => Some("status_504"),
            _ => None,
        },
    }
}

/// Try `primary` (with its retries), then `fallback` (with the request as the client
/// sent it and the same buffered body) when the first failed in a way that allows it.
/// Returns the result and whether the fallback answered.
pub async fn send_with_fallback(
    primary: &Pool,
    fallback: &Pool,
    outgoing: Outgoing,
    fallback_request: Outgoing,
    body: Bytes,
    trail: &mut Trail,
    mut count: impl FnMut(&'static str),
) -> (Result<Response<UpstreamBody>, ProxyError>, bool) {
    if primary.all_unhealthy() {
        count("unhealthy");
        trail.falling_back = true;
        return (
            send_replayable(fallback, fallback_request, body, trail).await,
            true,
        );
    }
    let result = send_replayable(primary, outgoing, body.clone(), trail).await;
    match fallback_reason(&result) {
        None => (result, false),
        Some(reason) => {
            count(reason);
            drop(result);
            trail.falling_back = true;
            (
                send_replayable(fallback, fallback_request, body, trail).await,
                true,
            )
        }
    }
}
