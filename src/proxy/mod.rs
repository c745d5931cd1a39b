//! The hyper service: glue between a client's request and routing/, upstream/ and the
//! metrics. It reads like the data flow in ARCHITECTURE.md.

pub mod error;
pub mod forward;
pub mod headers;
mod tunnel;

use crate::body::{RequestBody, ResponseBody};
use crate::routing::{RequestView, UpstreamId};
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use bytes::Bytes;
use error::ProxyError;
use forward::Outgoing;
use headers::ClientContext;
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The live snapshot, shared by every connection and swapped whole on reload.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// What a connection knows of its client.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
    pub scheme: &'static str,
}

/// Serve one request.
pub async fn handle(
    shared: &ArcSwap<Snapshot>,
    client: Client,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    // One snapshot for the whole request, however long it runs.
    let snap = shared.load_full();
    let client_upgrade = (req.version() == Version::HTTP_11
        && headers::upgrade_request(req.headers()).is_some())
    .then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    let (route_index, upstream, new_path) = {
        let view = RequestView::new(&parts.method, &parts.uri, &parts.headers, client.addr.ip());
        let decision = snap.config.routes.decide(&view);
        let route = decision.route.map(|i| &snap.config.routes.routes()[i]);
        let new_path = route.and_then(|r| r.rewrite.path(view.path));
        (decision.route, decision.upstream, new_path)
    };
    let route = route_index.map(|i| &snap.config.routes.routes()[i]);

    let client_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        let authority = parts.uri.authority()?;
        HeaderValue::from_str(authority.as_str()).ok()
    });
    headers::forward_request_headers(
        &mut parts.headers,
        &ClientContext {
            ip: client.addr.ip(),
            scheme: client.scheme,
            host: client_host.as_ref(),
            trust_forwarded: snap.config.server.trust_forwarded_headers,
        },
    );
    let original = Outgoing {
        method: parts.method,
        path_and_query: parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        headers: parts.headers,
        client_host,
    };
    // The fallback (the monolith) gets the request as the client sent it; the route's
    // rewrite describes what the route's own upstream expects.
    let fallback = route
        .and_then(|r| r.fallback)
        .filter(|f| *f != upstream && forward::is_idempotent(&original.method));
    let fallback_request = fallback.map(|_| original.clone());
    let mut outgoing = original;
    if let Some(route) = route {
        route.rewrite.apply_headers(&mut outgoing.headers);
        if let Some(path) = new_path {
            match with_query(path, parts.uri.query()) {
                Some(pq) => outgoing.path_and_query = pq,
                None => {
                    return finish(
                        &snap,
                        route_index,
                        upstream,
                        started,
                        Err(ProxyError::BadRequest),
                    )
                }
            }
        }
    }

    let max_buffer = snap.config.server.fallback_max_body;
    let (result, answered_by) = match fallback.zip(fallback_request) {
        Some((fallback, fallback_request))
            if client_upgrade.is_none() && fits(&body, max_buffer) =>
        {
            let bytes = match buffer(body, max_buffer).await {
                Ok(b) => b,
                Err(e) => return finish(&snap, route_index, upstream, started, Err(e)),
            };
            let route_name = snap.route_metrics(route_index).name.as_str();
            let (result, fell_back) = forward::send_with_fallback(
                snap.pool(upstream),
                snap.pool(fallback),
                outgoing,
                fallback_request,
                bytes,
                |reason| crate::metrics::fallback(route_name, reason).inc(),
            )
            .await;
            (result, if fell_back { fallback } else { upstream })
        }
        _ => {
            let pool = snap.pool(upstream);
            let req = outgoing.into_request(pool, RequestBody::Streaming { body });
            (forward::send(pool, req).await, upstream)
        }
    };

    let result = match (result, client_upgrade) {
        (Ok(resp), Some(client_side)) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            Ok(tunnel::start(client_side, resp))
        }
        (result, _) => result.map(|resp| resp.map(|body| ResponseBody::Upstream { body })),
    };
    finish(&snap, route_index, answered_by, started, result)
}

/// Count the response and turn an error into banyan's own answer.
fn finish(
    snap: &Snapshot,
    route: Option<usize>,
    upstream: UpstreamId,
    started: Instant,
    result: Result<Response<ResponseBody>, ProxyError>,
) -> Response<ResponseBody> {
    let mut resp = match result {
        Ok(mut resp) => {
            let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
            headers::forward_response_headers(resp.headers_mut(), switching);
            resp
        }
        Err(e) => e.response(snap.pool(upstream).name()),
    };
    let route_metrics = snap.route_metrics(route);
    if let Some(m) = route_metrics.for_upstream(upstream) {
        m.observe(resp.status(), started.elapsed().as_secs_f64());
    }
    crate::metrics::live().observe(route_metrics.live_key, resp.status());
    *resp.version_mut() = Version::HTTP_11;
    resp
}

/// A rewritten path with the client's query.
fn with_query(mut path: String, query: Option<&str>) -> Option<PathAndQuery> {
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
    PathAndQuery::try_from(path).ok()
}

/// Whether a body can be buffered for a fallback: empty, or of a known small length.
fn fits(body: &Incoming, max: u64) -> bool {
    body.is_end_stream() || body.size_hint().upper().is_some_and(|n| n <= max)
}

async fn buffer(body: Incoming, max: u64) -> Result<Bytes, ProxyError> {
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    Limited::new(body, limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| ProxyError::BadRequest)
}
