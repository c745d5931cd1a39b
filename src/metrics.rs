//! Every metric family banyan exports, in one place, in the prometheus default registry.
//! Labels are bounded: route and upstream names from the config, status classes, reasons.
//! Requests, their latency and shadow outcomes are not counted here but in `live`, whose
//! collector this registry exports.

use pingora_limits::rate::Rate;
use prometheus::{
    register_gauge, register_gauge_vec, register_histogram, register_histogram_vec,
    register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    Encoder, Gauge, GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

/// The label for requests that no route matched.
pub const DEFAULT_ROUTE: &str = "default";

pub struct Metrics {
    pub upstream_healthy: IntGaugeVec,
    pub fallbacks_total: IntCounterVec,
    pub config_reloads_total: IntCounterVec,
    pub config_version: IntGauge,
    pub config_last_reload_timestamp_seconds: Gauge,
    pub config_reload_duration_seconds: Histogram,
    pub shadow_field_diffs_total: IntCounterVec,
    pub shadow_duration_seconds: HistogramVec,
    pub shadow_samples_dropped_total: IntCounterVec,
    pub upstream_ejected: IntGaugeVec,
    pub outlier_ejections_total: IntCounterVec,
    pub upstream_retries_total: IntCounterVec,
    pub circuit_breaker_state: IntGaugeVec,
    pub circuit_breaker_transitions_total: IntCounterVec,
    pub circuit_breaker_diverted_total: IntCounterVec,
    pub client_refusals_total: IntCounterVec,
    pub access_log_lines_total: IntCounter,
    pub capture_records_total: IntCounterVec,
    pub capture_dropped_total: IntCounterVec,
    pub access_log_dropped_total: IntCounterVec,
    pub connections_open: IntGauge,
    pub connections_refused_total: IntCounter,
    pub migration_percent: GaugeVec,
    pub migration_moves_total: IntCounterVec,
    pub migration_stage: IntGaugeVec,
    pub fleet_connected: IntGauge,
    pub fleet_leader: IntGauge,
    pub fleet_config_version: IntGauge,
    pub fleet_ramp_figures: IntGaugeVec,
}

// Registration fails only on a duplicate name, a programming error caught by any test.
#[allow(clippy::expect_used)]
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    prometheus::register(crate::live::collector()).expect("register the live figures");
    Metrics {
    upstream_healthy: register_int_gauge_vec!(
        "banyan_upstream_healthy",
        "1 when the endpoint passes its health check (or has none), else 0.",
        &["upstream", "endpoint"]
    )
    .expect("register banyan_upstream_healthy"),
    fallbacks_total: register_int_counter_vec!(
        "banyan_fallbacks_total",
        "Requests sent to the fallback upstream after the chosen one failed, by reason.",
        &["route", "reason"]
    )
    .expect("register banyan_fallbacks_total"),
    config_reloads_total: register_int_counter_vec!(
        "banyan_config_reloads_total",
        "Config reloads by what triggered them (file, signal, api) and result (success, failure).",
        &["source", "result"]
    )
    .expect("register banyan_config_reloads_total"),
    config_version: register_int_gauge!(
        "banyan_config_version",
        "The version number of the running config (1 at start, +1 per applied change)."
    )
    .expect("register banyan_config_version"),
    config_last_reload_timestamp_seconds: register_gauge!(
        "banyan_config_last_reload_timestamp_seconds",
        "When the running config was applied, in seconds since the Unix epoch."
    )
    .expect("register banyan_config_last_reload_timestamp_seconds"),
    config_reload_duration_seconds: register_histogram!(
        "banyan_config_reload_duration_seconds",
        "Time from a reload's start (text in hand) to the swap of the new snapshot.",
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
    )
    .expect("register banyan_config_reload_duration_seconds"),
    shadow_field_diffs_total: register_int_counter_vec!(
        "banyan_shadow_field_diffs_total",
        "Comparisons in which a field differed between primary and shadow, by field and kind (fields past the per-route cap count as _other).",
        &["route", "field", "kind"]
    )
    .expect("register banyan_shadow_field_diffs_total"),
    shadow_duration_seconds: register_histogram_vec!(
        "banyan_shadow_duration_seconds",
        "Time to response headers, by route and side (primary, shadow, secondary).",
        &["route", "side"],
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("register banyan_shadow_duration_seconds"),
    shadow_samples_dropped_total: register_int_counter_vec!(
        "banyan_shadow_samples_dropped_total",
        "Mismatch samples not stored because the store's queue was full or it is not open.",
        &["route"]
    )
    .expect("register banyan_shadow_samples_dropped_total"),
    upstream_ejected: register_int_gauge_vec!(
        "banyan_upstream_ejected",
        "1 while passive outlier detection keeps the endpoint out of balancing, else 0.",
        &["upstream", "endpoint"]
    )
    .expect("register banyan_upstream_ejected"),
    outlier_ejections_total: register_int_counter_vec!(
        "banyan_outlier_ejections_total",
        "Times an endpoint was ejected after consecutive failures.",
        &["upstream", "endpoint"]
    )
    .expect("register banyan_outlier_ejections_total"),
    upstream_retries_total: register_int_counter_vec!(
        "banyan_upstream_retries_total",
        "Idempotent requests sent again to another endpoint, by the first attempt's failure (connect_failed, connection_error).",
        &["upstream", "reason"]
    )
    .expect("register banyan_upstream_retries_total"),
    circuit_breaker_state: register_int_gauge_vec!(
        "banyan_circuit_breaker_state",
        "The route's circuit breaker: 0 closed (traffic to the new service), 1 open (to legacy), 2 half-open (probing).",
        &["route"]
    )
    .expect("register banyan_circuit_breaker_state"),
    circuit_breaker_transitions_total: register_int_counter_vec!(
        "banyan_circuit_breaker_transitions_total",
        "Circuit breaker state changes, by the state entered.",
        &["route", "to"]
    )
    .expect("register banyan_circuit_breaker_transitions_total"),
    circuit_breaker_diverted_total: register_int_counter_vec!(
        "banyan_circuit_breaker_diverted_total",
        "Requests sent to legacy instead of the new service because the route's circuit was open.",
        &["route"]
    )
    .expect("register banyan_circuit_breaker_diverted_total"),
    client_refusals_total: register_int_counter_vec!(
        "banyan_client_refusals_total",
        "Requests banyan refused itself, by cause (bad_request, uri_too_long, headers_too_large, body_too_large, body_timeout, method_not_allowed).",
        &["cause"]
    )
    .expect("register banyan_client_refusals_total"),
    access_log_lines_total: register_int_counter!(
        "banyan_access_log_lines_total",
        "Access log lines written."
    )
    .expect("register banyan_access_log_lines_total"),
    access_log_dropped_total: register_int_counter_vec!(
        "banyan_access_log_dropped_total",
        "Access log lines not written, by reason (queue_full: the writer fell behind; write_failed: the file could not be written; closed: the writer had stopped).",
        &["reason"]
    )
    .expect("register banyan_access_log_dropped_total"),
    capture_records_total: register_int_counter_vec!(
        "banyan_capture_records_total",
        "Requests and their answers written to capture files, by route.",
        &["route"]
    )
    .expect("register banyan_capture_records_total"),
    capture_dropped_total: register_int_counter_vec!(
        "banyan_capture_dropped_total",
        "Sampled requests not captured, by reason (too_large: a body past the route's capture.max_body; incomplete: a body that broke or a client that left; queue_full: the writer fell behind; write_failed: the file could not be written).",
        &["reason"]
    )
    .expect("register banyan_capture_dropped_total"),
    connections_open: register_int_gauge!(
        "banyan_connections_open",
        "Client connections open (proxy and HTTPS listeners)."
    )
    .expect("register banyan_connections_open"),
    connections_refused_total: register_int_counter!(
        "banyan_connections_refused_total",
        "Client connections closed at once because server.max_connections were open."
    )
    .expect("register banyan_connections_refused_total"),
    migration_percent: register_gauge_vec!(
        "banyan_migration_percent",
        "The share of a ramped route's traffic on its new service, in percent.",
        &["route"]
    )
    .expect("register banyan_migration_percent"),
    migration_moves_total: register_int_counter_vec!(
        "banyan_migration_moves_total",
        "Moves of a route's ramp: advance, rollback (a gate failed), promote, manual_rollback, pause, resume.",
        &["route", "kind"]
    )
    .expect("register banyan_migration_moves_total"),
    migration_stage: register_int_gauge_vec!(
        "banyan_migration_stage",
        "1 for the stage a migrated route is at (legacy, shadow, canary, new, retired).",
        &["route", "stage"]
    )
    .expect("register banyan_migration_stage"),
    fleet_connected: register_int_gauge!(
        "banyan_fleet_connected",
        "Fleet mode: 1 while this instance reaches the fleet's PostgreSQL, else 0."
    )
    .expect("register banyan_fleet_connected"),
    fleet_leader: register_int_gauge!(
        "banyan_fleet_leader",
        "Fleet mode: 1 while this instance holds the leader lock (it judges the ramps), else 0."
    )
    .expect("register banyan_fleet_leader"),
    fleet_config_version: register_int_gauge!(
        "banyan_fleet_config_version",
        "Fleet mode: the fleet's config version this instance runs."
    )
    .expect("register banyan_fleet_config_version"),
    fleet_ramp_figures: register_int_gauge_vec!(
        "banyan_fleet_ramp_figures",
        "Fleet mode, on the leader: the fleet's cumulative figures a ramp is judged on, by route and figure (new_requests, new_errors, legacy_requests, legacy_errors, compared, matches).",
        &["route", "figure"]
    )
    .expect("register banyan_fleet_ramp_figures"),
}
});

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Count an applied config.
pub fn config_applied(source: &str, version: u64, seconds: f64) {
    let m = metrics();
    m.config_reloads_total
        .with_label_values(&[source, "success"])
        .inc();
    m.config_version
        .set(i64::try_from(version).unwrap_or(i64::MAX));
    m.config_last_reload_timestamp_seconds
        .set(crate::clock::now_unix());
    m.config_reload_duration_seconds.observe(seconds);
}

