//! The config file as written: plain serde structs that mirror the TOML, with spans kept
//! on every value a later check may need to point at. Nothing here is interpreted yet.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    /// Name of the upstream (the monolith) that takes every request no route matches.
    pub default: Spanned<String>,
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub shadow: RawShadowSettings,
    /// Many instances sharing state through PostgreSQL.
    pub fleet: Option<Spanned<RawFleet>>,
    /// One line per request.
    pub access_log: Option<Spanned<RawAccessLog>>,
    pub capture: Option<Spanned<RawCapture>>,
    /// OpenTelemetry traces, exported over OTLP.
    pub tracing: Option<Spanned<RawTracing>>,
}

/// `[tracing]`: where spans go and which requests are traced.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// The collector: `http://host:4318/v1/traces` (HTTP) or `http://host:4317` (gRPC).
    pub endpoint: Spanned<String>,
    /// `"http/protobuf"` (the default) or `"grpc"`.
    pub protocol: Option<Spanned<String>>,
    /// Share of the traces banyan starts; a request with a `traceparent` follows it.
    pub percent: Option<Spanned<f64>>,
    pub service_name: Option<Spanned<String>>,
    /// Spans waiting for export; past it, dropped.
    pub max_queue: Option<Spanned<i64>>,
    /// How long one export may take.
    pub timeout: Option<Spanned<String>>,
}

/// `[capture]`: where captured traffic is written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    /// The directory of the capture files (created if missing).
    pub dir: Option<Spanned<String>>,
    /// A file is rotated at this size: bytes, or `"64MiB"`.
    pub max_file_size: Option<Spanned<ByteSize>>,
    /// ... or at this age: `"1h"`.
    pub max_file_age: Option<Spanned<String>>,
    /// The directory's capture files are kept under this size in all.
    pub max_total: Option<Spanned<ByteSize>>,
    /// Records waiting for the writer; beyond, dropped and counted.
    pub queue: Option<Spanned<i64>>,
}

/// A size: a number of bytes, or text with a unit (`"256KiB"`, `"64MiB"`, `"1GiB"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(i64),
    Text(String),
}

/// A route's `capture = { percent = 1, methods = ["GET"], max_body = "256KiB" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCapture {
    pub percent: Spanned<f64>,
    /// Methods captured (default GET and HEAD).
    pub methods: Option<Vec<Spanned<String>>>,
    /// Requests whose request or response body is larger are not captured.
    pub max_body: Option<Spanned<ByteSize>>,
}

/// `[access_log]`: where and how each request's line is written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    /// `"stdout"` or a file.
    pub path: Option<Spanned<String>>,
    /// `"json"` (the default) or `"combined"`.
    pub format: Option<Spanned<String>>,
    /// A file is rotated (renamed `.1`, older ones shifted) when it reaches this size.
    pub max_size: Option<Spanned<i64>>,
    /// Rotated files kept.
    pub keep: Option<Spanned<i64>>,
    /// Lines queued for the writer; beyond, lines are dropped and counted.
    pub buffer: Option<Spanned<i64>>,
}

/// A route's `access_log = { percent = 10 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteAccessLog {
    pub percent: Spanned<f64>,
}

/// `[fleet]`: where the instances of a fleet share their state.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub postgres: Option<Spanned<String>>,
    pub postgres_file: Option<Spanned<String>>,
    pub instance: Option<Spanned<String>>,
    pub heartbeat: Option<Spanned<String>>,
}

/// `[shadow]`: limits and storage shared by every shadowing route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShadowSettings {
    pub max_in_flight: Option<Spanned<i64>>,
    pub max_body: Option<Spanned<i64>>,
    pub store: Option<Spanned<String>>,
    pub retention_samples: Option<Spanned<i64>>,
    pub retention_age: Option<Spanned<String>>,
    #[serde(default)]
    pub redact: Vec<Spanned<String>>,
    /// Secret names besides the built-in ones.
    #[serde(default)]
    pub redact_names: Vec<Spanned<String>>,
    /// Fields never redacted by name.
    #[serde(default)]
    pub redact_exempt: Vec<Spanned<String>>,
    pub relative_threshold: Option<Spanned<f64>>,
    pub absolute_threshold: Option<Spanned<f64>>,
    pub min_samples: Option<Spanned<i64>>,
    pub max_fields: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    pub trust_forwarded_headers: bool,
    pub fallback_max_body: Option<Spanned<i64>>,
    /// How long in-flight requests may take to finish after SIGTERM or an upgrade.
    pub drain_period: Option<Spanned<String>>,
    /// The Unix socket through which `banyan run --upgrade` takes the listeners over.
    pub upgrade_socket: Option<Spanned<String>>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub max_headers: Option<Spanned<i64>>,
    pub max_uri_bytes: Option<Spanned<i64>>,
    pub max_concurrent_streams: Option<Spanned<i64>>,
    pub max_body: Option<Spanned<i64>>,
    pub header_timeout: Option<Spanned<String>>,
    pub body_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    /// `"none"` (the default) or `"standard"`.
    pub path_normalization: Option<Spanned<String>>,
    /// Under standard normalization: `"keep"` (the default) or `"refuse"`.
    pub encoded_slash: Option<Spanned<String>>,
    pub tls: Option<Spanned<RawTls>>,
}

