//! Shadow traffic: a copy of the request goes to the shadow upstream, and the two answers
//! are compared, off the request path. The request path only decides, takes permits
//! without waiting, attaches taps to the bodies, and spawns the task: nothing it does
//! waits on the shadow.

pub mod limits;
pub mod spec;
pub mod stats;
mod task;

use crate::body::tap::Capture;
use crate::config::ShadowSettings;
use crate::live::{RouteFigures, ShadowOutcome};
use crate::routing::split::bucket;
use crate::routing::{RequestView, RouteId, UpstreamId};
use crate::store::Store;
use crate::upstream::request::Outgoing;
use crate::upstream::Pool;
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

/// Where a copy of this request goes, if it is shadowed (by method, serving side and
/// sample): `to`, or `back` when `to` serves it.
pub fn target(
    spec: &ShadowSpec,
    upstream: UpstreamId,
    req: &RequestView<'_>,
) -> Option<UpstreamId> {
    let to = if upstream == spec.to {
        spec.back?
    } else {
        spec.to
    };
    if !spec.shadows_method(req.method) && !described_idempotent(spec, req) {
        return None;
    }
    if spec.threshold >= crate::routing::split::BUCKETS {
        return Some(to);
    }
    let b = match &spec.key {
        Some(key) => bucket(spec.salt, &key.value(req).0),
        None => rand::random_range(0..crate::routing::split::BUCKETS),
    };
    (b < spec.threshold).then_some(to)
}

/// A gRPC call the route's descriptor set says has no side effects (on a route for a
/// whole service; a route for one method has it in its methods already).
fn described_idempotent(spec: &ShadowSpec, req: &RequestView<'_>) -> bool {
    spec.rules
        .protobuf
        .as_ref()
        .is_some_and(|p| p.is_idempotent(req.path))
        && crate::grpc::is_grpc(req.headers)
}

/// What every shadow copy under one snapshot shares: the pools to send copies to, the
/// diff store, the `[shadow]` settings and the limits. Built with the snapshot, handed
/// to each copy whole (one reference count), so the shadow never reads the snapshot.
pub struct Env {
    /// Same order as the config's upstreams.
    pub pools: Vec<Arc<Pool>>,
    pub store: Option<Arc<Store>>,
    pub settings: ShadowSettings,
    pub limits: limits::ShadowLimits,
}

impl Env {
    pub fn pool(&self, id: UpstreamId) -> &Pool {
        &self.pools[id]
    }
}

/// Start shadowing a request to `to`, as `target` chose: take the permits (or count it
/// dropped), spawn the task, and hand back the taps. `outgoing` is the request as the
/// primary gets it (rewritten); `empty_body` when there is no body to wait for.
#[allow(clippy::too_many_arguments)]
pub fn begin(
    env: &Arc<Env>,
    route: RouteId,
    figures: &Arc<RouteFigures>,
    spec: &Arc<ShadowSpec>,
    primary: UpstreamId,
    to: UpstreamId,
    outgoing: &Outgoing,
    empty_body: bool,
    started: Instant,
    trace: Option<&crate::telemetry::spans::RequestTrace>,
) -> Option<Mirror> {
    let spec = spec.clone();
    // A streaming call (as the descriptor set says) passes through, counted, uncompared.
    let path = outgoing.path_and_query.path();
    if spec
        .rules
        .protobuf
        .as_ref()
        .is_some_and(|p| p.is_streaming(path))
    {
        figures.shadow.outcome(ShadowOutcome::Skipped);
        return None;
    }
    let Some(permits) = env.limits.acquire(route) else {
        figures.shadow.outcome(ShadowOutcome::Dropped);
        return None;
    };
    let max_body = if spec.max_body == 0 {
        env.settings.max_body
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
        env: env.clone(),
        figures: figures.clone(),
        spec,
        primary,
        to,
        shadow_request: shadow_req,
        primary_request: outgoing.clone(),
        request_body: request_rx,
        primary_response: response_rx,
        started,
        max_body,
        _permits: permits,
        trace: trace.cloned(),
    }));
    Some(Mirror { request, response })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method, Uri};
    use std::time::Duration;

    fn u(i: usize) -> UpstreamId {
        UpstreamId::new(i)
    }

    fn spec(back: Option<UpstreamId>) -> ShadowSpec {
        ShadowSpec {
            to: u(1),
            back,
            new: u(1),
            threshold: crate::routing::split::BUCKETS,
            key: None,
            salt: 0,
            methods: vec![Method::GET],
            max_in_flight: 1,
            timeout: Duration::from_secs(1),
            max_body: 0,
            noise: false,
            rules: Arc::new(Default::default()),
            redact: Vec::new(),
            grpc_idempotent: false,
        }
    }

    #[test]
    fn copies_go_to_the_side_that_did_not_serve() {
        let uri = Uri::from_static("/items/7");
        let headers = HeaderMap::new();
        let ip = std::net::Ipv4Addr::LOCALHOST.into();
        let get = RequestView::new(&Method::GET, &uri, &headers, ip);
        let post = RequestView::new(&Method::POST, &uri, &headers, ip);
        let one_way = spec(None);
        assert_eq!(target(&one_way, u(0), &get), Some(u(1)));
        assert_eq!(target(&one_way, u(1), &get), None, "to serves: no copy");
        assert_eq!(target(&one_way, u(0), &post), None, "method not shadowed");
        let both_ways = spec(Some(u(0)));
        assert_eq!(target(&both_ways, u(0), &get), Some(u(1)));
        assert_eq!(target(&both_ways, u(1), &get), Some(u(0)));
        let none = ShadowSpec {
            threshold: 0,
            ..spec(Some(u(0)))
        };
        assert_eq!(target(&none, u(1), &get), None, "0% sampled");
    }
}
