//! The read side of the admin API: routes with live traffic, shadow comparisons, diffs.

use super::respond::{error, json};
use crate::body::ResponseBody;
use crate::compare::noise::wilson;
use crate::config::summary::{describe_action, describe_match};
use crate::metrics;
use crate::routing::Action;
use crate::shadow::stats;
use crate::snapshot::Snapshot;
use crate::store::query;
use crate::window::{self, Figures};
use http::{Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// Query parameters, first value of each.
/// A query parameter of type `T`: absent, or a sentence naming what it should be.
pub fn typed<T: std::str::FromStr>(
    p: &HashMap<String, String>,
    name: &str,
    what: &str,
) -> Result<Option<T>, String> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v:?} is not {what}")),
    }
}

pub fn params(query: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// `GET /api/routes`: each route's rules and its traffic per upstream over the last 1 and
/// 15 minutes; the share of requests served by new services (any upstream but the
/// default).
pub fn routes(snap: &Snapshot) -> Value {
    let config = &snap.config;
    let name = |id: usize| config.upstreams[id].name.as_str();
    let legacy = config.routes.default_upstream();
    let live = metrics::live();
    let (mut all, mut all_new) = (0u64, 0u64);
    let mut entry = |route: &str, upstreams: &[usize], extra: Value| {
        let mut traffic = serde_json::Map::new();
        for (label, minutes) in [("1m", 1), ("15m", 15)] {
            let mut sides = serde_json::Map::new();
            for &u in upstreams {
                let f = window::existing(route, name(u))
                    .map(|w| w.figures(minutes))
                    .unwrap_or_default();
                sides.insert(
                    name(u).to_string(),
                    serde_json::to_value(f).unwrap_or_default(),
                );
            }
            traffic.insert(label.to_string(), Value::Object(sides));
        }
        let fifteen =
            |u: usize| window::existing(route, name(u)).map_or(0, |w| w.figures(15).requests);
        let total: u64 = upstreams.iter().map(|&u| fifteen(u)).sum();
        let new: u64 = upstreams
            .iter()
            .filter(|&&u| u != legacy)
            .map(|&u| fifteen(u))
            .sum();
        all += total;
        all_new += new;
        let key = metrics::live_key(route);
        let mut v = json!({
            "name": route,
            "upstreams": upstreams.iter().map(|&u| name(u)).collect::<Vec<_>>(),
            "traffic": traffic,
            "share_new": if total == 0 { Value::Null } else { json!(new as f64 / total as f64) },
            "live": {
                "requests_per_second": live.requests_per_second(key),
                "server_errors_per_second": live.errors_per_second(key),
            },
        });
        if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
            v.extend(extra);
        }
        v
    };
    let mut routes: Vec<Value> = config
        .routes
        .with_ids()
        .map(|(i, r)| {
            let features = config.features(i);
            let (kind, split_percent) = match &r.action {
                Action::Forward(_) if features.shadow.is_some() => ("shadow", None),
                Action::Forward(_) => ("forward", None),
                Action::Split(s) => ("split", Some(f64::from(s.current_threshold()) / 100.0)),
            };
            let upstreams = config.reachable(i);
            let breaker = snap
                .breaker(Some(i))
                .map(|b| super::resilience::breaker(b, name(r.legacy)));
            let shadow = features.shadow.as_ref().map(|s| {
                json!({
                    "to": name(s.to),
                    "back": s.back.map(name),
                    "percent": f64::from(s.threshold) / 100.0,
                    "noise": if s.noise { "secondary" } else { "off" },
                    "max_in_flight": s.max_in_flight,
                    "methods": s.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                })
            });
            entry(
                &r.name,
                &upstreams,
                json!({
                    "match": describe_match(&r.matches),
                    "action": describe_action(r, features, name),
                    "kind": kind,
                    "split_percent": split_percent,
                    "shadow": shadow,
                    "circuit_breaker": breaker,
                }),
            )
        })
        .collect();
    routes.push(entry(
        metrics::DEFAULT_ROUTE,
        &[legacy],
        json!({
            "match": "anything no route matches",
            "action": format!("-> {}", name(legacy)),
            "kind": "default",
            "split_percent": null,
            "shadow": null,
        }),
    ));
    json!({
        "routes": routes,
        "proxy": config.server.listen.to_string(),
        "legacy": name(legacy),
        "share_new_15m": if all == 0 { Value::Null } else { json!(all_new as f64 / all as f64) },
    })
}