/// `[server.tls]`: an HTTPS listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub listen: Spanned<String>,
    /// Chosen by SNI; the first when the client names none that matches.
    pub certificates: Spanned<Vec<Spanned<RawCertificate>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Spanned<String>>,
    /// A file holding the bearer token mutating admin calls need.
    pub token_file: Option<Spanned<String>>,
    /// Host names, besides addresses and loopback names, that mutating calls may name.
    #[serde(default)]
    pub allowed_hosts: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub endpoints: Spanned<Vec<Spanned<String>>>,
    pub host: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub read_timeout: Option<Spanned<String>>,
    pub write_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub http2: bool,
    pub health_check: Option<Spanned<RawHealthCheck>>,
    /// Further attempts, on other endpoints, of idempotent requests that failed to connect.
    pub retries: Option<Spanned<i64>>,
    pub outlier_detection: Option<Spanned<RawOutlier>>,
    /// PEM file of the CAs that sign the endpoints' certificates (instead of the system's).
    pub ca_file: Option<Spanned<String>>,
    pub insecure_skip_verify: Option<Spanned<bool>>,
}

/// `outlier_detection = { consecutive_failures = 5, base_ejection = "30s", ... }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlier {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub consecutive_failures: Option<Spanned<i64>>,
    pub base_ejection: Option<Spanned<String>>,
    pub max_ejection: Option<Spanned<String>>,
    pub max_ejected_percent: Option<Spanned<i64>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: Spanned<String>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub healthy_threshold: Option<Spanned<i64>>,
    pub unhealthy_threshold: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Spanned<String>,
    #[serde(rename = "match", default)]
    pub matches: RawMatch,
    pub action: Spanned<RawAction>,
    pub upstream: Option<Spanned<String>>,
    pub split: Option<Spanned<RawSplit>>,
    pub rewrite: Option<Spanned<RawRewrite>>,
    pub fallback: Option<Spanned<String>>,
    pub shadow: Option<Spanned<RawShadow>>,
    /// Methods shadowed besides GET, HEAD and OPTIONS (a shadowed write runs twice).
    #[serde(default)]
    pub shadow_methods: Vec<Spanned<String>>,
    pub compare: Option<Spanned<RawCompare>>,
    /// Largest request body this route takes (413 above), instead of the server's.
    pub max_body: Option<Spanned<i64>>,
    /// Send the route's traffic to legacy while the new service fails.
    pub circuit_breaker: Option<Spanned<RawBreaker>>,
    /// `action = "migrate"`: the stage and the new service.
    pub migration: Option<Spanned<RawMigration>>,
    /// A gated ramp of the canary stage.
    pub ramp: Option<Spanned<RawRamp>>,
    /// Upgrade protocols tunnelled (default `["websocket"]`).
    pub upgrades: Option<Vec<Spanned<String>>>,
    /// Methods refused by default (CONNECT, TRACE) that this route forwards.
    #[serde(default)]
    pub allow_methods: Vec<Spanned<String>>,
    /// The share of the route's requests written to the access log.
    pub access_log: Option<Spanned<RawRouteAccessLog>>,
    /// A sample of the route's traffic recorded for replay.
    pub capture: Option<Spanned<RawRouteCapture>>,
}

/// `migration = { stage = "canary", new = "items-svc", percent = 5, key = { cookie = "sid" } }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigration {
    pub stage: Spanned<String>,
    pub new: Spanned<String>,
    /// The canary's fixed share, when it has no ramp.
    pub percent: Option<Spanned<f64>>,
    pub key: Option<Spanned<RawSplitKey>>,
}

/// `ramp = { steps = [1, 5, 25, 50, 100], min_time = "10m", min_requests = 500, ... }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRamp {
    pub steps: Spanned<Vec<f64>>,
    pub min_time: Option<Spanned<String>>,
    pub min_requests: Option<Spanned<i64>>,
    pub interval: Option<Spanned<String>>,
    pub min_match_rate: Option<Spanned<f64>>,
    pub min_comparisons: Option<Spanned<i64>>,
    pub max_error_margin: Option<Spanned<f64>>,
    pub max_error_rate: Option<Spanned<f64>>,
    pub latency_quantile: Option<Spanned<String>>,
    pub max_latency_factor: Option<Spanned<f64>>,
    pub confidence: Option<Spanned<f64>>,
    pub failure_limit: Option<Spanned<i64>>,
}

