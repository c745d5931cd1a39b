//! What the read side of the admin API answers, as types: the handlers fill them, serde
//! writes them, and the same types describe the responses in the OpenAPI document
//! (`openapi.rs`), so the document cannot drift from the answers.

use crate::live::Figures;
use crate::migration::ramp::GateReport;
use crate::migration::state::Event;
use crate::shadow::stats::FieldReport;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// `GET /api/routes`
#[derive(Debug, Serialize, JsonSchema)]
pub struct RoutesView {
    /// Every route in match order, then the default (what no route matches).
    pub routes: Vec<RouteView>,
    /// The proxy's listen address.
    pub proxy: String,
    /// The default upstream.
    pub legacy: String,
    /// Share of the last 15 minutes' requests served by another upstream than the
    /// default; null without traffic.
    pub share_new_15m: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RouteView {
    pub name: String,
    /// Every upstream the route can send to.
    pub upstreams: Vec<String>,
    pub traffic: Traffic,
    /// Share of the last 15 minutes' requests not served by the default upstream.
    pub share_new: Option<f64>,
    pub live: LiveRates,
    /// The route's match, in words.
    #[serde(rename = "match")]
    pub matches: String,
    /// The route's action, in words.
    pub action: String,
    pub kind: RouteKind,
    /// The split's current share on its second upstream, in percent.
    pub split_percent: Option<f64>,
    pub shadow: Option<ShadowSettingsView>,
    pub circuit_breaker: Option<BreakerView>,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    Forward,
    Shadow,
    Split,
    /// What no route matches.
    Default,
}

/// Figures per upstream over the last 1 and 15 minutes.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Traffic {
    #[serde(rename = "1m")]
    pub one_minute: BTreeMap<String, Figures>,
    #[serde(rename = "15m")]
    pub fifteen_minutes: BTreeMap<String, Figures>,
}

