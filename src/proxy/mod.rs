//! The request handler of both server paths (banyan's own HTTP/1.1, hyper's HTTP/2):
//! glue between a client's request and routing/, upstream/ and the metrics. It reads like
//! the data flow in docs/ARCHITECTURE.md.

mod access_log;
pub mod error;
pub mod forward;
pub mod headers;
mod spans;
mod tunnel;

use crate::body::tap::{Capture, End};
use crate::body::{self, ResponseBody};
use crate::breaker::Admit;
use crate::grpc;
use crate::inbound::client_body::{Buffered, ClientBody};
use crate::inbound::{self, Refusal};
use crate::routing::normalize::{self, PathNormalization};
use crate::routing::protocol::Tunnel;
use crate::routing::{RequestView, Route, RouteId, UpstreamId};
use crate::shadow::{self, spec::ShadowSpec};
use crate::snapshot::Snapshot;
use crate::telemetry::spans::RequestTrace;
use crate::upstream::request::Outgoing;
use arc_swap::ArcSwap;
use bytes::Bytes;
use error::ProxyError;
use forward::Trail;
use headers::ClientContext;
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;

use crate::body::from_client::FromClient;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

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
    mut req: Request<FromClient>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    // One snapshot for the whole request, however long it runs.
    let snap = shared.load_full();
    let (trace, trace_id) = spans::begin(&snap, &req);
    // Written with nginx's 499 if the client leaves before the answer begins.
    let mut record = access_log::Unanswered::new(
        access_log::Record::begin(&snap, client, &req, trace_id),
        &snap,
        started,
    );
    let h1 = req.version() < Version::HTTP_2;
    // A gRPC client reads banyan's own failures as gRPC statuses, not HTTP ones. gRPC
    // runs over HTTP/2 only: an HTTP/1 request is not looked at.
    let grpc = !h1 && grpc::is_grpc(req.headers());
    // The framing reader stops following a connection at an Upgrade header or a
    // CONNECT (what comes next may be another protocol): unless it is tunnelled, such a
    // request is the connection's last, so no later request passes unread.
    let leaves_framing =
        h1 && (req.method() == Method::CONNECT || req.headers().contains_key(header::UPGRADE));
    // Read once: the tunnel decision and the client's side of a tunnel both need it.
    let asked_upgrade = (req.version() == Version::HTTP_11)
        .then(|| headers::upgrade_request(req.headers()))
        .flatten();
    let client_upgrade = (req.version() == Version::HTTP_11
        && (req.method() == Method::CONNECT || asked_upgrade.is_some()))
    .then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let limits = &snap.config.server.limits;
    let checked = inbound::head::check(&parts, limits)
        .and_then(|()| normalized(parts, snap.config.server.path_normalization));
    let parts = match checked {
        Ok(parts) => parts,
        Err(refusal) => {
            let default = snap.config.routes.default_upstream();
            let resp = finish(
                &snap,
                None,
                default,
                started,
                Err(ProxyError::Refused(refusal)),
                grpc,
            );
            // A head that could be read two ways leaves the connection's framing in doubt.
            let resp = if h1 { closing(resp) } else { resp };
            return logged(record.answered(), trace, &snap, started, None, resp);
        }
    };
    // The caller's deadline bounds the wait for the upstream's answer.
    let deadline = grpc.then(|| grpc::deadline(&parts.headers)).flatten();
    let method = trace.as_ref().map(|_| parts.method.clone());
    let plan = plan(&snap, client, parts, asked_upgrade.as_ref());
    let (route, upstream) = (plan.route, plan.upstream);
    let tunnel = plan.tunnel;
    let client_upgrade = client_upgrade.filter(|_| tunnel.is_some());
    let (body, verdict) = ClientBody::new(body, plan.max_body, limits.body_timeout);
    if let Some(r) = record.get() {
        r.route = route;
        r.verdict = verdict.clone();
        if let Ok(requests) = &plan.requests {
            r.sent_headers(&requests.primary.headers);
        }
    }
    let shadowed = plan.shadow.is_some();
    if let (Some(t), Some(method)) = (&trace, &method) {
        spans::routed(t, method, &snap, route);
    }
    let (result, answered_by, mirror) = match plan.requests {
        Err(e) => (Err(e), upstream, None),
        Ok(mut requests) => {
            requests.trail.trace = trace.clone();
            requests.trail.trace_id = trace_id;
            // Shadowing costs the request path two taps and a spawn, nothing it waits on.
            let mirror = route
                .zip(plan.shadow)
                .filter(|_| tunnel.is_none())
                .and_then(|(r, (to, spec))| {
                    shadow::begin(
                        &snap.shadow,
                        r,
                        &snap.live(route).figures,
                        spec,
                        upstream,
                        to,
                        &requests.primary,
                        body.is_end_stream(),
                        started,
                        trace.as_ref(),
                    )
                });
            if let Some(r) = record.get().filter(|_| shadowed && tunnel.is_none()) {
                r.shadow = Some(if mirror.is_some() {
                    "copied"
                } else {
                    "not_copied"
                });
            }
            let (mut mirror_request, mut mirror_response) = match mirror {
                Some(m) => (m.request, Some(m.response)),
                None => (None, None),
            };
            // A recorded request shares the shadow's copies, or has taps of its own.
            if let (Some((spec, head)), Some(env)) = (plan.capture, snap.capture.as_ref()) {
                let (request_tap, response_tap) = env.begin(
                    snap.live(route).name(),
                    &spec,
                    head,
                    started,
                    body.is_end_stream(),
                    mirror_request.as_mut(),
                    mirror_response.as_mut(),
                );
                mirror_request = mirror_request.or(request_tap);
                mirror_response = mirror_response.or(response_tap);
            }
            let sending = send(
                &snap,
                route,
                upstream,
                requests,
                body,
                tunnel.is_some(),
                mirror_request,
            );
            let (result, answered_by, trail) = match deadline {
                None => sending.await,
                Some(limit) => tokio::time::timeout(limit, sending).await.unwrap_or((
                    Err(ProxyError::CallDeadline),
                    upstream,
                    Trail::default(),
                )),
            };
            if let Some(r) = record.get() {
                r.trail = trail;
                r.answered_by = Some(answered_by);
                r.fell_back = answered_by != upstream;
            }
            // A body that broke its limits or its framing is the client's fault.
            let result = result.map_err(|e| verdict.get().map_or(e, ProxyError::Refused));
            if let Some(Admit::New { probe }) = plan.breaker {
                let failed = answered_by != upstream
                    || match &result {
                        Ok(resp) => resp.status().is_server_error(),
                        Err(e) => !matches!(e, ProxyError::Refused(_)),
                    };
                breaker_outcome(&snap, route, probe, failed);
            }
            (result, answered_by, mirror_response)
        }
    };
    let mut tunnelled = false;
    let result = match (result, client_upgrade, &tunnel) {
        (Ok(resp), Some(client_side), Some(asked))
            if asked.opened_by(resp.status(), resp.headers().get(header::UPGRADE)) =>
        {
            tunnelled = true;
            Ok(tunnel::start(client_side, resp))
        }
        // A switch the client did not ask for would leave it speaking HTTP/1.1 to a
        // connection the upstream no longer reads as HTTP/1.1.
        (Ok(resp), _, _) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            Err(ProxyError::UnrequestedUpgrade)
        }
        (Ok(resp), _, _) => Ok(match mirror {
            Some(capture) => {
                let capture = capture.with_head(resp.status(), resp.headers());
                resp.map(|b| body::tapped(b, capture))
            }
            None => resp.map(body::streamed),
        }),
        (Err(e), _, _) => Err(e),
    };
    let resp = finish(&snap, route, answered_by, started, result, grpc);
    let resp = if leaves_framing && !tunnelled {
        closing(resp)
    } else {
        resp
    };
    logged(
        record.answered(),
        trace,
        &snap,
        started,
        Some(answered_by),
        resp,
    )
}

