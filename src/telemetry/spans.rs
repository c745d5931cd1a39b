//! The spans of one request: the server span (continuing the client's `traceparent`, or
//! starting a trace), a client span per upstream attempt (each retry and fallback), and
//! the shadow copy's span with its comparison's. Each span sent upstream is named in
//! the `traceparent` banyan sends, so the upstream's spans hang under banyan's.

use crate::trace::context;
use http::{HeaderMap, HeaderValue, Method};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use std::str::FromStr;
use std::sync::Arc;

const TRACESTATE: &str = "tracestate";

/// One request's trace: its server span, and what its children need. One pointer wide:
/// the request's future and every attempt carry it, traced or not.
#[derive(Clone)]
pub struct RequestTrace(Arc<Traced>);

struct Traced {
    cx: Context,
    tracer: SdkTracer,
}

/// A span under the request's (an attempt, the shadow copy, the comparison).
pub struct ChildSpan {
    cx: Context,
    tracer: SdkTracer,
}

/// The client's trace, when its `traceparent` is valid (with its `tracestate`).
fn remote_parent(headers: &HeaderMap) -> Context {
    let Some(p) = context::parent(headers) else {
        return Context::new();
    };
    let state = headers
        .get(TRACESTATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let flags = if p.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let parent = SpanContext::new(
        TraceId::from_bytes(p.trace_id),
        SpanId::from_bytes(p.parent_id),
        flags,
        true,
        state,
    );
    Context::new().with_remote_span_context(parent)
}

/// `00-<trace id>-<span id>-<flags>` for the span of `cx`.
fn traceparent(cx: &Context) -> HeaderValue {
    let span = cx.span();
    let sc = span.span_context();
    let text = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl RequestTrace {
    /// The server span of a request with these headers: a child of the client's span
    /// when it sent a valid `traceparent` (sampled as it says), else a new trace
    /// (sampled by `tracing.percent`).
    pub fn begin(tracer: &SdkTracer, headers: &HeaderMap, method: &Method, path: &str) -> Self {
        let parent = remote_parent(headers);
        let span = tracer
            .span_builder(method.as_str().to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new("url.path", path.to_owned()),
            ])
            .start_with_context(tracer, &parent);
        RequestTrace(Arc::new(Traced {
            cx: parent.with_span(span),
            tracer: tracer.clone(),
        }))
    }

    pub fn trace_id(&self) -> [u8; 16] {
        self.0.cx.span().span_context().trace_id().to_bytes()
    }

    /// What routing decided: the span is named `GET <route>`.
    pub fn routed(&self, method: &Method, route: Option<&str>, stage: Option<&'static str>) {
        let span = self.0.cx.span();
        if let Some(route) = route {
            span.update_name(format!("{method} {route}"));
            span.set_attribute(KeyValue::new("banyan.route", route.to_owned()));
        }
        if let Some(stage) = stage {
            span.set_attribute(KeyValue::new("banyan.stage", stage));
        }
    }

    /// A span under the request's.
    pub fn child(
        &self,
        name: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> ChildSpan {
        child_of(&self.0.tracer, &self.0.cx, name, kind, attributes)
    }

    /// End the request's span with the status the client got.
    pub fn finish(&self, status: u16, upstream: Option<&str>, error: Option<&str>, bytes_out: u64) {
        let span = self.0.cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        span.set_attribute(KeyValue::new("http.response.body.size", bytes_out as i64));
        if let Some(u) = upstream {
            span.set_attribute(KeyValue::new("banyan.upstream", u.to_owned()));
        }
        if let Some(e) = error {
            span.set_attribute(KeyValue::new("error.type", e.to_owned()));
        }
        if status >= 500 {
            span.set_status(Status::error(error.unwrap_or("server error").to_owned()));
        }
        span.end();
    }
}

fn child_of(
    tracer: &SdkTracer,
    parent: &Context,
    name: &'static str,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
) -> ChildSpan {
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    ChildSpan {
        cx: parent.with_span(span),
        tracer: tracer.clone(),
    }
}

impl ChildSpan {
    /// The `traceparent` that names this span to the peer it calls.
    pub fn traceparent(&self) -> HeaderValue {
        traceparent(&self.cx)
    }

    pub fn set(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// A span under this one.
    pub fn child(
        &self,
        name: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> ChildSpan {
        child_of(&self.tracer, &self.cx, name, kind, attributes)
    }

    /// End it; an error marks it failed.
    pub fn end(self, error: Option<&str>) {
        let span = self.cx.span();
        if let Some(e) = error {
            span.set_attribute(KeyValue::new("error.type", e.to_owned()));
            span.set_status(Status::error(e.to_owned()));
        }
        span.end();
    }
}