/// `circuit_breaker = { error_rate = 0.5, min_requests = 20, window = "10s", ... }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub error_rate: Option<Spanned<f64>>,
    pub min_requests: Option<Spanned<i64>>,
    pub window: Option<Spanned<String>>,
    pub open_for: Option<Spanned<String>>,
    pub probes: Option<Spanned<i64>>,
}

/// `shadow = { to = "items-svc", percent = 100, ... }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShadow {
    /// Required, except on a migrated route, whose stage sets it.
    pub to: Option<Spanned<String>>,
    pub percent: Option<Spanned<f64>>,
    /// Sample by this key (sticky); at random when absent.
    pub key: Option<Spanned<RawSplitKey>>,
    pub max_in_flight: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub max_body: Option<Spanned<i64>>,
    /// `"secondary"`: a second copy to the primary tells noise from regressions.
    pub noise: Option<Spanned<String>>,
}

/// `[routes.compare]`: how the two responses are compared.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    #[serde(default)]
    pub ignore: Vec<Spanned<String>>,
    #[serde(default)]
    pub unordered: Vec<Spanned<String>>,
    #[serde(default)]
    pub unordered_by: BTreeMap<String, Spanned<String>>,
    pub tolerance: Option<RawTolerance>,
    #[serde(default)]
    pub null_equals_missing: bool,
    /// Headers of the default ignore set to compare anyway, such as `etag`.
    #[serde(default)]
    pub headers: Vec<Spanned<String>>,
    #[serde(default)]
    pub normalize: Vec<Spanned<RawNormalizer>>,
    /// JSON paths whose values are hashed before a sample is stored.
    #[serde(default)]
    pub redact: Vec<Spanned<String>>,
    /// How gRPC messages are decoded: `{ descriptor_set = "shop.binpb" }`.
    pub protobuf: Option<Spanned<RawProtobuf>>,
    /// Objects whose keys are matched whatever their case: `["$.headers"]`.
    #[serde(default)]
    pub case_insensitive_keys: Vec<Spanned<String>>,
    /// Objects to which the new service may add fields: `["$", "$.items[*]"]`.
    #[serde(default)]
    pub allow_extra: Vec<Spanned<String>>,
}

/// `protobuf = { descriptor_set = "shop.binpb" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtobuf {
    /// A `FileDescriptorSet` file, as `protoc --descriptor_set_out` or `buf build -o`
    /// write it.
    pub descriptor_set: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTolerance {
    #[serde(default)]
    pub absolute: f64,
    #[serde(default)]
    pub relative: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNormalizer {
    pub pattern: String,
    #[serde(default)]
    pub replace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawAction {
    Forward,
    Split,
    Shadow,
    /// Migrated by stages: `migration = { stage = "...", new = "..." }`.
    Migrate,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    pub path: Option<Spanned<RawPath>>,
    #[serde(default)]
    pub headers: Vec<Spanned<RawKeyMatch>>,
    #[serde(default)]
    pub query: Vec<Spanned<RawKeyMatch>>,
    #[serde(default)]
    pub cookies: Vec<Spanned<RawKeyMatch>>,
    /// A gRPC service, and one of its methods.
    pub grpc: Option<Spanned<RawGrpcMatch>>,
}

/// `grpc = { service = "shop.Items", method = "Get", idempotent = true }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpcMatch {
    pub service: String,
    pub method: Option<String>,
    /// The method has no side effects: a failed call may go to the route's fallback.
    #[serde(default)]
    pub idempotent: bool,
}

/// `path = { exact = "/" }`, `{ prefix = "/api/" }`, `{ template = "/items/{id}" }`,
/// `{ regex = "/v[0-9]+/.*" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum RawPath {
    Exact(String),
    Prefix(String),
    Template(String),
    Regex(String),
}

/// One header, query parameter or cookie condition: exactly one of `present`, `equals`,
/// `regex`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyMatch {
    pub name: String,
    pub present: Option<bool>,
    pub equals: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplit {
    pub to: Spanned<String>,
    pub percent: Spanned<f64>,
    pub key: Spanned<RawSplitKey>,
    pub salt: Option<String>,
}

/// `key = { header = "x-user-id" }`, `{ cookie = "sid" }`, `{ query = "uid" }`, or
/// `"client_ip"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSplitKey {
    Header(String),
    Cookie(String),
    Query(String),
    ClientIp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    /// Replace the prefix the route matched with this one.
    pub prefix: Option<Spanned<String>>,
    /// Build the path from this template, with the parameters the route's template matched.
    pub template: Option<Spanned<String>>,
    #[serde(default)]
    pub set_headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub remove_headers: Vec<Spanned<String>>,
}
