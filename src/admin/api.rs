//! The read side of the admin API: routes with live traffic, shadow comparisons, diffs.

use super::diff_source::{self, DiffSource, NoSource};
use super::respond::{error, json};
use super::views::{
    LiveRates, NoiseMode, RouteKind, RouteView, RoutesView, ShadowLatency, ShadowRouteView,
    ShadowSettingsView, ShadowView, Traffic,
};
use crate::body::ResponseBody;
use crate::compare::noise::wilson;
use crate::config::summary::{describe_action, describe_match};
use crate::fleet::Fleet;
use crate::live::{window, ShadowFigures, Window};
use crate::metrics;
use crate::routing::{Action, UpstreamId};
use crate::shadow::stats::{self, Minute, RouteReport, Tally};
use crate::snapshot::Snapshot;
use http::{Response, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

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
pub fn routes(snap: &Snapshot) -> RoutesView {
    let config = &snap.config;
    let name = |id: UpstreamId| config.upstreams[id].name.clone();
    let legacy = config.routes.default_upstream();
    let mut routes: Vec<RouteView> = config
        .routes
        .with_ids()
        .map(|(i, r)| {
            let features = config.features(i);
            let (kind, split_percent) = match &r.action {
                Action::Forward(_) if features.shadow.is_some() => (RouteKind::Shadow, None),
                Action::Forward(_) => (RouteKind::Forward, None),
                Action::Split(s) => (
                    RouteKind::Split,
                    Some(f64::from(s.current_threshold()) / 100.0),
                ),
            };
            let shadow = features.shadow.as_ref().map(|s| ShadowSettingsView {
                to: name(s.to),
                back: s.back.map(name),
                percent: f64::from(s.threshold) / 100.0,
                noise: if s.noise {
                    NoiseMode::Secondary
                } else {
                    NoiseMode::Off
                },
                max_in_flight: s.max_in_flight,
                methods: s.methods.iter().map(|m| m.to_string()).collect(),
            });
            let upstreams = config.reachable(i);
            let describe = |u: UpstreamId| config.upstreams[u].name.as_str();
            RouteView {
                matches: describe_match(&r.matches),
                action: describe_action(r, features, describe),
                kind,
                split_percent,
                shadow,
                circuit_breaker: snap
                    .breaker(Some(i))
                    .map(|b| super::resilience::breaker(b, describe(r.legacy))),
                ..traffic(snap, &r.name, &upstreams, legacy)
            }
        })
        .collect();
    routes.push(RouteView {
        matches: "anything no route matches".into(),
        action: format!("-> {}", name(legacy)),
        kind: RouteKind::Default,
        ..traffic(snap, metrics::DEFAULT_ROUTE, &[legacy], legacy)
    });
    let fifteen = |r: &RouteView| -> (u64, u64) {
        let of = |u: &String| r.traffic.fifteen_minutes.get(u).map_or(0, |f| f.requests);
        let total = r.upstreams.iter().map(of).sum();
        let new = r
            .upstreams
            .iter()
            .filter(|u| **u != name(legacy))
            .map(of)
            .sum();
        (total, new)
    };
    let (all, all_new) = routes
        .iter()
        .map(fifteen)
        .fold((0, 0), |(a, n), (t, new)| (a + t, n + new));
    RoutesView {
        routes,
        proxy: config.server.listen.to_string(),
        legacy: name(legacy),
        share_new_15m: share(all_new, all),
    }
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// A route's traffic: figures per upstream over 1 and 15 minutes, its share on new
/// services and its live rates; the rest of the view left for the caller.
fn traffic(
    snap: &Snapshot,
    route: &str,
    upstreams: &[UpstreamId],
    legacy: UpstreamId,
) -> RouteView {
    let name = |id: UpstreamId| snap.config.upstreams[id].name.clone();
    let figures = crate::live::existing(route);
    let side = |u: UpstreamId, minutes| {
        figures
            .as_ref()
            .and_then(|r| r.existing_side(&name(u)))
            .map(|s| s.window.figures(minutes))
            .unwrap_or_default()
    };
    let mut traffic = Traffic::default();
    for &u in upstreams {
        traffic.one_minute.insert(name(u), side(u, 1));
        traffic.fifteen_minutes.insert(name(u), side(u, 15));
    }
    let requests = |u: &UpstreamId| traffic.fifteen_minutes[&name(*u)].requests;
    let total: u64 = upstreams.iter().map(requests).sum();
    let new: u64 = upstreams
        .iter()
        .filter(|u| **u != legacy)
        .map(requests)
        .sum();
    let live = metrics::live();
    let key = metrics::live_key(route);
    RouteView {
        name: route.to_string(),
        upstreams: upstreams.iter().map(|&u| name(u)).collect(),
        traffic,
        share_new: share(new, total),
        live: LiveRates {
            requests_per_second: live.requests_per_second(key),
            server_errors_per_second: live.errors_per_second(key),
        },
        matches: String::new(),
        action: String::new(),
        kind: RouteKind::Forward,
        split_percent: None,
        shadow: None,
        circuit_breaker: None,
    }
}

/// `GET /api/shadow?window=1m|15m`: per shadowing route, comparisons over the window with
/// the match rate and its 95% Wilson interval, the latency of each side, a per-minute
/// match-rate sparkline, and (since start) every differing field with its verdict. In a
/// fleet, the comparisons and verdicts are the fleet's; latency is this instance's.
pub async fn shadow(
    snap: &Snapshot,
    fleet: Option<&Arc<Fleet>>,
    window_param: Option<&str>,
) -> Response<ResponseBody> {
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
    let (tallies, scope) = diff_source::tallies(fleet).await;
    let mut reports = stats::report(
        tallies.iter().map(|(r, t)| (r.as_str(), t)),
        &snap.config.shadow.thresholds,
    );
    // Shadowing routes, and those that shadowed under an earlier config.
    let mut names: Vec<String> = snap
        .config
        .routes
        .with_ids()
        .filter(|(i, _)| snap.config.features(*i).shadow.is_some())
        .map(|(_, r)| r.name.clone())
        .collect();
    for r in &reports {
        if !names.contains(&r.route) {
            names.push(r.route.clone());
        }
    }
    let now = window::now_minute();
    let routes = names
        .into_iter()
        .map(|name| {
            let report = reports
                .iter()
                .position(|r| r.route == name)
                .map(|i| reports.swap_remove(i));
            let tally = tallies.iter().find(|(r, _)| *r == name).map(|(_, t)| t);
            shadow_route(name, report, tally, now, minutes)
        })
        .collect();
    let view = ShadowView {
        routes,
        in_flight: snap.shadow.limits.in_flight(),
        scope,
    };
    json(StatusCode::OK, &view)
}

/// One route's comparisons over the last `minutes` to `now`, and since start.
fn shadow_route(
    name: String,
    report: Option<RouteReport>,
    tally: Option<&Tally>,
    now: u64,
    minutes: u64,
) -> ShadowRouteView {
    let figures = crate::live::existing(&name);
    let over = |w: fn(&ShadowFigures) -> &Window| {
        figures
            .as_ref()
            .map(|r| w(&r.shadow).figures_at(now, minutes))
            .unwrap_or_default()
    };
    let primary = over(|s| &s.primary_latency);
    let shadow = over(|s| &s.shadow_latency);
    let series =
        |n: u64| tally.map_or_else(|| vec![Minute::default(); n as usize], |t| t.series(now, n));
    let window: Minute = series(minutes)
        .iter()
        .fold(Minute::default(), |sum, m| Minute {
            compared: sum.compared + m.compared,
            mismatched: sum.mismatched + m.mismatched,
            failed: sum.failed + m.failed,
        });
    // Saturating: a fleet's minutes are sums of instances' flushes, not one snapshot.
    let matches = window.compared.saturating_sub(window.mismatched);
    let sparkline = series(15)
        .into_iter()
        .map(|m| share(m.compared.saturating_sub(m.mismatched), m.compared))
        .collect();
    let report = report.unwrap_or_else(|| RouteReport::empty(&name));
    ShadowRouteView {
        window: format!("{minutes}m"),
        comparisons: window.compared,
        matches,
        mismatches: window.mismatched,
        errors: window.failed,
        match_rate: share(matches, window.compared),
        match_rate_ci95: wilson(matches, window.compared).map(|(lo, hi)| [lo, hi]),
        latency_ms: ShadowLatency {
            primary_p50: primary.p50_ms,
            primary_p99: primary.p99_ms,
            shadow_p50: shadow.p50_ms,
            shadow_p99: shadow.p99_ms,
            p50_difference: primary.p50_ms.zip(shadow.p50_ms).map(|(p, s)| s - p),
        },
        sparkline,
        compared: report.compared,
        total_matches: report.matches,
        total_mismatches: report.mismatches,
        total_errors: report.errors,
        fields: report.fields,
        route: name,
    }
}

/// Why no samples can be read, as an answer.
fn no_source(why: NoSource) -> Response<ResponseBody> {
    match why {
        NoSource::Unavailable(why) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the diff store could not be opened ({why}): shadows still compare and count, but no sample is kept; fix shadow.store and reload"),
        ),
        NoSource::NoShadow => error(StatusCode::NOT_FOUND, "no diff store: no route shadows"),
    }
}

fn db_error(e: String) -> Response<ResponseBody> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the diff store could not be read: {e}"),
    )
}

