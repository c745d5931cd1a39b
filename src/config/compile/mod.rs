//! From the raw file to a compiled Config: every check, every error located.

use super::error::{ConfigError, Diagnostic, Source};
use super::raw::*;
use super::reach::unreachable_routes;
use super::{AdminSettings, Config, RouteFeatures, Secret, ShadowSettings};
use crate::compare::protobuf::Protobuf;
use crate::compare::Rules;
use crate::routing::matcher::{
    full_match_regex, GrpcMatch, HeaderMatch, HostMatch, ParamMatch, PathMatch, RouteMatch,
    ValueMatch,
};
use crate::routing::protocol::{self, Protocols};
use crate::routing::rewrite::{PathRewrite, Rewrite};
use crate::routing::split::{salt_for, threshold, SplitKey};
use crate::routing::template::Template;
use crate::routing::{Action, Route, RouteTable, Split, UpstreamId};
use crate::shadow::spec::ShadowSpec;
use crate::store::redact::RedactRules;

use http::{HeaderName, HeaderValue, Method};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

mod breaker;
mod capture;
mod fleet;
mod matching;
mod migration;
mod observability;
mod rewrite;
mod routes;
mod server;
mod shadow;
mod upstream;

const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
const DEFAULT_STORE: &str = "./data/banyan-diffs.sqlite";

/// Whether the compiler reads the files a config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Files {
    Read,
    /// Leave them unread, with one warning that says so.
    Skip,
}

/// What a config whose files were not read is told.
const FILES_SKIPPED: &str = "files the config names (certificates, ca_file, token_file) were not read: a dry run without the admin token reads none; they are checked when the config is applied";

pub(super) fn compile(src: &Source, files: Files) -> Result<Config, ConfigError> {
    let raw: RawConfig = parse_raw(src)?;
    let mut c = Compiler::new(src, files);
    let config = c.config(&raw);
    match config {
        Some(config) if c.errors.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid(c.errors)),
    }
}

pub(super) fn compare_rules_file(src: &Source) -> Result<crate::compare::Rules, ConfigError> {
    let raw: crate::config::raw::RawCompare = parse_raw(src)?;
    let mut c = Compiler::new(src, Files::Read);
    let spanned = toml::Spanned::new(0..src.text.len(), raw);
    let (rules, _) = c.compare_rules("rules", Some(&spanned));
    if c.errors.is_empty() {
        Ok(rules)
    } else {
        Err(ConfigError::Invalid(c.errors))
    }
}

/// The TOML read into its raw model, a syntax or type error located.
fn parse_raw<T: serde::de::DeserializeOwned>(src: &Source) -> Result<T, ConfigError> {
    toml::from_str(&src.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().lines().collect::<Vec<_>>().join(": ");
        ConfigError::Invalid(vec![src.diagnostic(span, message)])
    })
}

struct Compiler<'a> {
    src: &'a Source,
    errors: Vec<Diagnostic>,
    /// Findings that do not refuse the config.
    warnings: Vec<Diagnostic>,
    files: Files,
    /// A file was left unread (Files::Skip).
    skipped_file: bool,
}

impl<'a> Compiler<'a> {
    fn new(src: &'a Source, files: Files) -> Self {
        Compiler {
            src,
            errors: Vec::new(),
            warnings: Vec::new(),
            files,
            skipped_file: false,
        }
    }
}

