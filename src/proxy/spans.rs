//! The request's server span: begun from the client's `traceparent`, named once the
//! request is routed, ended with its answer (when the body has been sent, its bytes
//! counted, or at once for an answer held in memory).

use super::error::ERROR_HEADER;
use crate::body::ResponseBody;
use crate::routing::{RouteId, UpstreamId};
use crate::snapshot::Snapshot;
use crate::telemetry::spans::RequestTrace;
use http::{Method, Request, Response};
use http_body::Body as _;
use std::sync::Arc;

/// The request's trace when banyan exports spans, and the id of the trace it is in, for
/// the access log and the log lines about it: banyan's own, else the one the client
/// named (looked for only when there is an access log to write it to).
pub fn begin<B>(snap: &Snapshot, req: &Request<B>) -> (Option<RequestTrace>, Option<[u8; 16]>) {
    let trace = snap
        .telemetry
        .as_ref()
        .map(|t| RequestTrace::begin(t.tracer(), req.headers(), req.method(), req.uri().path()));
    let trace_id = match &trace {
        Some(t) => Some(t.trace_id()),
        None if snap.access_log.is_some() => {
            crate::trace::context::parent(req.headers()).map(|p| p.trace_id)
        }
        None => None,
    };
    (trace, trace_id)
}

/// Name the span by its route, with the route's migration stage.
pub fn routed(trace: &RequestTrace, method: &Method, snap: &Snapshot, route: Option<RouteId>) {
    let stage = route
        .and_then(|id| snap.config.features(id).migration.as_ref())
        .map(|m| m.stage.label());
    trace.routed(method, route.map(|id| snap.live(Some(id)).name()), stage);
}

pub fn end_with_answer(
    trace: RequestTrace,
    snap: &Arc<Snapshot>,
    answered_by: Option<UpstreamId>,
    resp: &mut Response<ResponseBody>,
) {
    let status = resp.status().as_u16();
    let error = resp
        .headers()
        .get(ERROR_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let snap = snap.clone();
    let finish = move |bytes: u64| {
        let upstream = answered_by.map(|u| snap.pool(u).name());
        trace.finish(status, upstream, error.as_deref(), bytes);
    };
    match resp.body_mut() {
        http_body_util::Either::Left(tap) => tap.watch(move |_, bytes| finish(bytes)),
        http_body_util::Either::Right(full) => finish(full.size_hint().exact().unwrap_or(0)),
    }
}
