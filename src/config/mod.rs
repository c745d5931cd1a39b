//! The config: the TOML file (raw), its validation, and the compiled, immutable result.

mod compile;
pub mod diff;
pub mod error;
pub mod raw;
mod reach;
pub mod summary;

pub use error::{ConfigError, Diagnostic, Source};

use crate::ids::{RouteId, UpstreamId};
use crate::routing::{Action, RouteTable};
use crate::upstream::spec::UpstreamSpec;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest request body buffered so a failed request can go to the fallback, by default.
pub const DEFAULT_FALLBACK_MAX_BODY: u64 = 64 * 1024;

/// A validated, compiled config: everything a request needs, apart from live connections.
#[derive(Debug)]
pub struct Config {
    /// The text it was compiled from, for history, diffs and rollback.
    pub source: Arc<Source>,
    pub server: ServerSettings,
    pub admin: AdminSettings,
    pub upstreams: Vec<UpstreamSpec>,
    pub routes: RouteTable,
    /// Per route, in the route table's order: its shadow, breaker and migration.
    pub features: Vec<RouteFeatures>,
    pub shadow: ShadowSettings,
    /// `[fleet]`: the PostgreSQL the instances share; None runs alone.
    pub fleet: Option<FleetSettings>,
    /// `[access_log]`: None writes no access log.
    pub access_log: Option<AccessLogSettings>,
    /// `[capture]`: where routes that capture write (defaults when the table is absent).
    pub capture: CaptureSettings,
    /// `[tracing]`: None exports no spans (and passes `traceparent` through untouched).
    pub tracing: Option<TracingSettings>,
    /// Findings that do not stop the config, such as unreachable routes.
    pub warnings: Vec<Diagnostic>,
}

/// What a route does beyond matching and forwarding. Kept beside the route table, not in
/// it, so routing knows nothing of the features that act on its routes.
#[derive(Debug, Clone, Default)]
pub struct RouteFeatures {
    /// Mirror to another upstream and compare.
    pub shadow: Option<Arc<crate::shadow::spec::ShadowSpec>>,
    /// Sends the route to its legacy upstream while its new service fails.
    pub breaker: Option<crate::breaker::BreakerSpec>,
    /// A route being migrated by stages (`action = "migrate"`).
    pub migration: Option<crate::migration::MigrationSpec>,
    /// The share of the route's requests the access log writes (errors always), 0 to 1;
    /// None: all of them.
    pub access_log_share: Option<f64>,
    /// The route's `compare` rules, when it has a compare table or shadows.
    pub compare: Option<Arc<crate::compare::Rules>>,
    /// Records a sample of the route's traffic (`capture = { percent = 1 }`).
    pub capture: Option<Arc<crate::capture::spec::CaptureSpec>>,
}

impl Config {
    /// The features of route `route` (an index into the route table).
    pub fn features(&self, route: RouteId) -> &RouteFeatures {
        &self.features[route.index()]
    }

    /// Every upstream route `route` can send a request to, each once: its action's,
    /// its fallback, and its legacy upstream when a circuit breaker may divert to it.
    pub fn reachable(&self, route: RouteId) -> smallvec::SmallVec<[UpstreamId; 4]> {
        let r = self.routes.route(route);
        let mut reach: smallvec::SmallVec<[UpstreamId; 4]> = match &r.action {
            Action::Forward(u) => [*u].into_iter().collect(),
            Action::Split(s) => [s.base, s.to].into_iter().collect(),
        };
        let breaker_legacy = self.features(route).breaker.as_ref().map(|_| r.legacy);
        for u in r.fallback.into_iter().chain(breaker_legacy) {
            if !reach.contains(&u) {
                reach.push(u);
            }
        }
        reach
    }
}

/// `[shadow]`: limits and storage shared by every shadowing route.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSettings {
    /// Shadow requests in flight across all routes.
    pub max_in_flight: usize,
    /// Default largest body captured per side.
    pub max_body: usize,
    /// The SQLite file mismatch samples go to.
    pub store: PathBuf,
    pub retention_samples: u64,
    pub retention_age: std::time::Duration,
    /// What every route redacts beyond the defaults (paths, names, exempt fields).
    pub redact: crate::store::redact::RedactRules,
    pub thresholds: crate::compare::noise::Thresholds,
    /// Distinct fields counted per route; the rest are counted as `_other`.
    pub max_fields: usize,
}

