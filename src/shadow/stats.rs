//! Per-route comparison counts, kept for the life of the process (across reloads), for
//! the admin API's verdicts.

use crate::compare::noise::{suggested_ignore, verdict, RouteCounts, Thresholds, Verdict};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// Window names (see `window`): comparisons (a mismatch counts as an "error" there),
/// failed shadows, and latency per side (`latency:primary`, `latency:shadow`).
pub const COMPARISONS: &str = "shadow:comparisons";
pub const SHADOW_ERRORS: &str = "shadow:errors";
pub const LATENCY_PREFIX: &str = "shadow:latency:";

static STATS: LazyLock<Mutex<HashMap<String, RouteCounts>>> = LazyLock::new(Default::default);

fn with<T>(f: impl FnOnce(&mut HashMap<String, RouteCounts>) -> T) -> T {
    let mut guard = STATS.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

/// Count one comparison of a route.
pub fn record(route: &str, raw: &[&str], noise: &[&str], max_fields: usize) {
    with(|s| {
        s.entry(route.to_string()).or_default().record(
            raw.iter().copied(),
            noise.iter().copied(),
            max_fields,
        )
    });
}

/// Count a shadow that failed (connect, timeout, a 5xx only on the shadow).
pub fn record_error(route: &str) {
    with(|s| s.entry(route.to_string()).or_default().errors += 1);
}

/// One field of a route, with its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct FieldReport {
    pub field: String,
    pub raw: u64,
    pub noise: u64,
    pub raw_rate: f64,
    pub noise_rate: f64,
    pub verdict: Verdict,
    pub suggested_ignore: Option<String>,
}

/// One route's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    pub route: String,
    pub compared: u64,
    pub matches: u64,
    pub mismatches: u64,
    pub errors: u64,
    pub fields: Vec<FieldReport>,
}

/// One route's cumulative comparisons, matches and raw differences per field.
pub fn totals(route: &str) -> (u64, u64, HashMap<String, u64>) {
    with(|s| match s.get(route) {
        Some(c) => (
            c.compared,
            c.matches,
            c.fields.iter().map(|(f, n)| (f.clone(), n.raw)).collect(),
        ),
        None => (0, 0, HashMap::new()),
    })
}

/// Every route's figures, fields with the most raw differences first.
pub fn report(thresholds: &Thresholds) -> Vec<RouteReport> {
    let mut out: Vec<RouteReport> = with(|s| {
        s.iter()
            .map(|(route, c)| {
                let rate = |n: u64| {
                    if c.compared == 0 {
                        0.0
                    } else {
                        n as f64 / c.compared as f64
                    }
                };
                let mut fields: Vec<FieldReport> = c
                    .fields
                    .iter()
                    .map(|(field, counts)| {
                        let v = verdict(*counts, c.compared, thresholds);
                        FieldReport {
                            field: field.clone(),
                            raw: counts.raw,
                            noise: counts.noise,
                            raw_rate: rate(counts.raw),
                            noise_rate: rate(counts.noise),
                            verdict: v,
                            suggested_ignore: (v == Verdict::Noise)
                                .then(|| suggested_ignore(field)),
                        }
                    })
                    .collect();
                fields.sort_by(|a, b| b.raw.cmp(&a.raw).then(a.field.cmp(&b.field)));
                RouteReport {
                    route: route.clone(),
                    compared: c.compared,
                    matches: c.matches,
                    mismatches: c.mismatches,
                    errors: c.errors,
                    fields,
                }
            })
            .collect()
    });
    out.sort_by(|a, b| a.route.cmp(&b.route));
    out
}

static LABELS: LazyLock<Mutex<HashMap<String, std::collections::HashSet<String>>>> =
    LazyLock::new(Default::default);

/// The metric label for a field: itself while the route has fewer than `max` distinct
/// field labels, `_other` past that, so label sets stay bounded.
pub fn field_label(route: &str, field: &str, max: usize) -> String {
    let mut labels = LABELS.lock().unwrap_or_else(|p| p.into_inner());
    let set = labels.entry(route.to_string()).or_default();
    if set.contains(field) || set.len() < max {
        set.insert(field.to_string());
        field.to_string()
    } else {
        crate::compare::noise::OTHER_FIELD.to_string()
    }
}