/// `GET /api/shadow?window=1m|15m`: per shadowing route, comparisons over the window with
/// the match rate and its 95% Wilson interval, the latency of each side, a per-minute
/// match-rate sparkline, and (since start) every differing field with its verdict.
pub fn shadow(snap: &Snapshot, window_param: Option<&str>) -> Response<ResponseBody> {
    let minutes = match window_param.unwrap_or("15m") {
        "1m" => 1,
        "15m" => 15,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("window {other:?}: use 1m or 15m"),
            )
        }
    };
    let thresholds = &snap.config.shadow.thresholds;
    let reports = stats::report(thresholds);
    let mut names: Vec<String> = snap
        .config
        .routes
        .routes()
        .iter()
        .zip(&snap.config.features)
        .filter(|(_, f)| f.shadow.is_some())
        .map(|(r, _)| r.name.clone())
        .collect();
    for r in &reports {
        if !names.contains(&r.route) {
            names.push(r.route.clone());
        }
    }
    let now = window::now_minute();
    let routes: Vec<Value> = names
        .iter()
        .map(|name| {
            let figures = |w: &str| window::existing(name, w).map(|w| w.figures_at(now, minutes)).unwrap_or_default();
            let cmp: Figures = figures(stats::COMPARISONS);
            let errors = figures(stats::SHADOW_ERRORS).requests;
            let matches = cmp.requests - cmp.errors;
            let ci = wilson(matches, cmp.requests);
            let primary = figures(&format!("{}primary", stats::LATENCY_PREFIX));
            let shadow = figures(&format!("{}shadow", stats::LATENCY_PREFIX));
            let sparkline: Vec<Value> = window::existing(name, stats::COMPARISONS)
                .map(|w| w.series_at(now, 15))
                .unwrap_or_else(|| vec![(0, 0); 15])
                .into_iter()
                .map(|(n, bad)| if n == 0 { Value::Null } else { json!((n - bad) as f64 / n as f64) })
                .collect();
            let report = reports.iter().find(|r| &r.route == name);
            json!({
                "route": name,
                "window": format!("{minutes}m"),
                "comparisons": cmp.requests,
                "matches": matches,
                "mismatches": cmp.errors,
                "errors": errors,
                "match_rate": (cmp.requests > 0).then(|| matches as f64 / cmp.requests as f64),
                "match_rate_ci95": ci.map(|(lo, hi)| [lo, hi]),
                "latency_ms": {
                    "primary_p50": primary.p50_ms, "primary_p99": primary.p99_ms,
                    "shadow_p50": shadow.p50_ms, "shadow_p99": shadow.p99_ms,
                    "p50_difference": primary.p50_ms.zip(shadow.p50_ms).map(|(p, s)| s - p),
                },
                "sparkline": sparkline,
                "compared": report.map_or(0, |r| r.compared),
                "total_matches": report.map_or(0, |r| r.matches),
                "total_mismatches": report.map_or(0, |r| r.mismatches),
                "total_errors": report.map_or(0, |r| r.errors),
                "fields": report.map(|r| serde_json::to_value(&r.fields).unwrap_or_default()).unwrap_or(json!([])),
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({ "routes": routes, "in_flight": snap.shadow.limits.in_flight() }),
    )
}

fn store_path(snap: &Snapshot) -> Option<PathBuf> {
    snap.shadow.store.as_ref().map(|s| s.path().to_path_buf())
}

/// Why there is no store to read: none is needed, or it could not be opened.
fn no_store(snap: &Snapshot) -> Response<ResponseBody> {
    match &snap.store_error {
        Some(why) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the diff store could not be opened ({why}): shadows still compare and count, but no sample is kept; fix shadow.store and reload"),
        ),
        None => error(StatusCode::NOT_FOUND, "no diff store: no route shadows"),
    }
}

fn db_error(e: rusqlite::Error) -> Response<ResponseBody> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the diff store could not be read: {e}"),
    )
}

/// `GET /api/diffs?route=&signature=&since=&limit=&cursor=`: groups (newest first), or,
/// with `signature`, that group's samples. `cursor` comes from the previous page's
/// `next_cursor`.
pub async fn diffs(snap: &Snapshot, query: Option<&str>) -> Response<ResponseBody> {
    let p = params(query);
    let parsed = (|| -> Result<_, String> {
        let limit: Option<usize> = typed(&p, "limit", "a whole number from 1 to 500")?;
        if limit.is_some_and(|l| !(1..=500).contains(&l)) {
            return Err("limit is from 1 to 500".to_string());
        }
        let since: Option<f64> = typed(&p, "since", "a number of seconds since 1970")?;
        let cursor: Option<u64> = typed(&p, "cursor", "a cursor from next_cursor")?;
        Ok((limit, since.filter(|s| s.is_finite()), cursor))
    })();
    let (limit, since, cursor) = match parsed {
        Ok(v) => v,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let Some(path) = store_path(snap) else {
        return no_store(snap);
    };
    let limit = limit.unwrap_or(50);
    let route = p.get("route").cloned();
    let signature = p.get("signature").cloned();
    let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<Value> {
        match signature {
            Some(sig) => {
                let before = cursor.and_then(|c| i64::try_from(c).ok());
                let (samples, next) = query::samples(&path, Some(&sig), route.as_deref(), since, limit, before)?;
                Ok(json!({ "signature": sig, "samples": samples, "next_cursor": next.map(|n| n.to_string()) }))
            }
            None => {
                let offset = cursor.and_then(|c| usize::try_from(c).ok()).unwrap_or(0);
                let (groups, more) = query::groups(&path, route.as_deref(), since, limit, offset)?;
                Ok(json!({ "groups": groups, "next_cursor": more.then(|| (offset + limit).to_string()) }))
            }
        }
    })
    .await;
    match result {
        Ok(Ok(v)) => json(StatusCode::OK, &v),
        Ok(Err(e)) => db_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/diffs/{id}`: one sample, redacted, with both responses and the differences.
pub async fn diff(snap: &Snapshot, id: &str) -> Response<ResponseBody> {
    let Some(path) = store_path(snap) else {
        return no_store(snap);
    };
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a sample id"),
        );
    };
    match tokio::task::spawn_blocking(move || query::sample(&path, id)).await {
        Ok(Ok(Some(v))) => json(StatusCode::OK, &v),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("no sample {id}")),
        Ok(Err(e)) => db_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /api/diffs/clear?route=`: forget the samples of a route (of all, without route).
pub async fn clear(snap: &Snapshot, query: Option<&str>) -> Response<ResponseBody> {
    let Some(path) = store_path(snap) else {
        return no_store(snap);
    };
    let route = params(query).get("route").cloned();
    match tokio::task::spawn_blocking(move || query::clear(&path, route.as_deref())).await {
        Ok(Ok(n)) => json(StatusCode::OK, &json!({ "deleted_samples": n })),
        Ok(Err(e)) => db_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