/// The proxy listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Keep X-Forwarded-Proto and -Host sent by the client (banyan is behind a trusted
    /// proxy); otherwise banyan sets them itself.
    pub trust_forwarded_headers: bool,
    pub fallback_max_body: u64,
    /// How long in-flight requests may take to finish after SIGTERM or an upgrade.
    pub drain_period: std::time::Duration,
    /// Where a running banyan hands its listeners to `banyan run --upgrade`.
    pub upgrade_socket: Option<PathBuf>,
    pub limits: crate::inbound::Limits,
    /// Client connections open at once, across the proxy and HTTPS listeners.
    pub max_connections: usize,
    /// How paths are prepared before matching and forwarding.
    pub path_normalization: crate::routing::normalize::PathNormalization,
    /// The HTTPS listener, when there is one.
    pub tls: Option<TlsSettings>,
}

/// `[server.tls]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub listen: SocketAddr,
    pub certificates: Vec<crate::tls::server::CertificatePaths>,
}

/// The admin listener (metrics, health, the config API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// The token from `token_file`, if set; `BANYAN_ADMIN_TOKEN` takes precedence.
    pub token: Option<Secret>,
    /// Host names (lower case, no port) that mutating calls may name besides the listen
    /// address, IP addresses and loopback names.
    pub allowed_hosts: Vec<String>,
}

/// `[capture]`: the files captured traffic goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    pub dir: PathBuf,
    /// A file is finished and a new one begun at this many (compressed) bytes...
    pub max_file_size: u64,
    /// ... or this age.
    pub max_file_age: std::time::Duration,
    /// The oldest capture files in `dir` are removed past this many bytes in all.
    pub max_total: u64,
    /// Records waiting for the writer; past it, dropped and counted.
    pub queue: usize,
}

/// `[access_log]`: one line per request, written off the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSettings {
    pub destination: AccessLogDestination,
    pub format: AccessLogFormat,
    /// A file is rotated when it reaches this many bytes.
    pub max_size: Option<u64>,
    /// Rotated files kept (`.1` the newest).
    pub keep: usize,
    /// Lines queued for the writer.
    pub buffer: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogDestination {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per line, every field named.
    Json,
    /// Apache's combined format, with banyan's fields after it as `key=value`.
    Combined,
}

/// `[tracing]`: OpenTelemetry spans for requests, upstream attempts, shadows and
/// comparisons, exported over OTLP.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// Share of the traces banyan starts itself, 0 to 1 (parent-based otherwise).
    pub ratio: f64,
    pub service_name: String,
    pub max_queue: usize,
    pub timeout: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    HttpProtobuf,
    Grpc,
}

/// `[fleet]`: many instances sharing their state through PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// The connection URL (from `BANYAN_FLEET_POSTGRES`, `postgres_file` or `postgres`);
    /// None when a dry run did not read the file that holds it.
    pub postgres: Option<Secret>,
    /// This instance's name; None: the host name and process id.
    pub instance: Option<String>,
    pub heartbeat: std::time::Duration,
}

/// Where a fleet's PostgreSQL URL may come from, besides the config.
pub const FLEET_POSTGRES_ENV: &str = "BANYAN_FLEET_POSTGRES";

/// A secret that never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&Source::new(path.display().to_string(), text))
    }

    /// Parse and validate config text.
    pub fn parse(source: &Source) -> Result<Config, ConfigError> {
        compile::compile(source, compile::Files::Read)
    }

    /// A rules file for `banyan replay --rules`: the keys of a route's `compare` table
    /// at the top level, checked as they are in a config.
    pub fn compare_rules(source: &Source) -> Result<crate::compare::Rules, ConfigError> {
        compile::compare_rules_file(source)
    }

    /// Validate without reading any file the config names (certificates, `ca_file`,
    /// `token_file`): for a caller who must not learn what files hold or whether they
    /// exist. Such a config is for looking at, never for serving.
    pub fn parse_without_files(source: &Source) -> Result<Config, ConfigError> {
        compile::compile(source, compile::Files::Skip)
    }

    pub fn upstream_id(&self, name: &str) -> Option<UpstreamId> {
        self.upstreams
            .iter()
            .position(|u| u.name == name)
            .map(UpstreamId::new)
    }
}
