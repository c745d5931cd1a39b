//! The admin listener, apart from proxied traffic and on loopback by default: health,
//! metrics, the routes with live traffic, and the config API.

mod api;
mod auth;
mod config_api;
mod diff_source;
mod fleet_api;
mod migration_api;
mod openapi;
mod origin;
mod resilience;
mod respond;
mod views;

use crate::body::ResponseBody;
use crate::metrics;
use crate::reload::Reloader;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use respond::{error, json, text};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use auth::{exposure_warning, from_env as token_from_env, TOKEN_ENV};

/// Largest config accepted by `PUT /api/config`.
const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;

struct Admin {
    reloader: Arc<Reloader>,
    /// The fleet this instance belongs to, with a `[fleet]` table.
    fleet: Option<Arc<crate::fleet::Fleet>>,
    env_token: Option<String>,
}

/// Serve the admin API on `listener` with the connection `builder` the server hands
/// over, until told to stop.
pub async fn serve(
    listener: TcpListener,
    builder: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    reloader: Arc<Reloader>,
    fleet: Option<Arc<crate::fleet::Fleet>>,
    mut stop: watch::Receiver<bool>,
) {
    let admin = Arc::new(Admin {
        reloader,
        fleet,
        env_token: auth::from_env(),
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let admin = admin.clone();
                let service = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(route(admin, req).await) }
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

async fn route(admin: Arc<Admin>, req: Request<Incoming>) -> Response<ResponseBody> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let reloader = &admin.reloader;
    // Dry runs included: they read the files a config names.
    let mutating = matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE);
    let mut token_set = false;
    if mutating {
        let snap = reloader.snapshot().load();
        let settings = &snap.config.admin;
        if let Err(origin::Refused(why)) =
            origin::check(req.headers(), settings.listen, &settings.allowed_hosts)
        {
            return error(StatusCode::FORBIDDEN, why);
        }
        let expected = auth::expected(admin.env_token.as_deref(), settings);
        if !auth::authorized(req.headers(), expected) {
            return respond::unauthorized();
        }
        token_set = expected.is_some();
    }
    // HEAD is GET without the body, which hyper leaves out.
    let method = match req.method() {
        &Method::HEAD => Method::GET,
        m => m.clone(),
    };
    match (method, segments.as_slice()) {
        (Method::GET, ["metrics"]) => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(),
        ),
        (Method::GET, ["healthz"]) => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (Method::GET, ["readyz"]) => {
            let routes = reloader.snapshot().load().config.routes.routes().len();
            text(
                StatusCode::OK,
                "text/plain",
                format!("ready: {routes} routes\n"),
            )
        }
        (Method::GET, [] | ["index.html"]) => dashboard(),
        (Method::GET, ["api", "openapi.json"]) => text(
            StatusCode::OK,
            "application/json",
            openapi::document().into(),
        ),
        (Method::GET, ["api", "routes"]) => {
            json(StatusCode::OK, &api::routes(&reloader.snapshot().load()))
        }
        (Method::GET, ["api", "migration"]) => json(
            StatusCode::OK,
            &migration_api::overview(&reloader.snapshot().load()),
        ),
        (Method::GET, ["api", "migration", "report"]) => {
            let markdown = match api::params(req.uri().query())
                .get("format")
                .map(String::as_str)
            {
                None | Some("json") => false,
                Some("markdown") => true,
                Some(other) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("format={other:?}: use json or markdown"),
                    )
                }
            };
            migration_report(
                &reloader.snapshot().load_full(),
                admin.fleet.as_ref(),
                markdown,
            )
            .await
        }
        (Method::POST, ["api", "migration", route, call]) => {
            match migration_api::control_call(&reloader.snapshot().load(), route, call) {
                Ok(v) => json(StatusCode::OK, &v),
                Err((status, why)) => error(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
                    why,
                ),
            }
        }
        (Method::GET, ["api", "fleet"]) => fleet_api::fleet(admin.fleet.as_deref()).await,
        (Method::GET, ["api", "upstreams"]) => json(
            StatusCode::OK,
            &resilience::upstreams(&reloader.snapshot().load()),
        ),
        (Method::GET, ["api", "shadow"]) => {
            let p = api::params(req.uri().query());
            api::shadow(
                &reloader.snapshot().load_full(),
                admin.fleet.as_ref(),
                p.get("window").map(String::as_str),
            )
            .await
        }
        (Method::GET, ["api", "diffs"]) => {
            api::diffs(
                &reloader.snapshot().load_full(),
                admin.fleet.as_ref(),
                req.uri().query(),
            )
            .await
        }
        (Method::GET, ["api", "diffs", id]) if *id != "clear" => {
            let id = id.to_string();
            api::diff(&reloader.snapshot().load_full(), admin.fleet.as_ref(), &id).await
        }
        (Method::POST, ["api", "diffs", "clear"]) => {
            api::clear(
                &reloader.snapshot().load_full(),
                admin.fleet.as_ref(),
                req.uri().query(),
            )
            .await
        }
        (Method::GET, ["api", "config"]) => config_api::current(reloader),
        (Method::GET, ["api", "config", "status"]) => {
            config_api::status(reloader, admin.fleet.as_deref())
        }
        (Method::GET, ["api", "config", "history"]) => config_api::history(reloader),
        (Method::GET, ["api", "config", "versions", n]) => config_api::version(reloader, n),
        (Method::POST, ["api", "config", "reload"]) => config_api::reload(reloader.clone()).await,
        (Method::POST, ["api", "config", "rollback", n]) => {
            let n = n.to_string();
            config_api::rollback(reloader.clone(), &n).await
        }
        (Method::PUT, ["api", "config"]) => {
            // Without a token, nobody has shown who they are: a dry run must not tell
            // them what a file holds, or whether it exists.
            let mode = match (dry_run(&req), token_set) {
                (false, _) => config_api::Put::Apply,
                (true, true) => config_api::Put::DryRun,
                (true, false) => config_api::Put::DryRunWithoutFiles,
            };
            match read_text(req).await {
                Ok(body) => config_api::put(reloader.clone(), body, mode).await,
                Err(resp) => resp,
            }
        }
        _ => match allowed_methods(&segments) {
            Some(allow) => {
                let mut resp = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{path} takes {allow}"),
                );
                resp.headers_mut()
                    .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
                resp
            }
            None => error(
                StatusCode::NOT_FOUND,
                format!("no such admin endpoint: {path}"),
            ),
        },
    }
}

