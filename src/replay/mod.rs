//! `banyan replay`: send captured requests (capture files or HAR) to a target, compare
//! each answer with the recorded one under the compare rules of the route that recorded
//! it, and report per route, optionally learning noise from the legacy side as shadows
//! do. The CLI (main.rs) reads files and prints; this is the engine.

pub mod pace;
pub mod report;
pub mod samples;

use crate::capture::record::{parse_rfc3339, Record};
use crate::compare::{compare, Difference, Response, Rules};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pace::Pace;
use report::{Outcome, Tally};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers past this size are not compared (counted as failed).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The base URL requests go to: scheme, host and port (a path prefix is kept).
    pub target: Uri,
    /// The legacy side, asked the same requests to learn which fields change by
    /// themselves.
    pub noise: Option<Uri>,
    pub pace: Pace,
    pub concurrency: usize,
    pub limit: Option<usize>,
    /// Only these routes (empty: all).
    pub routes: Vec<String>,
    /// Only these methods (empty: all that `allow_writes` permits).
    pub methods: Vec<Method>,
    /// Send writes (POST, PUT, PATCH, DELETE...), not only safe methods.
    pub allow_writes: bool,
    /// Headers set on every request (test credentials: recorded ones are redacted).
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    /// Path prefixes replaced, in order: (`/api/v1/`, `/v2/`).
    pub rewrites: Vec<(String, String)>,
    pub timeout: Duration,
}

/// The compare rules by route name, and those for records of no known route.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    pub by_route: HashMap<String, Arc<Rules>>,
    pub default: Arc<Rules>,
}

impl RuleBook {
    pub fn for_route(&self, route: Option<&str>) -> &Arc<Rules> {
        route
            .and_then(|r| self.by_route.get(r))
            .unwrap_or(&self.default)
    }
}

/// Where a run stands, for a progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub mismatches: usize,
    pub failed: usize,
}

/// One replayed request with its outcome, for the diff store.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub record: Arc<Record>,
    pub answer: Option<Response>,
    pub latency: Duration,
    pub differences: Vec<Difference>,
}

/// Is this method one a replay sends without `--allow-writes`?
pub fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// The records a replay sends, in their recorded order: by route, method and safety,
/// then the first `limit`.
pub fn select(records: Vec<Record>, options: &Options) -> Vec<Record> {
    let mut chosen: Vec<Record> = records
        .into_iter()
        .filter(|r| options.allow_writes || is_safe(&r.request.method))
        .filter(|r| {
            options.methods.is_empty()
                || options
                    .methods
                    .iter()
                    .any(|m| m.as_str() == r.request.method)
        })
        .filter(|r| {
            options.routes.is_empty()
                || r.route
                    .as_ref()
                    .is_some_and(|name| options.routes.contains(name))
        })
        .collect();
    chosen.sort_by(|a, b| {
        let t = |r: &Record| parse_rfc3339(&r.time).unwrap_or(0.0);
        t(a).total_cmp(&t(b))
    });
    if let Some(limit) = options.limit {
        chosen.truncate(limit);
    }
    chosen
}

