//! Shadow traffic: a copy of the request goes to the shadow upstream, and the two answers
//! are compared, off the request path. The request path only decides, takes permits
//! without waiting, attaches taps to the bodies, and spawns the task: nothing it does
//! waits on the shadow.

pub mod capture;
pub mod limits;
pub mod spec;
pub mod stats;
mod task;

use crate::metrics;
use crate::proxy::forward::Outgoing;
use crate::routing::split::bucket;
use crate::routing::{RequestView, UpstreamId};
use crate::snapshot::Snapshot;
use capture::Capture;
use http::HeaderValue;
use spec::ShadowSpec;
use std::sync::Arc;
use std::time::Instant;

/// The header every shadow request carries.
pub const SHADOW_HEADER: &str = "x-banyan-shadow";

/// The taps a shadowed request needs: on its body (unless it is empty or already
/// buffered) and on the primary's response.
pub struct Mirror {
    pub request: Option<Capture>,
    pub response: Capture,
}

/// Whether this request is shadowed (by route, method, side and sample).
pub fn wanted(spec: &ShadowSpec, upstream: UpstreamId, req: &RequestView<'_>) -> bool {
    if upstream == spec.to || !spec.shadows_method(req.method) {
        return false;
    }
    if spec.threshold >= crate::routing::split::BUCKETS {
        return true;
    }
    let b = match &spec.key {
        Some(key) => bucket(spec.salt, &key.value(req).0),
        None => rand::random_range(0..crate::routing::split::BUCKETS),
    };
    b < spec.threshold
}

/// Start shadowing a request that `wanted` chose: take the permits (or count it dropped),
/// spawn the task, and hand back the taps. `outgoing` is the request as the primary gets
/// it (rewritten); `empty_body` when there is no body to wait for.
pub fn begin(
    snap: &Arc<Snapshot>,
    route: usize,
    primary: UpstreamId,
    outgoing: &Outgoing,
    empty_body: bool,
    started: Instant,
) -> Option<Mirror> {
    let spec = snap.config.routes.routes()[route].shadow.clone()?;
    let name = &snap.config.routes.routes()[route].name;
    let Some(permits) = snap.shadow_limits.acquire(route) else {
        metrics::shadow_outcome(name, "dropped");
        return None;
    };
    let max_body = if spec.max_body == 0 {
        snap.config.shadow.max_body
    } else {
        spec.max_body
    };
    let mut shadow_req = outgoing.clone();
    shadow_req
        .headers
        .insert(SHADOW_HEADER, HeaderValue::from_static("1"));
    let (request, request_rx) = Capture::new(max_body);
    let request = if empty_body {
        request.finish_with(&bytes::Bytes::new());
        None
    } else {
        Some(request)
    };
    let (response, response_rx) = Capture::new(max_body);
    tokio::spawn(task::run(task::Job {
        snap: snap.clone(),
        route,
        spec,
        primary,
        shadow_request: shadow_req,
        primary_request: outgoing.clone(),
        request_body: request_rx,
        primary_response: response_rx,
        started,
        max_body,
        _permits: permits,
    }));
    Some(Mirror { request, response })
}