/// The response, with its access-log entry on its way and its span ended (when its
/// body has) when the request has them.
fn logged(
    record: Option<Box<access_log::Record>>,
    trace: Option<RequestTrace>,
    snap: &Arc<Snapshot>,
    started: Instant,
    answered_by: Option<UpstreamId>,
    mut resp: Response<ResponseBody>,
) -> Response<ResponseBody> {
    if let Some(trace) = trace {
        spans::end_with_answer(trace, snap, answered_by, &mut resp);
    }
    if let Some(record) = record {
        record.finish(snap, started, &mut resp);
    }
    resp
}

/// The request with its path normalized as `server.path_normalization` says, before it
/// is matched and forwarded.
fn normalized(
    mut parts: http::request::Parts,
    how: PathNormalization,
) -> Result<http::request::Parts, Refusal> {
    let changed = match how.apply(parts.uri.path()) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(parts),
        Ok(std::borrow::Cow::Owned(path)) => path,
        Err(normalize::Refused(why)) => return Err(Refusal::BadRequest(why)),
    };
    let target = match parts.uri.query() {
        Some(q) => format!("{changed}?{q}"),
        None => changed,
    };
    let invalid = Refusal::BadRequest("the normalized path is not a valid URI");
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(PathAndQuery::try_from(target).map_err(|_| invalid)?);
    parts.uri = http::Uri::from_parts(uri).map_err(|_| invalid)?;
    Ok(parts)
}

