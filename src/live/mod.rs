//! Live figures of every route, typed, in one place: the data plane counts into them,
//! and the migration ramp, the admin API and Prometheus read them (Prometheus exports
//! them; it is not their source). Kept by route name for the life of the process, so a
//! reload keeps a route's figures; a snapshot resolves its routes' handles once, so the
//! request path looks nothing up.

mod export;
pub mod histogram;
pub mod latency;
pub mod window;

use crate::compare::noise::{RouteCounts, OTHER_FIELD};
use histogram::Histogram;
use latency::{LatencyCounts, LatencyHistogram};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
pub use window::{Figures, Window};

/// The classes a status falls in, as labels: index by `status / 100`.
pub const STATUS_CLASSES: [&str; 6] = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// What became of one shadow copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowOutcome {
    Match,
    Mismatch,
    Error,
    Timeout,
    /// A limit on copies in flight was full.
    Dropped,
    TooLarge,
    Skipped,
}

impl ShadowOutcome {
    pub const ALL: [ShadowOutcome; 7] = [
        ShadowOutcome::Match,
        ShadowOutcome::Mismatch,
        ShadowOutcome::Error,
        ShadowOutcome::Timeout,
        ShadowOutcome::Dropped,
        ShadowOutcome::TooLarge,
        ShadowOutcome::Skipped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ShadowOutcome::Match => "match",
            ShadowOutcome::Mismatch => "mismatch",
            ShadowOutcome::Error => "error",
            ShadowOutcome::Timeout => "timeout",
            ShadowOutcome::Dropped => "dropped",
            ShadowOutcome::TooLarge => "skipped_body_too_large",
            ShadowOutcome::Skipped => "skipped",
        }
    }
}

/// One route's figures: per upstream that answered it, and of its shadow copies.
pub struct RouteFigures {
    pub name: String,
    sides: Mutex<Vec<(String, Arc<SideFigures>)>>,
    pub shadow: ShadowFigures,
}

/// What one upstream answered for one route.
#[derive(Default)]
pub struct SideFigures {
    by_class: [AtomicU64; 6],
    duration: Histogram,
    /// Fine-grained, for the ramp's latency gate.
    latency: LatencyHistogram,
    /// The last minutes, for the admin API.
    pub window: Window,
    /// gRPC calls by status code (`grpc::status::ALL`'s order).
    grpc: [AtomicU64; 17],
}

/// Cumulative requests, 5xx answers and latencies of one side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideTotals {
    pub requests: u64,
    pub errors: u64,
    pub latency: LatencyCounts,
}

impl SideFigures {
    /// Count one answer, `seconds` after the request arrived.
    pub fn observe(&self, status: http::StatusCode, seconds: f64) {
        let class = usize::from(status.as_u16() / 100);
        self.by_class[if class < 6 { class } else { 0 }].fetch_add(1, Ordering::Relaxed);
        self.duration.observe(seconds);
        self.latency.record(seconds);
        self.window.record(seconds, status.is_server_error());
    }

    pub fn totals(&self) -> SideTotals {
        SideTotals {
            requests: self
                .by_class
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum(),
            errors: self.by_class[5].load(Ordering::Relaxed),
            latency: self.latency.read(),
        }
    }

    /// Requests by status class, in the order of `STATUS_CLASSES`.
    pub fn by_class(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.by_class[i].load(Ordering::Relaxed))
    }

    /// Count one gRPC call by its status: also as the HTTP status it equals, so that a
    /// failed call is an error to the windows and the ramp's gates.
    pub fn observe_call(&self, code: crate::grpc::Code, seconds: f64) {
        self.grpc[code as usize].fetch_add(1, Ordering::Relaxed);
        self.observe(code.http_equivalent(), seconds);
    }

    /// gRPC calls by status code, in wire order.
    pub fn grpc_calls(&self) -> [u64; 17] {
        std::array::from_fn(|i| self.grpc[i].load(Ordering::Relaxed))
    }
}

/// A route's shadow copies: outcomes, comparisons with their fields, and the last minutes.
#[derive(Default)]
pub struct ShadowFigures {
    outcomes: [AtomicU64; ShadowOutcome::ALL.len()],
    comparisons: Mutex<RouteCounts>,
    field_labels: Mutex<HashSet<String>>,
    /// Comparisons; a mismatch counts as an error.
    pub compared: Window,
    /// Copies that failed (connect, timeout, a 5xx only on the shadow).
    pub failed: Window,
    pub primary_latency: Window,
    pub shadow_latency: Window,
}