/// Rates over the last full second.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LiveRates {
    pub requests_per_second: f64,
    pub server_errors_per_second: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ShadowSettingsView {
    /// Where copies go when the primary serves.
    pub to: String,
    /// Where copies go when the shadow side serves (a split or ramp), if anywhere.
    pub back: Option<String>,
    pub percent: f64,
    pub noise: NoiseMode,
    pub max_in_flight: usize,
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoiseMode {
    /// A second copy to the primary tells noise from differences.
    Secondary,
    Off,
}

/// A route's circuit breaker.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BreakerView {
    /// closed, open or half_open.
    pub state: String,
    /// Where the breaker sends traffic while open.
    pub legacy: String,
    pub window: BreakerWindow,
    pub last_transition: Option<TransitionView>,
    pub settings: BreakerSettingsView,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BreakerWindow {
    pub requests: u32,
    pub errors: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TransitionView {
    pub to: String,
    pub reason: String,
    pub seconds_ago: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BreakerSettingsView {
    pub error_rate: f64,
    pub min_requests: u32,
    pub window: String,
    pub open_for: String,
    pub probes: u32,
}

/// Whose traffic shadow figures count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// This instance's: it runs alone.
    Instance,
    /// The fleet's sums, from PostgreSQL.
    Fleet,
    /// This instance's only: it is in a fleet, but PostgreSQL could not be read.
    InstanceFleetUnreachable,
}

/// `GET /api/shadow`
#[derive(Debug, Serialize, JsonSchema)]
pub struct ShadowView {
    pub routes: Vec<ShadowRouteView>,
    /// Shadow copies in flight now, all routes, on this instance.
    pub in_flight: usize,
    /// Whose traffic the comparisons, match rates and verdicts count: this instance's,
    /// or (in a fleet) every instance's as of its last flush. Latency is this
    /// instance's.
    pub scope: Scope,
}

/// One shadowing route: comparisons over the window, and since start.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ShadowRouteView {
    pub route: String,
    /// `1m` or `15m`.
    pub window: String,
    pub comparisons: u64,
    pub matches: u64,
    pub mismatches: u64,
    /// Copies that failed (connect, timeout, a 5xx only on the shadow).
    pub errors: u64,
    pub match_rate: Option<f64>,
    /// The match rate's 95% Wilson interval.
    pub match_rate_ci95: Option<[f64; 2]>,
    pub latency_ms: ShadowLatency,
    /// Match rate per minute over the last 15, oldest first; null for a minute without
    /// comparisons.
    pub sparkline: Vec<Option<f64>>,
    pub compared: u64,
    pub total_matches: u64,
    pub total_mismatches: u64,
    pub total_errors: u64,
    /// Every field that differed since start, most differences first.
    pub fields: Vec<FieldReport>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ShadowLatency {
    pub primary_p50: Option<f64>,
    pub primary_p99: Option<f64>,
    pub shadow_p50: Option<f64>,
    pub shadow_p99: Option<f64>,
    /// Shadow's p50 minus primary's.
    pub p50_difference: Option<f64>,
}

/// `GET /api/migration`
#[derive(Debug, Serialize, JsonSchema)]
pub struct MigrationView {
    pub routes: Vec<MigrationRouteView>,
    pub summary: StageSummary,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MigrationRouteView {
    pub route: String,
    pub stage: String,
    pub next_stage: Option<String>,
    pub legacy: String,
    pub new: String,
    pub percent_new: f64,
    pub requests_15m: u64,
    pub ramp: Option<RampView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RampView {
    pub steps: Vec<f64>,
    /// Index into `steps`; null before the first step (0%).
    pub step: Option<usize>,
    pub paused: bool,
    /// Why the last evaluation held the ramp.
    pub holding: Option<String>,
    pub step_seconds: f64,
    pub min_time: String,
    pub min_requests: u64,
    pub interval: String,
    pub gates: GatesView,
    /// Each gate at the last judgement: what it compared, the samples, the statistic,
    /// the verdict and what it waits for.
    pub judgement: Vec<GateReport>,
    /// Judgements in a row with a failed gate; a rollback comes at `failure_limit`.
    pub failed_in_a_row: u32,
    pub events: VecDeque<Event>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GatesView {
    pub min_match_rate: f64,
    pub min_comparisons: u64,
    pub max_error_margin: f64,
    pub max_error_rate: f64,
    /// p50, p90 or p99.
    pub latency_quantile: String,
    /// Requests each side needs at a step before the latency gate judges.
    pub latency_min_samples: u64,
    pub max_latency_factor: f64,
    pub confidence: f64,
    pub failure_limit: u32,
}

/// Routes and traffic per stage.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StageSummary {
    pub stages: Vec<StageShare>,
    pub requests_15m: u64,
    pub unmatched_requests_15m: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StageShare {
    /// A stage, or `unmanaged` for routes without a migration.
    pub stage: String,
    pub routes: usize,
    pub traffic_share_15m: Option<f64>,
}

/// `GET /api/migration/report`
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReportView {
    pub routes: Vec<ReadinessView>,
    pub summary: StageSummary,
    /// Whose comparisons the match rates and regressions count (requests per side over
    /// 15 minutes are this instance's).
    pub scope: Scope,
}

/// Where a migrated route stands, and whether it is ready for its next stage.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadinessView {
    pub route: String,
    pub stage: String,
    pub next_stage: Option<String>,
    pub percent_new: f64,
    pub requests_15m: SideRequests,
    /// Comparisons since start.
    pub compared: u64,
    pub match_rate: Option<f64>,
    pub match_rate_ci95: Option<[f64; 2]>,
    /// Fields that differ and are not noise.
    pub regressions: Vec<Regression>,
    pub ready: bool,
    /// Why it is ready, or what it waits for.
    pub why: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SideRequests {
    pub legacy: u64,
    pub new: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Regression {
    pub field: String,
    pub count: u64,
    pub rate: f64,
    /// A stored sample that shows it, when the store has one.
    pub example_id: Option<i64>,
}

/// `GET /api/upstreams`
#[derive(Debug, Serialize, JsonSchema)]
pub struct UpstreamsView {
    pub upstreams: Vec<UpstreamView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UpstreamView {
    pub name: String,
    pub endpoints: Vec<EndpointView>,
    pub timeouts: TimeoutsView,
    /// Further endpoints an idempotent request may try after a connect failure.
    pub retries: u32,
    pub outlier_detection: Option<OutlierView>,
    pub tls: UpstreamTlsView,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EndpointView {
    pub endpoint: String,
    /// Passes its health check (or has none).
    pub healthy: bool,
    /// Kept out of balancing by outlier detection.
    pub ejected: bool,
    pub ejected_for_seconds: Option<f64>,
    pub consecutive_failures: u32,
    pub ejections: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TimeoutsView {
    pub connect: String,
    pub read: String,
    pub write: String,
    pub idle: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OutlierView {
    pub consecutive_failures: u32,
    pub base_ejection: String,
    pub max_ejection: String,
    pub max_ejected_percent: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UpstreamTlsView {
    pub custom_ca: bool,
    pub insecure_skip_verify: bool,
}

/// `GET /api/fleet`
#[derive(Debug, Serialize, JsonSchema)]
pub struct FleetView {
    /// This instance's name.
    pub instance: String,
    /// PostgreSQL answered.
    pub connected: bool,
    pub last_error: Option<String>,
    /// The fleet's config version this instance runs.
    pub config_version: Option<i64>,
    /// Why the fleet's newest version could not be applied here.
    pub config_error: Option<String>,
    pub heartbeat_seconds: f64,
    /// This instance holds the leader lock: it judges the ramps on the fleet's figures.
    pub leader: bool,
    /// Every instance that sent a heartbeat, the most recent first.
    pub instances: Vec<crate::fleet::InstanceRow>,
}