/// The response with `Connection: close`: hyper ends the connection after it.
fn closing(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Where a request goes and what is sent there.
struct Plan<'a> {
    route: Option<RouteId>,
    upstream: UpstreamId,
    requests: Result<Requests, ProxyError>,
    /// Where the route's shadow copies this request, if it does (method, serving side
    /// and sample decide), and its spec.
    shadow: Option<(UpstreamId, &'a Arc<ShadowSpec>)>,
    /// The route's capture and the request as the client sent it, when this request is
    /// recorded.
    capture: Option<(
        Arc<crate::capture::CaptureSpec>,
        crate::capture::RequestHead,
    )>,
    /// The largest body the route takes.
    max_body: u64,
    /// What the route's circuit breaker said, when it has one.
    breaker: Option<Admit>,
    /// The tunnel asked of the upstream, when the route allows what the client asked.
    tunnel: Option<Tunnel>,
}

/// The request for the route's upstream and, when the route has a fallback that may take
/// it, the request for the fallback.
struct Requests {
    primary: Outgoing,
    fallback: Option<(UpstreamId, Outgoing)>,
    /// How the attempts are traced, and where they went.
    trail: Trail,
}

/// Route the request and prepare what goes upstream: header hygiene, then the route's
/// rewrite (which the fallback does not get).
fn plan<'a>(
    snap: &'a Snapshot,
    client: Client,
    parts: http::request::Parts,
    asked_upgrade: Option<&HeaderValue>,
) -> Plan<'a> {
    let trust_forwarded = snap.config.server.trust_forwarded_headers;
    let client_ip = headers::client_ip(&parts.headers, client.addr.ip(), trust_forwarded);
    let view = RequestView::new(&parts.method, &parts.uri, &parts.headers, client_ip);
    let decision = snap.config.routes.decide(&view);
    // The matched route, looked up once.
    let matched = decision.route.map(|id| (id, snap.config.routes.route(id)));
    let (upstream, breaker) = circuit(snap, matched, decision.upstream);
    // Diverted to legacy, the request goes as the client sent it, like a fallback.
    let diverted = breaker == Some(Admit::Legacy);
    let acting = matched.filter(|_| !diverted);
    let new_path = acting.and_then(|(_, r)| r.rewrite.path(view.path));
    let max_body = matched
        .and_then(|(_, r)| r.max_body)
        .unwrap_or(snap.config.server.limits.max_body);
    let too_large = inbound::head::declared_body_too_large(&parts.headers, max_body);
    let shadow = acting
        .and_then(|(id, _)| snap.config.features(id).shadow.as_ref())
        .and_then(|spec| Some((shadow::target(spec, upstream, &view)?, spec)));
    let protocols = snap.config.routes.protocols(decision.route);
    let method_refused = !protocols.admits_method(&parts.method);
    let tunnel = if method_refused {
        None
    } else {
        protocols.tunnel(&parts.method, parts.version, asked_upgrade)
    };
    let query = parts.uri.query().map(str::to_owned);
    // The request as the client sent it, kept when the route records this one.
    let capture = acting
        .filter(|_| snap.capture.is_some() && tunnel.is_none())
        .and_then(|(id, _)| snap.config.features(id).capture.as_ref())
        .filter(|spec| spec.samples(&parts.method))
        .map(|spec| {
            let head = crate::capture::RequestHead {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
            };
            (spec.clone(), head)
        });
    let mut primary = outgoing(parts, client, trust_forwarded, tunnel.as_ref());
    let fallback = acting
        .and_then(|(id, r)| Some((r.fallback?, id, r)))
        .filter(|(f, id, r)| {
            *f != upstream
                && (forward::is_idempotent(&primary.method)
                    || idempotent_call(snap, *id, r, primary.path_and_query.path()))
        })
        .map(|(f, _, _)| f)
        .map(|f| (f, primary.clone()));
    let requests = if method_refused {
        Err(ProxyError::Refused(Refusal::MethodNotAllowed))
    } else if too_large {
        Err(ProxyError::Refused(Refusal::BodyTooLarge))
    } else if let Some((_, route)) = acting {
        rewrite(route, new_path, query.as_deref(), &mut primary)
    } else {
        Ok(())
    };
    Plan {
        route: decision.route,
        upstream,
        requests: requests.map(|()| Requests {
            primary,
            fallback,
            trail: Trail::default(),
        }),
        shadow,
        capture,
        max_body,
        breaker,
        tunnel,
    }
}

