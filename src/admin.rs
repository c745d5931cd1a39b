//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/api/routes`. Apart from proxied traffic and
//! on loopback by default.

use crate::body::{self, ResponseBody};
use crate::config::summary::{describe_action, describe_match};
use crate::metrics;
use crate::proxy::SharedSnapshot;
use crate::snapshot::Snapshot;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn serve(
    listener: TcpListener,
    snapshot: SharedSnapshot,
    mut stop: watch::Receiver<bool>,
) {
    let builder = crate::server::connection_builder();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let snapshot = snapshot.clone();
                let service = service_fn(move |req| {
                    let snapshot = snapshot.clone();
                    async move { Ok::<_, Infallible>(route(&snapshot, &req)) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

fn route(snapshot: &SharedSnapshot, req: &Request<Incoming>) -> Response<ResponseBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(),
        ),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => {
            let snap = snapshot.load();
            let routes = snap.config.routes.routes().len();
            text(
                StatusCode::OK,
                "text/plain",
                format!("ready: {routes} routes\n"),
            )
        }
        (&Method::GET, "/api/routes") => {
            let body = routes_json(&snapshot.load());
            text(StatusCode::OK, "application/json", body.to_string())
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ResponseBody> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Each route in order, then the default, with its live traffic.
fn routes_json(snap: &Snapshot) -> serde_json::Value {
    let config = &snap.config;
    let name = |id: usize| config.upstreams[id].name.as_str();
    let live = metrics::live();
    let traffic = |route: &str| {
        let key = metrics::live_key(route);
        json!({
            "requests_per_second": live.requests_per_second(key),
            "server_errors_per_second": live.errors_per_second(key),
        })
    };
    let mut routes: Vec<serde_json::Value> = config
        .routes
        .routes()
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "match": describe_match(&r.matches),
                "action": describe_action(r, name),
                "live": traffic(&r.name),
            })
        })
        .collect();
    routes.push(json!({
        "name": metrics::DEFAULT_ROUTE,
        "match": "anything no route matches",
        "action": format!("-> {}", name(config.routes.default_upstream())),
        "live": traffic(metrics::DEFAULT_ROUTE),
    }));
    json!({ "routes": routes })
}