/// `GET /api/diffs?route=&signature=&since=&limit=&cursor=`: groups (newest first), or,
/// with `signature`, that group's samples. `cursor` comes from the previous page's
/// `next_cursor`.
pub async fn diffs(
    snap: &Snapshot,
    fleet: Option<&Arc<Fleet>>,
    query: Option<&str>,
) -> Response<ResponseBody> {
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
    let source = match DiffSource::of(snap, fleet) {
        Ok(s) => s,
        Err(why) => return no_source(why),
    };
    let limit = limit.unwrap_or(50);
    let route = p.get("route").cloned();
    let result = match p.get("signature").cloned() {
        Some(sig) => {
            let before = cursor.and_then(|c| i64::try_from(c).ok());
            source
                .samples(sig.clone(), route, since, limit, before)
                .await
                .map(|(samples, next)| {
                    json!({ "signature": sig, "samples": samples, "next_cursor": next.map(|n| n.to_string()) })
                })
        }
        None => {
            let offset = cursor.and_then(|c| usize::try_from(c).ok()).unwrap_or(0);
            source
                .groups(route, since, limit, offset)
                .await
                .map(|(groups, more)| {
                    json!({ "groups": groups, "next_cursor": more.then(|| (offset + limit).to_string()) })
                })
        }
    };
    match result {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => db_error(e),
    }
}

/// `GET /api/diffs/{id}`: one sample, redacted, with both responses and the differences.
pub async fn diff(snap: &Snapshot, fleet: Option<&Arc<Fleet>>, id: &str) -> Response<ResponseBody> {
    let source = match DiffSource::of(snap, fleet) {
        Ok(s) => s,
        Err(why) => return no_source(why),
    };
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a sample id"),
        );
    };
    match source.sample(id).await {
        Ok(Some(v)) => json(StatusCode::OK, &v),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no sample {id}")),
        Err(e) => db_error(e),
    }
}

/// `POST /api/diffs/clear?route=`: forget the samples of a route (of all, without route).
pub async fn clear(
    snap: &Snapshot,
    fleet: Option<&Arc<Fleet>>,
    query: Option<&str>,
) -> Response<ResponseBody> {
    let source = match DiffSource::of(snap, fleet) {
        Ok(s) => s,
        Err(why) => return no_source(why),
    };
    let route = params(query).get("route").cloned();
    match source.clear(route).await {
        Ok(n) => json(StatusCode::OK, &json!({ "deleted_samples": n })),
        Err(e) => db_error(e),
    }
}