/// Cumulative comparisons of a route, and raw differences per field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComparisonTotals {
    pub compared: u64,
    pub matches: u64,
    pub fields: HashMap<String, u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ShadowFigures {
    /// Count what became of a copy, in the totals and the windows.
    pub fn outcome(&self, outcome: ShadowOutcome) {
        let i = ShadowOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        match outcome {
            ShadowOutcome::Match | ShadowOutcome::Mismatch => self
                .compared
                .record(0.0, outcome == ShadowOutcome::Mismatch),
            ShadowOutcome::Error | ShadowOutcome::Timeout => {
                lock(&self.comparisons).errors += 1;
                self.failed.record(0.0, true);
            }
            _ => {}
        }
    }

    /// Copies by outcome, in the order of `ShadowOutcome::ALL`.
    pub fn outcomes(&self) -> [u64; ShadowOutcome::ALL.len()] {
        std::array::from_fn(|i| self.outcomes[i].load(Ordering::Relaxed))
    }

    /// Count one comparison: the fields that differed from the shadow (`raw`) and from
    /// the primary's second answer (`noise`).
    pub fn compared(&self, raw: &[&str], noise: &[&str], max_fields: usize) {
        lock(&self.comparisons).record(raw.iter().copied(), noise.iter().copied(), max_fields);
    }

    /// Every comparison so far, with each field's counts.
    pub fn comparisons(&self) -> RouteCounts {
        lock(&self.comparisons).clone()
    }

    pub fn totals(&self) -> ComparisonTotals {
        let c = lock(&self.comparisons);
        ComparisonTotals {
            compared: c.compared,
            matches: c.matches,
            fields: c.fields.iter().map(|(f, n)| (f.clone(), n.raw)).collect(),
        }
    }

    /// The metric label for a field: itself while the route has fewer than `max` distinct
    /// field labels, `_other` past that, so label sets stay bounded.
    pub fn field_label(&self, field: &str, max: usize) -> String {
        let mut labels = lock(&self.field_labels);
        if labels.contains(field) || labels.len() < max {
            labels.insert(field.to_string());
            field.to_string()
        } else {
            OTHER_FIELD.to_string()
        }
    }
}

impl RouteFigures {
    fn new(name: &str) -> Self {
        RouteFigures {
            name: name.to_string(),
            sides: Mutex::default(),
            shadow: ShadowFigures::default(),
        }
    }

    /// The figures of `upstream` on this route, made on first use.
    pub fn side(&self, upstream: &str) -> Arc<SideFigures> {
        let mut sides = lock(&self.sides);
        if let Some((_, s)) = sides.iter().find(|(n, _)| n == upstream) {
            return s.clone();
        }
        let side = Arc::new(SideFigures::default());
        sides.push((upstream.to_string(), side.clone()));
        side
    }

    /// The figures of `upstream` on this route, if it ever counted one.
    pub fn existing_side(&self, upstream: &str) -> Option<Arc<SideFigures>> {
        lock(&self.sides)
            .iter()
            .find(|(n, _)| n == upstream)
            .map(|(_, s)| s.clone())
    }

    /// Requests over the last `minutes`, whichever upstream answered.
    pub fn requests(&self, minutes: u64) -> u64 {
        lock(&self.sides)
            .iter()
            .map(|(_, s)| s.window.figures(minutes).requests)
            .sum()
    }

    /// Every side, by upstream name.
    pub fn sides(&self) -> Vec<(String, Arc<SideFigures>)> {
        lock(&self.sides).clone()
    }
}

static ROUTES: LazyLock<Mutex<HashMap<String, Arc<RouteFigures>>>> =
    LazyLock::new(Default::default);

/// The figures of a route, made on first use.
pub fn route(name: &str) -> Arc<RouteFigures> {
    lock(&ROUTES)
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(RouteFigures::new(name)))
        .clone()
}

/// The figures of a route, if it was ever built into a snapshot.
pub fn existing(name: &str) -> Option<Arc<RouteFigures>> {
    lock(&ROUTES).get(name).cloned()
}

/// Every route that ever had figures, by name.
pub fn routes() -> Vec<Arc<RouteFigures>> {
    let mut all: Vec<Arc<RouteFigures>> = lock(&ROUTES).values().cloned().collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// The collector that exports these figures to the Prometheus registry.
pub fn collector() -> Box<dyn prometheus::core::Collector> {
    Box::new(export::LiveCollector::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn sides_count_by_class_and_totals_read_them() {
        let route = RouteFigures::new("r");
        let new = route.side("new");
        new.observe(StatusCode::OK, 0.002);
        new.observe(StatusCode::BAD_GATEWAY, 0.004);
        new.observe(StatusCode::from_u16(999).expect("status"), 0.001);
        let totals = new.totals();
        assert_eq!((totals.requests, totals.errors), (3, 1));
        assert_eq!(totals.latency.count(), 3);
        assert_eq!(new.by_class(), [1, 0, 1, 0, 0, 1], "999 counts as other");
        assert!(
            Arc::ptr_eq(&new, &route.side("new")),
            "one side per upstream"
        );
        assert!(route.existing_side("legacy").is_none());
    }

    #[test]
    fn shadow_outcomes_feed_totals_and_windows() {
        let s = ShadowFigures::default();
        s.compared(&[], &[], 10);
        s.outcome(ShadowOutcome::Match);
        s.compared(&["$.price"], &[], 10);
        s.outcome(ShadowOutcome::Mismatch);
        s.outcome(ShadowOutcome::Timeout);
        s.outcome(ShadowOutcome::Dropped);
        let t = s.totals();
        assert_eq!((t.compared, t.matches), (2, 1));
        assert_eq!(t.fields.get("$.price"), Some(&1));
        assert_eq!(s.outcomes(), [1, 1, 0, 1, 1, 0, 0]);
        assert_eq!(s.comparisons().errors, 1);
        let f = s.compared.figures(1);
        assert_eq!((f.requests, f.errors), (2, 1));
        assert_eq!(s.failed.figures(1).requests, 1);
    }

    #[test]
    fn field_labels_are_bounded() {
        let s = ShadowFigures::default();
        assert_eq!(s.field_label("$.a", 2), "$.a");
        assert_eq!(s.field_label("$.b", 2), "$.b");
        assert_eq!(s.field_label("$.c", 2), OTHER_FIELD);
        assert_eq!(
            s.field_label("$.a", 2),
            "$.a",
            "a known field keeps its label"
        );
    }
}