/// Replay `records` (already selected), calling `progress` after each; the tally and
/// every replayed request that differed.
pub async fn run(
    records: Vec<Record>,
    rules: &RuleBook,
    options: &Options,
    progress: impl Fn(Progress) + Send + Sync + 'static,
) -> (Tally, Vec<Replayed>) {
    let client = client();
    let total = records.len();
    let first = records
        .first()
        .and_then(|r| parse_rfc3339(&r.time))
        .unwrap_or(0.0);
    let shared = Arc::new(Shared {
        tally: Mutex::new(Tally::default()),
        differing: Mutex::new(Vec::new()),
        progress: Mutex::new(Progress {
            total,
            ..Progress::default()
        }),
        report: Box::new(progress),
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, record) in records.into_iter().enumerate() {
        let since_first = parse_rfc3339(&record.time).map_or(0.0, |t| t - first);
        tokio::time::sleep_until(start + options.pace.due(i, since_first)).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (client, shared, options) = (client.clone(), shared.clone(), options.clone());
        let rules = rules.for_route(record.route.as_deref()).clone();
        tasks.spawn(async move {
            let record = Arc::new(record);
            let one = replay_one(&client, &record, &rules, &options).await;
            shared.done(&record, one);
            drop(permit);
        });
        // Reap what has finished, so a long run holds no more than it must.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    // Every task has ended: the counts are this function's alone.
    Arc::into_inner(shared).map_or_else(
        || (Tally::default(), Vec::new()),
        |s| {
            (
                s.tally.into_inner().unwrap_or_else(|p| p.into_inner()),
                s.differing.into_inner().unwrap_or_else(|p| p.into_inner()),
            )
        },
    )
}

type ProgressFn = Box<dyn Fn(Progress) + Send + Sync>;

struct Shared {
    tally: Mutex<Tally>,
    differing: Mutex<Vec<Replayed>>,
    progress: Mutex<Progress>,
    report: ProgressFn,
}

impl Shared {
    fn done(&self, record: &Arc<Record>, one: One) {
        let request = format!("{} {}", record.request.method, record.request.target());
        let route = record.route.as_deref().unwrap_or("(no route)");
        let outcome = match &one.result {
            Err(why) => Outcome::Failed(why.clone()),
            Ok((_, differences)) => Outcome::Compared {
                differences: differences.clone(),
                noise: one.noise.clone(),
            },
        };
        self.tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(route, &request, &outcome);
        let now = {
            let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            p.done += 1;
            match &one.result {
                Err(_) => p.failed += 1,
                Ok((_, d)) if !d.is_empty() => p.mismatches += 1,
                Ok(_) => {}
            }
            *p
        };
        (self.report)(now);
        if let Ok((answer, differences)) = one.result {
            if !differences.is_empty() {
                self.differing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Replayed {
                        record: record.clone(),
                        answer: Some(answer),
                        latency: one.latency,
                        differences,
                    });
            }
        }
    }
}

type HttpClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// What replaying one record came to.
struct One {
    /// The target's answer and its differences from the recording, or why it failed.
    result: Result<(Response, Vec<Difference>), String>,
    /// With `--noise`: the legacy side's differences from its own recording.
    noise: Option<Vec<Difference>>,
    latency: Duration,
}

async fn replay_one(client: &HttpClient, record: &Record, rules: &Rules, options: &Options) -> One {
    let recorded = recorded_response(record);
    let started = Instant::now();
    let target = send(client, &options.target, record, options).await;
    let latency = started.elapsed();
    let noise = match &options.noise {
        Some(legacy) => match send(client, legacy, record, options).await {
            Ok(answer) => Some(compare(&recorded, &answer, rules)),
            Err(_) => None,
        },
        None => None,
    };
    let result = target.map(|answer| {
        let mut differences = compare(&recorded, &answer, rules);
        // The target is the new service: what it may add is no difference.
        differences.retain(|d| !rules.allows_extra(d, true));
        (answer, differences)
    });
    One {
        result,
        noise,
        latency,
    }
}

/// The recorded answer as the comparison reads it.
pub fn recorded_response(record: &Record) -> Response {
    Response {
        status: record.response.status,
        headers: header_map(&record.response.headers),
        body: record.response.body.bytes(),
        call: None,
    }
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// Headers of a recording that are not sent again: the connection's, the proxy's, and
/// any whose value the capture redacted (`--set-header` supplies real ones).
fn resent(name: &str, value: &str) -> bool {
    !matches!(
        name,
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "forwarded"
            | "x-banyan-shadow"
    ) && !value.contains("redacted:")
}

/// The request's path, with the first matching `--rewrite` prefix replaced.
pub fn rewritten(path: &str, rewrites: &[(String, String)]) -> String {
    for (from, to) in rewrites {
        if let Some(rest) = path.strip_prefix(from.as_str()) {
            return format!("{to}{rest}");
        }
    }
    path.to_string()
}

async fn send(
    client: &HttpClient,
    base: &Uri,
    record: &Record,
    options: &Options,
) -> Result<Response, String> {
    let path = rewritten(&record.request.path, &options.rewrites);
    let prefix = base.path().trim_end_matches('/');
    let target = match &record.request.query {
        Some(q) => format!("{prefix}{path}?{q}"),
        None => format!("{prefix}{path}"),
    };
    let authority = base.authority().ok_or("the target has no host")?;
    let uri = Uri::builder()
        .scheme(base.scheme_str().unwrap_or("http"))
        .authority(authority.as_str())
        .path_and_query(target)
        .build()
        .map_err(|e| format!("the recorded path is not a valid URI: {e}"))?;
    let method = Method::from_bytes(record.request.method.as_bytes())
        .map_err(|_| format!("{:?} is not a method", record.request.method))?;
    let mut req = http::Request::builder().method(method).uri(uri);
    let headers = req.headers_mut().ok_or("request")?;
    for (name, value) in &record.request.headers {
        if !resent(name, value) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    for (name, value) in &options.set_headers {
        headers.insert(name.clone(), value.clone());
    }
    let req = req
        .body(Full::new(record.request.body.bytes()))
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(options.timeout, async {
        let resp = client.request(req).await.map_err(|e| {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            why
        })?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("the answer's body: {e}"))?
            .to_bytes();
        Ok::<_, String>(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            call: None,
        })
    })
    .await
    .map_err(|_| format!("no answer within {:?}", options.timeout))??;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_replace_the_first_matching_prefix() {
        let rw = vec![
            ("/api/v1/".to_string(), "/v2/".to_string()),
            ("/api/".to_string(), "/".to_string()),
        ];
        assert_eq!(rewritten("/api/v1/items/7", &rw), "/v2/items/7");
        assert_eq!(rewritten("/api/cart", &rw), "/cart");
        assert_eq!(rewritten("/health", &rw), "/health");
    }

    #[test]
    fn redacted_and_hop_headers_are_not_sent_again() {
        assert!(resent("accept", "application/json"));
        assert!(!resent("authorization", "Bearer redacted:1a2b3c4d"));
        assert!(!resent("cookie", "redacted:00ff00ff"));
        assert!(!resent("host", "shop.example.com"));
        assert!(!resent("x-forwarded-for", "10.0.0.1"));
    }
}
