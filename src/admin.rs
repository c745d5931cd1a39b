//! The admin listener: `/metrics`, `/healthz`, `/readyz`. Apart from proxied traffic and
//! on loopback by default.

use crate::body::ResponseBody;
use crate::metrics;
use crate::proxy::SharedSnapshot;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn serve(listener: TcpListener, snapshot: SharedSnapshot, mut stop: watch::Receiver<bool>) {
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
            text(StatusCode::OK, "text/plain", format!("ready: {routes} routes\n"))
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::local(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