/// Count a refused config.
pub fn config_rejected(source: &str) {
    metrics()
        .config_reloads_total
        .with_label_values(&[source, "failure"])
        .inc();
}

/// A fallback counter for a route and reason.
pub fn fallback(route: &str, reason: &str) -> IntCounter {
    metrics()
        .fallbacks_total
        .with_label_values(&[route, reason])
}

/// The health gauge of one endpoint.
pub fn upstream_healthy(upstream: &str, endpoint: &str) -> IntGauge {
    metrics()
        .upstream_healthy
        .with_label_values(&[upstream, endpoint])
}

/// The ejection gauge of one endpoint.
pub fn upstream_ejected(upstream: &str, endpoint: &str) -> IntGauge {
    metrics()
        .upstream_ejected
        .with_label_values(&[upstream, endpoint])
}

pub fn outlier_ejection(upstream: &str, endpoint: &str) {
    metrics()
        .outlier_ejections_total
        .with_label_values(&[upstream, endpoint])
        .inc();
}

pub fn upstream_retry(upstream: &str, reason: &str) {
    metrics()
        .upstream_retries_total
        .with_label_values(&[upstream, reason])
        .inc();
}

pub fn breaker_state(route: &str) -> IntGauge {
    metrics().circuit_breaker_state.with_label_values(&[route])
}

