//! The two demo backends. Small on purpose: a match on the path, JSON by serde_json.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::convert::Infallible;
use tokio::net::TcpListener;

/// Which side of the migration a backend plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The monolith: every endpoint, the old field names.
    Legacy,
    /// The new catalog service: items (renamed field, float prices, reordered tags, a
    /// timestamp), users (identical), and its own /v2/products API.
    Catalog,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Catalog => "catalog",
        }
    }
}

struct Item {
    id: u64,
    name: &'static str,
    cents: u64,
    stock: u64,
    tags: [&'static str; 2],
}

const ITEMS: [Item; 4] = [
    Item {
        id: 1,
        name: "Desk lamp",
        cents: 1999,
        stock: 12,
        tags: ["lighting", "home"],
    },
    Item {
        id: 2,
        name: "Oak table",
        cents: 24900,
        stock: 3,
        tags: ["furniture", "wood"],
    },
    Item {
        id: 3,
        name: "Wool rug",
        cents: 8950,
        stock: 7,
        tags: ["textile", "home"],
    },
    Item {
        id: 4,
        name: "Ceramic mug",
        cents: 725,
        stock: 40,
        tags: ["kitchen", "gift"],
    },
];

/// Serve a backend on a listener until the task is dropped.
pub async fn serve(listener: TcpListener, backend: Backend) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service =
            service_fn(move |req| async move { Ok::<_, Infallible>(answer(backend, req).await) });
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(backend: Backend, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, value) = match (backend, &method, segments.as_slice()) {
        (_, &Method::GET, ["health"]) => (StatusCode::OK, json!({"status": "ok"})),
        (_, &Method::GET, ["api", "items"]) => (StatusCode::OK, item_list(backend)),
        (Backend::Legacy, &Method::GET, ["api", "items" | "products", id])
        | (Backend::Catalog, &Method::GET, ["api", "items", id] | ["v2", "products", id]) => {
            match find(id) {
                Some(item) => (StatusCode::OK, item_json(backend, item)),
                None => (StatusCode::NOT_FOUND, json!({"error": "no such item"})),
            }
        }
        (_, &Method::GET, ["api", "users", id]) => match id.parse::<u64>() {
            Ok(n) => (
                StatusCode::OK,
                json!({"id": n, "name": format!("User {n}"), "country": "DE", "member_since": "2019-04-01"}),
            ),
            Err(_) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "user ids are numbers"}),
            ),
        },
        (Backend::Legacy, &Method::GET, ["api", "search"]) => (StatusCode::OK, search(&query)),
        (Backend::Legacy, &Method::POST, ["api", "cart"]) => (
            StatusCode::CREATED,
            json!({"ok": true, "received_bytes": body.len()}),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            json!({"error": "not found", "path": path}),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-demo-backend", HeaderValue::from_static(backend.label()));
    resp
}

fn find(id: &str) -> Option<&'static Item> {
    let id: u64 = id.parse().ok()?;
    ITEMS.iter().find(|i| i.id == id)
}

/// What changes on every answer of either side: a trace id and the time it was served.
/// Two answers of the monolith itself differ here, so the shadow's noise check learns
/// that these fields are noise.
fn per_request() -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (
        format!("{:016x}", rand::random::<u64>()),
        format!("{}.{:06}", now.as_secs(), now.subsec_micros()),
    )
}

fn item_json(backend: Backend, item: &Item) -> Value {
    let (trace_id, served_at) = per_request();
    match backend {
        Backend::Legacy => json!({
            "id": item.id,
            "name": item.name,
            "price": (item.cents as f64) / 100.0,
            "currency": "EUR",
            "stock": item.stock,
            "tags": item.tags,
            "trace_id": trace_id,
            "served_at": served_at,
        }),
        // The new service renamed `name`, computes prices in floating point, sorts its
        // tags, and stamps when it built the answer.
        Backend::Catalog => {
            let mut tags = item.tags;
            tags.sort_unstable();
            json!({
                "id": item.id,
                "title": item.name,
                "price": (item.cents as f64) * 0.01,
                "currency": "EUR",
                "stock": item.stock,
                "tags": tags,
                "generated_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                "trace_id": trace_id,
                "served_at": served_at,
            })
        }
    }
}

fn item_list(backend: Backend) -> Value {
    let mut items: Vec<&Item> = ITEMS.iter().collect();
    if backend == Backend::Catalog {
        // The new service lists by price, the monolith by id.
        items.sort_by_key(|i| i.cents);
    }
    let items: Vec<Value> = items.into_iter().map(|i| item_json(backend, i)).collect();
    json!({"items": items, "count": ITEMS.len()})
}

fn search(query: &str) -> Value {
    let q = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.to_lowercase())
        .unwrap_or_default();
    let hits: Vec<Value> = ITEMS
        .iter()
        .filter(|i| i.name.to_lowercase().contains(&q))
        .map(|i| item_json(Backend::Legacy, i))
        .collect();
    json!({"query": q, "results": hits})
}
