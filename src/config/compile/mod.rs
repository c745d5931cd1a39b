//! From the raw file to a compiled Config: every check, every error located.

use super::error::{ConfigError, Diagnostic, Source};
use super::raw::*;
use super::reach::unreachable_routes;
use super::{AdminSettings, Config, RouteFeatures, Secret, ShadowSettings};
use crate::compare::Rules;
use crate::routing::matcher::{
    full_match_regex, HeaderMatch, HostMatch, ParamMatch, PathMatch, RouteMatch, ValueMatch,
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
mod migration;
mod server;
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
    let raw: RawConfig = toml::from_str(&src.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().lines().collect::<Vec<_>>().join(": ");
        ConfigError::Invalid(vec![src.diagnostic(span, message)])
    })?;
    let mut c = Compiler {
        src,
        errors: Vec::new(),
        warnings: Vec::new(),
        files,
        skipped_file: false,
    };
    let config = c.config(&raw);
    match config {
        Some(config) if c.errors.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid(c.errors)),
    }
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
            .map(|(i, u)| (u.name.as_str(), i))
            .collect();
        let default = self.upstream_ref(&ids, &raw.default, "the default upstream");
        let (routes, features): (Vec<Route>, Vec<RouteFeatures>) =
            self.routes(&raw.routes, &ids, default).into_iter().unzip();
        let routes = RouteTable::new(routes, default?);
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

    fn routes(
        &mut self,
        raw: &[Spanned<RawRoute>],
        ids: &HashMap<&str, UpstreamId>,
        default: Option<UpstreamId>,
    ) -> Vec<(Route, RouteFeatures)> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut routes = Vec::new();
        for r in raw {
            let name = &r.get_ref().name;
            if !is_name(name.get_ref()) {
                self.error(
                    name.span(),
                    format!(
                        "route name {:?} may hold only letters, digits, '-', '_' and '.'",
                        name.get_ref()
                    ),
                );
            }
            if let Some(first) = seen.insert(name.get_ref(), name.span().start) {
                let (line, _) = self.src.line_column(first);
                self.error(
                    name.span(),
                    format!("route name {:?} is used twice (first on line {line}): route names must be unique", name.get_ref()),
                );
            }
            if let Some(route) = self.route(r.get_ref(), ids, default) {
                routes.push(route);
            }
        }
        routes
    }

    fn route(
        &mut self,
        raw: &RawRoute,
        ids: &HashMap<&str, UpstreamId>,
        default: Option<UpstreamId>,
    ) -> Option<(Route, RouteFeatures)> {
        let name = raw.name.get_ref().as_str();
        let matches = self.route_match(name, &raw.matches);
        let (action, migration) = if *raw.action.get_ref() == RawAction::Migrate {
            match self.migration(name, raw, ids, default) {
                Some((a, m)) => (Some(a), Some(m)),
                None => (None, None),
            }
        } else {
            (self.action(name, raw, ids, default), None)
        };
        let rewrite = match &raw.rewrite {
            Some(rw) => self.rewrite(name, rw, matches.path.as_ref()),
            None => Rewrite::default(),
        };
        let fallback = raw
            .fallback
            .as_ref()
            .and_then(|f| self.upstream_ref(ids, f, &format!("route {name:?}: fallback")));
        let action = action?;
        let shadow = match &migration {
            Some(m) => self.migration_shadow(name, raw, m),
            None => self.shadow(name, raw, ids, &action),
        }
        .map(std::sync::Arc::new);
        let legacy = match &migration {
            Some(m) => m.legacy,
            None => fallback.or(default)?,
        };
        let breaker = raw
            .circuit_breaker
            .as_ref()
            .and_then(|b| self.breaker(name, b, &action, legacy));
        let route = Route {
            name: name.to_string(),
            matches,
            action,
            rewrite,
            fallback,
            max_body: self.bytes(raw.max_body.as_ref(), "max_body"),
            legacy,
            protocols: self.protocols(name, raw),
        };
        let features = RouteFeatures {
            shadow,
            breaker,
            migration,
        };
        Some((route, features))
    }

    /// `upgrades` and `allow_methods`.
    fn protocols(&mut self, route: &str, raw: &RawRoute) -> Protocols {
        let mut protocols = Protocols::default();
        if let Some(upgrades) = &raw.upgrades {
            protocols.upgrades.clear();
            for u in upgrades {
                let name = u.get_ref();
                if protocol::NEVER_UPGRADED
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name))
                {
                    self.error(
                        u.span(),
                        format!("route {route:?}: {name:?} upgrades are never tunnelled: they would hand the client a raw connection to the backend, past banyan's checks"),
                    );
                } else if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    self.error(
                        u.span(),
                        format!("route {route:?}: upgrade {name:?} is not a protocol name such as \"websocket\""),
                    );
                } else {
                    protocols.upgrades.push(name.to_ascii_lowercase());
                }
            }
        }
        for m in &raw.allow_methods {
            match protocol::GUARDED_METHODS
                .iter()
                .find(|g| g.as_str() == m.get_ref())
            {
                Some(method) => protocols.methods.push(method.clone()),
                None => self.error(
                    m.span(),
                    format!("route {route:?}: allow_methods takes \"CONNECT\" and \"TRACE\", the methods refused unless a route allows them; {:?} is not one", m.get_ref()),
                ),
            }
        }
        protocols
    }

    fn action(
        &mut self,
        name: &str,
        raw: &RawRoute,
        ids: &HashMap<&str, UpstreamId>,
        default: Option<UpstreamId>,
    ) -> Option<Action> {
        let role = format!("route {name:?}");
        match raw.action.get_ref() {
            // Compiled from its migration table (migration.rs).
            RawAction::Migrate => None,
            RawAction::Forward => {
                if let Some(split) = &raw.split {
                    self.error(split.span(), format!("route {name:?} has a split table but its action is \"forward\": set action = \"split\" or remove the table"));
                }
                let Some(upstream) = &raw.upstream else {
                    self.error(
                        raw.action.span(),
                        format!(
                            "route {name:?} forwards but names no upstream: add upstream = \"...\""
                        ),
                    );
                    return None;
                };
                self.upstream_ref(ids, upstream, &role).map(Action::Forward)
            }
            RawAction::Shadow => {
                if raw.shadow.is_none() {
                    self.error(raw.action.span(), format!("route {name:?} shadows but has no shadow table: add shadow = {{ to = \"...\" }}"));
                }
                match &raw.upstream {
                    Some(u) => self.upstream_ref(ids, u, &role).map(Action::Forward),
                    None => default.map(Action::Forward),
                }
            }
            RawAction::Split => {
                let Some(split) = &raw.split else {
                    self.error(raw.action.span(), format!("route {name:?} splits but has no split table: add split = {{ to = \"...\", percent = 10, key = {{ cookie = \"session\" }} }}"));
                    return None;
                };
                let base = match &raw.upstream {
                    Some(u) => self.upstream_ref(ids, u, &role),
                    None => default,
                };
                let split = split.get_ref();
                let to = self.upstream_ref(ids, &split.to, &format!("route {name:?}: split.to"));
                let percent = *split.percent.get_ref();
                if !(0.0..=100.0).contains(&percent) {
                    self.error(
                        split.percent.span(),
                        format!("route {name:?}: split percent {percent} is outside 0-100"),
                    );
                }
                if let (Some(b), Some(t)) = (base, to) {
                    if b == t {
                        self.error(
                            split.to.span(),
                            format!(
                                "route {name:?} splits to {:?}, which is already its base upstream",
                                split.to.get_ref()
                            ),
                        );
                    }
                }
                let key = self.split_key(name, &split.key)?;
                Some(Action::Split(Split {
                    base: base?,
                    to: to?,
                    threshold: threshold(percent),
                    key,
                    salt: salt_for(name, split.salt.as_deref()),
                    live: None,
                }))
            }
        }
    }

    fn shadow_settings(&mut self, raw: &RawShadowSettings) -> ShadowSettings {
        let t = crate::compare::noise::Thresholds::default();
        let fraction = |c: &mut Self, v: &Option<Spanned<f64>>, default: f64, what: &str| match v {
            Some(x) if (0.0..=1.0).contains(x.get_ref()) => *x.get_ref(),
            Some(x) => {
                c.error(
                    x.span(),
                    format!("shadow.{what} must be a fraction between 0 and 1"),
                );
                default
            }
            None => default,
        };
        let relative = fraction(
            self,
            &raw.relative_threshold,
            t.relative,
            "relative_threshold",
        );
        let absolute = fraction(
            self,
            &raw.absolute_threshold,
            t.absolute,
            "absolute_threshold",
        );
        ShadowSettings {
            max_in_flight: self.count::<u32>(
                raw.max_in_flight.as_ref(),
                256,
                "shadow.max_in_flight",
            ) as usize,
            max_body: self.count::<u32>(raw.max_body.as_ref(), 1024 * 1024, "shadow.max_body")
                as usize,
            store: raw.store.as_ref().map_or_else(
                || PathBuf::from(DEFAULT_STORE),
                |p| PathBuf::from(p.get_ref()),
            ),
            retention_samples: u64::from(self.count::<u32>(
                raw.retention_samples.as_ref(),
                10_000,
                "shadow.retention_samples",
            )),
            retention_age: self.duration(
                raw.retention_age.as_ref(),
                Duration::from_secs(7 * 24 * 3600),
            ),
            redact: RedactRules {
                paths: self.globs(&raw.redact, "shadow.redact"),
                names: self.redact_names(&raw.redact_names),
                exempt: self.redact_exempt(&raw.redact_exempt),
            },
            thresholds: crate::compare::noise::Thresholds {
                relative,
                absolute,
                min_samples: u64::from(self.count::<u32>(
                    raw.min_samples.as_ref(),
                    t.min_samples as u32,
                    "shadow.min_samples",
                )),
            },
            max_fields: self.count::<u32>(raw.max_fields.as_ref(), 50, "shadow.max_fields")
                as usize,
        }
    }

    fn redact_names(&mut self, raw: &[Spanned<String>]) -> Vec<String> {
        raw.iter()
            .filter_map(|n| {
                let name = n.get_ref().trim();
                if name.is_empty() || name.contains(['.', '$', '[', ' ']) {
                    self.error(n.span(), format!("shadow.redact_names: {:?} is not a name: write a key, form field, query parameter or header name such as \"ssn\" (paths go in shadow.redact)", n.get_ref()));
                    None
                } else {
                    Some(name.to_string())
                }
            })
            .collect()
    }

    fn redact_exempt(&mut self, raw: &[Spanned<String>]) -> Vec<String> {
        raw.iter()
            .filter_map(|g| {
                let field = g.get_ref();
                if field.starts_with('$') || field.starts_with("header.") || field.starts_with("query.") {
                    Some(field.clone())
                } else {
                    self.error(g.span(), format!("shadow.redact_exempt: {field:?} is not a field: write $.field, $..any_depth, header.name or query.name"));
                    None
                }
            })
            .collect()
    }

    fn globs(&mut self, raw: &[Spanned<String>], what: &str) -> Vec<String> {
        raw.iter()
            .filter_map(|g| {
                if g.get_ref().starts_with('$') || g.get_ref().starts_with("header.") || g.get_ref() == "status" || g.get_ref() == "body" {
                    Some(g.get_ref().clone())
                } else {
                    self.error(g.span(), format!("{what}: {:?} is not a field path: write $.field, $.items[*].price, $..any_depth, header.name, status or body", g.get_ref()));
                    None
                }
            })
            .collect()
    }

    fn shadow(
        &mut self,
        route: &str,
        raw: &RawRoute,
        ids: &HashMap<&str, UpstreamId>,
        action: &Action,
    ) -> Option<ShadowSpec> {
        let spanned = raw.shadow.as_ref()?;
        let sh = spanned.get_ref();
        let Some(to_name) = &sh.to else {
            self.error(
                spanned.span(),
                format!("route {route:?}: the shadow table needs to = \"...\", the upstream that gets the copy"),
            );
            return None;
        };
        let to = self.upstream_ref(ids, to_name, &format!("route {route:?}: shadow.to"));
        if let (Some(to), Action::Forward(primary)) = (to, action) {
            if to == *primary {
                self.error(to_name.span(), format!("route {route:?} shadows to {:?}, which already serves it: shadow to the other side", to_name.get_ref()));
            }
        }
        self.shadow_spec(route, raw, Some(sh), to?)
    }

    /// A shadow to `to` with the settings of the route's shadow table (defaults without).
    fn shadow_spec(
        &mut self,
        route: &str,
        raw: &RawRoute,
        sh: Option<&RawShadow>,
        to: UpstreamId,
    ) -> Option<ShadowSpec> {
        let empty = RawShadow::default();
        let sh = sh.unwrap_or(&empty);
        let percent = sh.percent.as_ref().map_or(100.0, |p| *p.get_ref());
        if let Some(p) = &sh.percent {
            if !(0.0..=100.0).contains(p.get_ref()) {
                self.error(
                    p.span(),
                    format!(
                        "route {route:?}: shadow percent {} is outside 0-100",
                        p.get_ref()
                    ),
                );
            }
        }
        let key = match &sh.key {
            Some(k) => Some(self.split_key(route, k)?),
            None => None,
        };
        let noise = match &sh.noise {
            None => false,
            Some(n) if n.get_ref() == "secondary" => true,
            Some(n) => {
                self.error(
                    n.span(),
                    format!(
                        "route {route:?}: noise = {:?} is not known: the one mode is \"secondary\"",
                        n.get_ref()
                    ),
                );
                false
            }
        };
        let mut methods: Vec<Method> = crate::shadow::spec::SAFE_METHODS.to_vec();
        for m in &raw.shadow_methods {
            match Method::from_bytes(m.get_ref().as_bytes()) {
                Ok(method) if m.get_ref().chars().all(|c| c.is_ascii_uppercase()) => {
                    if !methods.contains(&method) {
                        methods.push(method);
                    }
                }
                _ => self.error(
                    m.span(),
                    format!(
                        "route {route:?}: shadow method {:?} is not an HTTP method in upper case",
                        m.get_ref()
                    ),
                ),
            }
        }
        let (rules, redact) = self.compare_rules(route, raw.compare.as_ref());
        Some(ShadowSpec {
            to,
            back: None,
            threshold: threshold(percent),
            key,
            salt: salt_for(&format!("shadow:{route}"), None),
            methods,
            max_in_flight: self.count::<u32>(sh.max_in_flight.as_ref(), 64, "shadow.max_in_flight")
                as usize,
            timeout: self.duration(sh.timeout.as_ref(), Duration::from_secs(10)),
            max_body: match &sh.max_body {
                Some(_) => self.count::<u32>(sh.max_body.as_ref(), 0, "shadow.max_body") as usize,
                None => 0,
            },
            noise,
            rules: std::sync::Arc::new(rules),
            redact,
        })
    }

    fn compare_rules(
        &mut self,
        route: &str,
        raw: Option<&Spanned<RawCompare>>,
    ) -> (Rules, Vec<String>) {
        let Some(raw) = raw else {
            return (Rules::default(), Vec::new());
        };
        let (span, c) = (raw.span(), raw.get_ref());
        let ignore = self.globs(&c.ignore, &format!("route {route:?}: compare.ignore"));
        let mut rules = match Rules::default().with_ignores(&ignore) {
            Ok(r) => r,
            Err(e) => {
                self.error(
                    span.clone(),
                    format!("route {route:?}: compare.ignore: {e}"),
                );
                Rules::default()
            }
        };
        rules.unordered = c.unordered.iter().map(|u| u.get_ref().clone()).collect();
        rules.unordered_by = c
            .unordered_by
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect();
        if let Some(t) = &c.tolerance {
            if t.absolute < 0.0 || t.relative < 0.0 {
                self.error(
                    span.clone(),
                    format!("route {route:?}: compare.tolerance must not be negative"),
                );
            }
            rules.tolerance = crate::compare::rules::Tolerance {
                absolute: t.absolute,
                relative: t.relative,
            };
        }
        rules.null_equals_missing = c.null_equals_missing;
        rules.compare_headers = c
            .headers
            .iter()
            .map(|h| h.get_ref().to_ascii_lowercase())
            .collect();
        let normalizers: Vec<(String, String)> = c
            .normalize
            .iter()
            .map(|n| (n.get_ref().pattern.clone(), n.get_ref().replace.clone()))
            .collect();
        let rules = match rules.clone().with_normalizers(&normalizers) {
            Ok(r) => r,
            Err(e) => {
                let at = c.normalize.first().map_or(span, |n| n.span());
                self.error(at, format!("route {route:?}: compare.normalize: {e}"));
                rules
            }
        };
        let redact = self.globs(&c.redact, &format!("route {route:?}: compare.redact"));
        (rules, redact)
    }

    fn split_key(&mut self, route: &str, raw: &Spanned<RawSplitKey>) -> Option<SplitKey> {
        Some(match raw.get_ref() {
            RawSplitKey::Header(h) => {
                match HeaderName::from_bytes(h.as_bytes()) {
                    Ok(name) => SplitKey::Header(name),
                    Err(_) => {
                        self.error(raw.span(), format!("route {route:?}: split key header {h:?} is not a valid header name"));
                        return None;
                    }
                }
            }
            RawSplitKey::Cookie(c) => SplitKey::Cookie(c.clone()),
            RawSplitKey::Query(q) => SplitKey::Query(q.clone()),
            RawSplitKey::ClientIp => SplitKey::ClientIp,
        })
    }

    fn route_match(&mut self, route: &str, raw: &RawMatch) -> RouteMatch {
        let hosts = raw
            .hosts
            .iter()
            .filter_map(|h| {
                let text = h.get_ref();
                let bare = text.strip_prefix("*.").unwrap_or(text);
                let valid = !bare.is_empty()
                    && !bare.contains('*')
                    && bare
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
                if !valid {
                    self.error(h.span(), format!("route {route:?}: host {text:?} is not a host name or *.domain pattern (no port, no scheme)"));
                    return None;
                }
                Some(HostMatch::parse(text))
            })
            .collect();
        let methods = raw
            .methods
            .iter()
            .filter_map(|m| {
                let text = m.get_ref();
                match Method::from_bytes(text.as_bytes()) {
                    Ok(method) if text.chars().all(|c| c.is_ascii_uppercase()) => Some(method),
                    _ => {
                        self.error(m.span(), format!("route {route:?}: method {text:?} is not an HTTP method in upper case, such as \"GET\""));
                        None
                    }
                }
            })
            .collect();
        let path = raw.path.as_ref().and_then(|p| self.path(route, p));
        let headers = raw
            .headers
            .iter()
            .filter_map(|h| {
                let name = match HeaderName::from_bytes(h.get_ref().name.as_bytes()) {
                    Ok(n) => n,
                    Err(_) => {
                        self.error(
                            h.span(),
                            format!(
                                "route {route:?}: {:?} is not a valid header name",
                                h.get_ref().name
                            ),
                        );
                        return None;
                    }
                };
                let value = self.value_match(route, "header", h)?;
                Some(HeaderMatch { name, value })
            })
            .collect();
        let query = self.params(route, "query parameter", &raw.query);
        let cookies = self.params(route, "cookie", &raw.cookies);
        RouteMatch {
            hosts,
            methods,
            path,
            headers,
            query,
            cookies,
        }
    }

    fn params(&mut self, route: &str, what: &str, raw: &[Spanned<RawKeyMatch>]) -> Vec<ParamMatch> {
        raw.iter()
            .filter_map(|p| {
                if p.get_ref().name.is_empty() {
                    self.error(
                        p.span(),
                        format!("route {route:?}: a {what} condition needs a name"),
                    );
                    return None;
                }
                let value = self.value_match(route, what, p)?;
                Some(ParamMatch {
                    name: p.get_ref().name.clone(),
                    value,
                })
            })
            .collect()
    }

    fn value_match(
        &mut self,
        route: &str,
        what: &str,
        raw: &Spanned<RawKeyMatch>,
    ) -> Option<ValueMatch> {
        let m = raw.get_ref();
        let given = usize::from(m.present.is_some())
            + usize::from(m.equals.is_some())
            + usize::from(m.regex.is_some());
        if given != 1 {
            self.error(
                raw.span(),
                format!(
                    "route {route:?}: {what} {:?} needs exactly one of present, equals or regex",
                    m.name
                ),
            );
            return None;
        }
        if let Some(present) = m.present {
            return Some(if present {
                ValueMatch::Present
            } else {
                ValueMatch::Absent
            });
        }
        if let Some(v) = &m.equals {
            return Some(ValueMatch::Equals(v.clone()));
        }
        let pattern = m.regex.as_deref().unwrap_or_default();
        match full_match_regex(pattern) {
            Ok(re) => Some(ValueMatch::Regex(re)),
            Err(e) => {
                self.error(
                    raw.span(),
                    format!(
                        "route {route:?}: {what} {:?} has a bad regex: {}",
                        m.name,
                        one_line(&e.to_string())
                    ),
                );
                None
            }
        }
    }

    fn path(&mut self, route: &str, raw: &Spanned<RawPath>) -> Option<PathMatch> {
        let span = raw.span();
        let start_slash = |p: &str| p.starts_with('/');
        match raw.get_ref() {
            RawPath::Exact(p) | RawPath::Prefix(p) if !start_slash(p) => {
                self.error(
                    span,
                    format!("route {route:?}: path {p:?} must start with '/'"),
                );
                None
            }
            RawPath::Exact(p) => Some(PathMatch::Exact(p.clone())),
            RawPath::Prefix(p) => Some(PathMatch::Prefix(p.clone())),
            RawPath::Template(p) => match Template::parse(p) {
                Ok(t) => Some(PathMatch::Template(t)),
                Err(e) => {
                    self.error(span, format!("route {route:?}: path template {p:?}: {e}"));
                    None
                }
            },
            RawPath::Regex(p) => match full_match_regex(p) {
                Ok(re) => Some(PathMatch::Regex(re)),
                Err(e) => {
                    self.error(
                        span,
                        format!(
                            "route {route:?}: path regex {p:?} does not compile: {}",
                            one_line(&e.to_string())
                        ),
                    );
                    None
                }
            },
        }
    }

    fn rewrite(
        &mut self,
        route: &str,
        raw: &Spanned<RawRewrite>,
        path: Option<&PathMatch>,
    ) -> Rewrite {
        let rw = raw.get_ref();
        let path_rewrite = match (&rw.prefix, &rw.template) {
            (Some(_), Some(t)) => {
                self.error(
                    t.span(),
                    format!("route {route:?}: rewrite has both prefix and template: keep one"),
                );
                PathRewrite::Keep
            }
            (Some(p), None) => match path {
                Some(PathMatch::Prefix(from)) if p.get_ref().starts_with('/') => {
                    PathRewrite::Prefix {
                        from: from.clone(),
                        to: p.get_ref().clone(),
                    }
                }
                Some(PathMatch::Prefix(_)) => {
                    self.error(
                        p.span(),
                        format!(
                            "route {route:?}: rewrite prefix {:?} must start with '/'",
                            p.get_ref()
                        ),
                    );
                    PathRewrite::Keep
                }
                _ => {
                    self.error(p.span(), format!("route {route:?}: a prefix rewrite needs the route to match a path prefix (match.path = {{ prefix = \"...\" }})"));
                    PathRewrite::Keep
                }
            },
            (None, Some(t)) => self.template_rewrite(route, t, path),
            (None, None) => PathRewrite::Keep,
        };
        let mut set_headers = Vec::new();
        for (name, value) in &rw.set_headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.get_ref()),
            ) {
                (Ok(n), Ok(v)) => set_headers.push((n, v)),
                (Err(_), _) => self.error(
                    value.span(),
                    format!("route {route:?}: {name:?} is not a valid header name"),
                ),
                (_, Err(_)) => self.error(
                    value.span(),
                    format!(
                        "route {route:?}: the value of header {name:?} is not a valid header value"
                    ),
                ),
            }
        }
        let remove_headers = rw
            .remove_headers
            .iter()
            .filter_map(|h| match HeaderName::from_bytes(h.get_ref().as_bytes()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(
                        h.span(),
                        format!(
                            "route {route:?}: {:?} is not a valid header name",
                            h.get_ref()
                        ),
                    );
                    None
                }
            })
            .collect();
        Rewrite {
            path: path_rewrite,
            set_headers,
            remove_headers,
        }
    }

    fn template_rewrite(
        &mut self,
        route: &str,
        raw: &Spanned<String>,
        path: Option<&PathMatch>,
    ) -> PathRewrite {
        let Some(PathMatch::Template(from)) = path else {
            self.error(raw.span(), format!("route {route:?}: a template rewrite needs the route to match a path template (match.path = {{ template = \"...\" }})"));
            return PathRewrite::Keep;
        };
        let to = match Template::parse(raw.get_ref()) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    raw.span(),
                    format!("route {route:?}: rewrite template {:?}: {e}", raw.get_ref()),
                );
                return PathRewrite::Keep;
            }
        };
        let known: Vec<&str> = from.param_names().collect();
        if let Some(missing) = to.param_names().find(|p| !known.contains(p)) {
            self.error(raw.span(), format!("route {route:?}: rewrite template uses {{{missing}}}, which the path template {:?} does not capture", from.pattern()));
            return PathRewrite::Keep;
        }
        PathRewrite::Template {
            from: Box::new(from.clone()),
            to: Box::new(to),
        }
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