/// A gRPC call the route declares without side effects, or whose descriptor set (the
/// route's `compare.protobuf`) does.
fn idempotent_call(snap: &Snapshot, id: RouteId, route: &Route, path: &str) -> bool {
    let Some(grpc) = &route.matches.grpc else {
        return false;
    };
    grpc.idempotent
        || snap
            .config
            .features(id)
            .shadow
            .as_ref()
            .and_then(|s| s.rules.protobuf.as_ref())
            .is_some_and(|p| p.is_idempotent(path))
}

/// The request as every upstream gets it: the client's, with hop-by-hop headers gone and
/// the forwarding headers set.
fn outgoing(
    mut parts: http::request::Parts,
    client: Client,
    trust_forwarded: bool,
    tunnel: Option<&Tunnel>,
) -> Outgoing {
    let client_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        let authority = parts.uri.authority()?;
        HeaderValue::from_str(authority.as_str()).ok()
    });
    let te_trailers = headers::forward_request_headers(
        &mut parts.headers,
        &ClientContext {
            ip: client.addr.ip(),
            scheme: client.scheme,
            host: client_host.as_ref(),
            trust_forwarded,
            upgrade: match tunnel {
                Some(Tunnel::Upgrade(asked)) => Some(asked.clone()),
                _ => None,
            },
        },
    );
    Outgoing {
        method: parts.method,
        path_and_query: parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        headers: parts.headers,
        client_host,
        te_trailers,
    }
}

/// The route's rewrite of the primary request: its headers, and its path (with the
/// client's query) when it rewrites one.
fn rewrite(
    route: &Route,
    new_path: Option<String>,
    query: Option<&str>,
    primary: &mut Outgoing,
) -> Result<(), ProxyError> {
    route.rewrite.apply_headers(&mut primary.headers);
    if let Some(path) = new_path {
        primary.path_and_query = with_query(path, query).ok_or(ProxyError::Refused(
            Refusal::BadRequest("the rewritten path is not a valid URI"),
        ))?;
    }
    Ok(())
}

/// Send the request: with a second chance at the fallback when the route has one and the
/// body can be buffered, else streamed. Returns the result and who answered.
async fn send(
    snap: &Snapshot,
    route: Option<RouteId>,
    upstream: UpstreamId,
    requests: Requests,
    body: ClientBody,
    upgrade: bool,
    mirror: Option<Capture>,
) -> Sent {
    let max_buffer = snap.config.server.fallback_max_body;
    let mut trail = requests.trail;
    match requests.fallback {
        Some((fallback, fallback_request)) if !upgrade => {
            // Read into memory as far as the limit (a body of unknown length too, as
            // every gRPC call's is): whole, it may be sent twice.
            let bytes = match body.buffer_upto(max_buffer).await {
                Ok(Buffered::Whole(bytes)) => bytes,
                Ok(Buffered::Streamed(body)) => {
                    return stream(snap, upstream, requests.primary, body, mirror, trail).await
                }
                Err(_) => {
                    let unread = Refusal::BadRequest("the request body could not be read");
                    return (Err(ProxyError::Refused(unread)), upstream, trail);
                }
            };
            if let Some(capture) = mirror {
                capture.finish_with(&bytes);
            }
            let route_name = snap.live(route).name();
            let (result, fell_back) = forward::send_with_fallback(
                snap.pool(upstream),
                snap.pool(fallback),
                requests.primary,
                fallback_request,
                bytes,
                &mut trail,
                |reason| crate::metrics::fallback(route_name, reason).inc(),
            )
            .await;
            (result, if fell_back { fallback } else { upstream }, trail)
        }
        // No body (most idempotent requests): replayable, so retried on connect errors.
        _ if body.is_end_stream() => {
            if let Some(capture) = mirror {
                capture.finish_with(&Bytes::new());
            }
            let pool = snap.pool(upstream);
            let result =
                forward::send_replayable(pool, requests.primary, Bytes::new(), &mut trail).await;
            (result, upstream, trail)
        }
        _ => stream(snap, upstream, requests.primary, body, mirror, trail).await,
    }
}

/// Send the request with its body streamed: one attempt, it cannot be replayed.
async fn stream(
    snap: &Snapshot,
    upstream: UpstreamId,
    request: Outgoing,
    body: ClientBody,
    mirror: Option<Capture>,
    mut trail: Trail,
) -> Sent {
    let body = match mirror {
        Some(capture) => body::tapped(body, capture),
        None => body::streamed(body),
    };
    let pool = snap.pool(upstream);
    let result = forward::send(pool, request, body, &mut trail).await;
    (result, upstream, trail)
}