impl Compiler<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(self.src.diagnostic(span, message));
    }

    fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.warnings.push(self.src.diagnostic(span, message));
    }

    /// Whether to read a file the config names here; when not, warn once.
    fn reads_file(&mut self, span: Range<usize>) -> bool {
        if self.files == Files::Read {
            return true;
        }
        if !self.skipped_file {
            self.skipped_file = true;
            self.warning(span, FILES_SKIPPED);
        }
        false
    }

    fn config(&mut self, raw: &RawConfig) -> Option<Config> {
        let server = self.server(&raw.server);
        let admin = AdminSettings {
            listen: self.socket_addr(raw.admin.listen.as_ref(), DEFAULT_ADMIN_LISTEN),
            token: raw.admin.token_file.as_ref().and_then(|f| self.token(f)),
            allowed_hosts: raw
                .admin
                .allowed_hosts
                .iter()
                .filter_map(|h| self.allowed_host(h))
                .collect(),
        };
        let upstreams = self.upstreams(&raw.upstreams);
        let ids: HashMap<&str, UpstreamId> = upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.as_str(), UpstreamId::new(i)))
            .collect();
        let default = self.upstream_ref(&ids, &raw.default, "the default upstream");
        let (routes, features): (Vec<Route>, Vec<RouteFeatures>) =
            self.routes(&raw.routes, &ids, default).into_iter().unzip();
        let routes = RouteTable::new(routes, default?);
        let fleet = raw.fleet.as_ref().map(|f| self.fleet(f));
        let access_log = raw.access_log.as_ref().map(|a| self.access_log(a));
        let capture = self.capture_settings(raw.capture.as_ref());
        let tracing = raw.tracing.as_ref().map(|t| self.tracing(t));
        let mut warnings = std::mem::take(&mut self.warnings);
        if self.errors.is_empty() {
            warnings.extend(
                unreachable_routes(&raw.routes, &routes)
                    .into_iter()
                    .map(|(span, message)| self.src.diagnostic(span, message)),
            );
        }
        let shadow = self.shadow_settings(&raw.shadow);
        Some(Config {
            source: std::sync::Arc::new(self.src.clone()),
            shadow,
            fleet,
            access_log,
            capture,
            tracing,
            server,
            admin,
            upstreams,
            routes,
            features,
            warnings,
        })
    }

    fn allowed_host(&mut self, host: &Spanned<String>) -> Option<String> {
        let name = host.get_ref();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            self.error(
                host.span(),
                format!("admin.allowed_hosts: {name:?} is not a host name (no port, no scheme)"),
            );
        }
        valid.then(|| name.to_ascii_lowercase())
    }

    fn token(&mut self, file: &Spanned<String>) -> Option<Secret> {
        if !self.reads_file(file.span()) {
            return None;
        }
        match std::fs::read_to_string(file.get_ref()) {
            Ok(text) if !text.trim().is_empty() => Some(Secret(text.trim().to_string())),
            Ok(_) => {
                self.error(
                    file.span(),
                    format!("admin token file {:?} is empty", file.get_ref()),
                );
                None
            }
            Err(e) => {
                self.error(
                    file.span(),
                    format!("cannot read admin token file {:?}: {e}", file.get_ref()),
                );
                None
            }
        }
    }

    fn socket_addr(&mut self, raw: Option<&Spanned<String>>, default: &str) -> SocketAddr {
        let fallback: SocketAddr = default.parse().unwrap_or(SocketAddr::from(([0; 4], 0)));
        let Some(raw) = raw else { return fallback };
        match raw.get_ref().parse() {
            Ok(addr) => addr,
            Err(_) => {
                self.error(
                    raw.span(),
                    format!(
                        "{:?} is not an address to listen on: write IP:PORT, such as 0.0.0.0:8080",
                        raw.get_ref()
                    ),
                );
                fallback
            }
        }
    }

    fn duration(&mut self, raw: Option<&Spanned<String>>, default: Duration) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw.get_ref()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.error(raw.span(), "a duration must be more than zero");
                default
            }
            Err(e) => {
                self.error(
                    raw.span(),
                    format!(
                        "{:?} is not a duration ({e}): write it like \"500ms\", \"5s\" or \"1m\"",
                        raw.get_ref()
                    ),
                );
                default
            }
        }
    }

    /// A whole number above 0 (a count or a size), when set.
    fn count<T: TryFrom<i64> + PartialOrd + Default>(
        &mut self,
        raw: Option<&Spanned<i64>>,
        default: T,
        what: &str,
    ) -> T {
        let Some(raw) = raw else { return default };
        match T::try_from(*raw.get_ref()) {
            Ok(n) if n > T::default() => n,
            _ => {
                self.error(raw.span(), format!("{what} must be a whole number above 0"));
                default
            }
        }
    }

    fn upstream_ref(
        &mut self,
        ids: &HashMap<&str, UpstreamId>,
        name: &Spanned<String>,
        role: &str,
    ) -> Option<UpstreamId> {
        let id = ids.get(name.get_ref().as_str()).copied();
        if id.is_none() {
            let mut known: Vec<&str> = ids.keys().copied().collect();
            known.sort_unstable();
            self.error(
                name.span(),
                format!(
                    "{role} names upstream {:?}, which is not defined (defined: {})",
                    name.get_ref(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        id
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