/// The methods an admin path takes, for a 405's `Allow` (None: no such path).
fn allowed_methods(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        [] | ["index.html"] | ["metrics"] | ["healthz"] | ["readyz"] => "GET, HEAD",
        ["api", "openapi.json" | "routes" | "migration" | "upstreams" | "shadow" | "diffs" | "fleet"] => {
            "GET, HEAD"
        }
        ["api", "diffs", "clear"] => "POST",
        ["api", "migration", "report"] | ["api", "diffs", _] => "GET, HEAD",
        ["api", "config", "status" | "history"] | ["api", "config", "versions", _] => "GET, HEAD",
        ["api", "config"] => "GET, HEAD, PUT",
        ["api", "migration", _, _] => "POST",
        ["api", "config", "reload"] | ["api", "config", "rollback", _] => "POST",
        _ => return None,
    })
}

/// The readiness report, with an example sample per regressed field from the store; in
/// a fleet, on the fleet's figures and samples.
async fn migration_report(
    snap: &std::sync::Arc<crate::snapshot::Snapshot>,
    fleet: Option<&Arc<crate::fleet::Fleet>>,
    markdown: bool,
) -> Response<ResponseBody> {
    let routes: Vec<String> = snap
        .config
        .routes
        .routes()
        .iter()
        .zip(&snap.config.features)
        .filter(|(_, f)| f.migration.is_some())
        .map(|(r, _)| r.name.clone())
        .collect();
    let mut examples = std::collections::BTreeMap::new();
    if let Ok(source) = diff_source::DiffSource::of(snap, fleet) {
        for route in routes {
            let Ok((groups, _)) = source.groups(Some(route.clone()), None, 200, 0).await else {
                continue;
            };
            for g in groups {
                let (Some(id), Some(fields)) = (g.example_id, g.fields.as_array()) else {
                    continue;
                };
                for f in fields {
                    if let Some(field) = f.get(0).and_then(|v| v.as_str()) {
                        examples
                            .entry((route.clone(), field.to_string()))
                            .or_insert(id);
                    }
                }
            }
        }
    }
    let (tallies, scope) = diff_source::tallies(fleet).await;
    let report = migration_api::report(snap, &tallies, scope, &examples);
    if markdown {
        text(
            StatusCode::OK,
            "text/markdown; charset=utf-8",
            migration_api::markdown(&report),
        )
    } else {
        json(StatusCode::OK, &report)
    }
}

fn dry_run<B>(req: &Request<B>) -> bool {
    req.uri()
        .query()
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .any(|(k, v)| k == "dry_run" && (v == "true" || v == "1" || v.is_empty()))
}

async fn read_text(req: Request<Incoming>) -> Result<String, Response<ResponseBody>> {
    let bytes = Limited::new(req.into_body(), MAX_CONFIG_BYTES)
        .collect()
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the config must be at most 16 MiB",
            )
        })?
        .to_bytes();
    String::from_utf8(bytes.to_vec())
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the config must be UTF-8 TOML"))
}

/// The dashboard: one page, no external resources, built into the binary.
const DASHBOARD: &str = include_str!("dashboard.html");

fn dashboard() -> Response<ResponseBody> {
    text(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD.into())
}