/// Count a breaker's change of state, and set its gauge.
pub fn breaker_transition(route: &str, to: crate::breaker::State) {
    breaker_state(route).set(to.gauge());
    metrics()
        .circuit_breaker_transitions_total
        .with_label_values(&[route, to.label()])
        .inc();
}

pub fn breaker_diverted(route: &str) {
    metrics()
        .circuit_breaker_diverted_total
        .with_label_values(&[route])
        .inc();
}

pub fn migration_percent(route: &str) -> Gauge {
    metrics().migration_percent.with_label_values(&[route])
}

pub fn migration_move(route: &str, kind: &str) {
    metrics()
        .migration_moves_total
        .with_label_values(&[route, kind])
        .inc();
}

/// Mark the stage a route is at (1) and the others (0).
pub fn migration_stage(route: &str, stage: crate::migration::Stage) {
    for s in crate::migration::stage::ALL {
        metrics()
            .migration_stage
            .with_label_values(&[route, s.label()])
            .set(i64::from(s == stage));
    }
}

pub fn capture_written(route: &str) {
    metrics()
        .capture_records_total
        .with_label_values(&[route])
        .inc();
}

pub fn capture_dropped(reason: &str) {
    metrics()
        .capture_dropped_total
        .with_label_values(&[reason])
        .inc();
}

pub fn access_log_written(lines: u64) {
    metrics().access_log_lines_total.inc_by(lines);
}

pub fn access_log_dropped(reason: &str) {
    access_log_dropped_n(reason, 1);
}

pub fn access_log_dropped_n(reason: &str, lines: u64) {
    metrics()
        .access_log_dropped_total
        .with_label_values(&[reason])
        .inc_by(lines);
}

pub fn client_refusal(cause: &str) {
    metrics()
        .client_refusals_total
        .with_label_values(&[cause])
        .inc();
}

/// Live per-route rates for the admin API, from pingora-limits' lock-free estimators:
/// requests and 5xx responses per second over the last full second. Keyed by a hash of
/// the route name, so a route keeps its figures across reloads.
pub struct LiveRates {
    requests: Rate,
    errors: Rate,
}

static LIVE: LazyLock<LiveRates> = LazyLock::new(|| LiveRates {
    // 4 x 2048 slots: collisions stay rare for a few thousand routes.
    requests: Rate::new_with_estimator_config(Duration::from_secs(1), 4, 2048),
    errors: Rate::new_with_estimator_config(Duration::from_secs(1), 4, 2048),
});

pub fn live() -> &'static LiveRates {
    &LIVE
}

impl LiveRates {
    pub fn observe(&self, route_key: u64, status: http::StatusCode) {
        self.requests.observe(&route_key, 1);
        if status.is_server_error() {
            self.errors.observe(&route_key, 1);
        }
    }

    pub fn requests_per_second(&self, route_key: u64) -> f64 {
        self.requests.rate(&route_key)
    }

    pub fn errors_per_second(&self, route_key: u64) -> f64 {
        self.errors.rate(&route_key)
    }
}

/// The key of a route in the live rates.
pub fn live_key(route: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(route.as_bytes())
}

/// The text exposition of every registered metric.
pub fn render() -> String {
    LazyLock::force(&METRICS);
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if encoder.encode(&prometheus::gather(), &mut buf).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}
