//! The request's server span ends with its answer: when the body has been sent (its
//! bytes counted), or at once for an answer held in memory.

use super::error::ERROR_HEADER;
use crate::body::ResponseBody;
use crate::routing::UpstreamId;
use crate::snapshot::Snapshot;
use crate::telemetry::spans::RequestTrace;
use http::Response;
use http_body::Body as _;
use std::sync::Arc;

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