/// What sending did: the upstream's answer, who gave it, and how it got there.
type Sent = (
    Result<Response<crate::upstream::UpstreamBody>, ProxyError>,
    UpstreamId,
    Trail,
);

/// Ask the route's circuit breaker, if it has one and the request is not going to
/// legacy anyway, where the request goes.
fn circuit(
    snap: &Snapshot,
    matched: Option<(RouteId, &Route)>,
    upstream: UpstreamId,
) -> (UpstreamId, Option<Admit>) {
    let Some((id, r)) = matched else {
        return (upstream, None);
    };
    let Some(breaker) = snap.breaker(Some(id)) else {
        return (upstream, None);
    };
    if upstream == r.legacy {
        return (upstream, None);
    }
    let (admit, moved) = breaker.admit(crate::clock::now_ms());
    if let Some(t) = moved {
        announce(&r.name, &t);
    }
    if admit == Admit::Legacy {
        crate::metrics::breaker_diverted(&r.name);
        return (r.legacy, Some(admit));
    }
    (upstream, Some(admit))
}

fn breaker_outcome(snap: &Snapshot, route: Option<RouteId>, probe: bool, failed: bool) {
    let Some(breaker) = snap.breaker(route) else {
        return;
    };
    let now = crate::clock::now_ms();
    if let Some(t) = breaker.record(now, probe, failed) {
        announce(snap.live(route).name(), &t);
    }
}

fn announce(route: &str, t: &crate::breaker::Transition) {
    crate::metrics::breaker_transition(route, t.to);
    tracing::warn!(route, state = t.to.label(), reason = %t.reason, "circuit breaker");
}

/// Count the response and turn an error into banyan's own answer.
fn finish(
    snap: &Snapshot,
    route: Option<RouteId>,
    upstream: UpstreamId,
    started: Instant,
    result: Result<Response<ResponseBody>, ProxyError>,
    grpc: bool,
) -> Response<ResponseBody> {
    let mut resp = match result {
        Ok(mut resp) => {
            let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
            headers::forward_response_headers(resp.headers_mut(), switching);
            resp
        }
        Err(e) => {
            if let ProxyError::Refused(_) = e {
                crate::metrics::client_refusal(e.cause());
            }
            let upstream = snap.pool(upstream).name();
            if grpc {
                e.grpc_response(upstream)
            } else {
                e.response(upstream)
            }
        }
    };
    let live = snap.live(route);
    if grpc && grpc::is_grpc(resp.headers()) {
        observe_call(live, upstream, started, &mut resp);
    } else {
        if let Some(side) = live.side(upstream) {
            side.observe(resp.status(), started.elapsed().as_secs_f64());
        }
        crate::metrics::live().observe(live.live_key, resp.status());
    }
    *resp.version_mut() = Version::HTTP_11;
    resp
}

/// Count a gRPC call by its `grpc-status`: in the headers of a trailers-only answer
/// (banyan's own among them), else in the trailers, counted when the body ends.
fn observe_call(
    live: &crate::snapshot::RouteLive,
    upstream: UpstreamId,
    started: Instant,
    resp: &mut Response<ResponseBody>,
) {
    let (side, key) = (live.shared_side(upstream), live.live_key);
    let count = move |code: grpc::Code| {
        if let Some(side) = side {
            side.observe_call(code, started.elapsed().as_secs_f64());
        }
        crate::metrics::live().observe(key, code.http_equivalent());
    };
    let status_in = |h: &http::HeaderMap| {
        h.get(grpc::STATUS)
            .map_or(grpc::Code::Unknown, |v| grpc::Code::from_wire(v.as_bytes()))
    };
    if resp.headers().contains_key(grpc::STATUS) {
        return count(status_in(resp.headers()));
    }
    match resp.body_mut() {
        http_body_util::Either::Left(tap) => tap.watch(move |end, _| {
            count(match end {
                End::Trailers(trailers) => status_in(trailers),
                // An answer that ended without a status, or broke on the upstream's side.
                End::Plain => grpc::Code::Unknown,
                End::Failed => grpc::Code::Unavailable,
                End::Dropped => grpc::Code::Cancelled,
            })
        }),
        http_body_util::Either::Right(_) => count(grpc::Code::Unknown),
    }
}

/// A rewritten path with the client's query.
fn with_query(mut path: String, query: Option<&str>) -> Option<PathAndQuery> {
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
    PathAndQuery::try_from(path).ok()
}
