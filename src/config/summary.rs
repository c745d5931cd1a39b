//! A plain-text summary of a valid config, for `banyan check`.

use super::{Config, RouteFeatures};
use crate::routing::matcher::RouteMatch;
use crate::routing::split::BUCKETS;
use crate::routing::{Action, Route, UpstreamId};
use std::fmt::Write;

/// Path words that mark a route kept apart for safety, not only for migration.
const GUARDED_WORDS: &[&str] = &[
    "admin", "internal", "private", "debug", "actuator", "manage", "console", "secret",
];

/// `banyan check`'s warning when routes look like access control (they match by host,
/// or a path with a word such as `admin`) and paths are matched raw: `/api/%61dmin`,
/// `//api/admin` and `/x/../api/admin` pass such a route by.
pub fn normalization_warning(config: &Config) -> Option<String> {
    use crate::routing::normalize::PathNormalization;
    if config.server.path_normalization != PathNormalization::None {
        return None;
    }
    let guarded: Vec<&str> = config
        .routes
        .routes()
        .iter()
        .filter(|r| !r.matches.hosts.is_empty() || path_looks_guarded(&r.matches))
        .map(|r| r.name.as_str())
        .collect();
    if guarded.is_empty() {
        return None;
    }
    Some(format!(
        "route(s) {} look like access control (by host, or a path such as /admin), and paths are matched as sent: /api/%61dmin, //api/admin and /x/../api/admin do not match a route for /api/admin; set server.path_normalization = \"standard\"",
        guarded.join(", ")
    ))
}

fn path_looks_guarded(m: &RouteMatch) -> bool {
    use crate::routing::matcher::PathMatch;
    let text = match &m.path {
        Some(PathMatch::Exact(p) | PathMatch::Prefix(p)) => p.to_ascii_lowercase(),
        Some(PathMatch::Template(t)) => t.pattern().to_ascii_lowercase(),
        Some(PathMatch::Regex(r)) => r.as_str().to_ascii_lowercase(),
        None => return false,
    };
    GUARDED_WORDS.iter().any(|w| text.contains(w))
}

pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    let name = |id: UpstreamId| config.upstreams[id].name.as_str();
    let _ = writeln!(
        out,
        "listen {}, admin {}",
        config.server.listen, config.admin.listen
    );
    let _ = writeln!(out, "upstreams: {}", config.upstreams.len());
    for u in &config.upstreams {
        let endpoints: Vec<String> = u.endpoints.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  {:<20} {}{}",
            u.name,
            endpoints.join(", "),
            if u.health_check.is_some() {
                "  (health checked)"
            } else {
                ""
            }
        );
    }
    let routes = config.routes.routes();
    let splits = routes
        .iter()
        .filter(|r| matches!(r.action, Action::Split(_)))
        .count();
    let shadowed = config
        .features
        .iter()
        .filter(|f| f.shadow.is_some())
        .count();
    let _ = writeln!(
        out,
        "routes: {} ({} forward, {} split; {} shadowed)",
        routes.len(),
        routes.len() - splits,
        splits,
        shadowed
    );
    for (i, r) in config.routes.with_ids() {
        let _ = writeln!(
            out,
            "  {:>3}. {:<24} {:<40} {}",
            i.index() + 1,
            r.name,
            describe_match(&r.matches),
            describe_action(r, config.features(i), name)
        );
    }
    let _ = writeln!(
        out,
        "  ---  unmatched requests go to {}",
        name(config.routes.default_upstream())
    );
    migration_summary(config, &mut out);
    out
}

/// How many routes stand at each migration stage (`banyan check`; the admin API adds
/// each stage's share of the traffic).
fn migration_summary(config: &Config, out: &mut String) {
    let routes = config.routes.routes();
    let migrated = config
        .features
        .iter()
        .filter(|f| f.migration.is_some())
        .count();
    if migrated == 0 {
        return;
    }
    let counts: Vec<String> = crate::migration::stage::ALL
        .iter()
        .map(|stage| {
            let n = config
                .features
                .iter()
                .filter(|f| f.migration.as_ref().is_some_and(|m| m.stage == *stage))
                .count();
            format!("{} {n}", stage.label())
        })
        .collect();
    let _ = writeln!(
        out,
        "migration: {migrated} route(s) by stage: {}; {} not migrated",
        counts.join(", "),
        routes.len() - migrated
    );
}

/// `GET,HEAD shop.example /items/{id} +2 conditions`.
pub fn describe_match(m: &RouteMatch) -> String {
    let mut parts = Vec::new();
    // A gRPC route reads as its calls (`grpc shop.Items/Get`): the path, method and
    // content type they stand for go unsaid.
    let grpc = m.grpc.as_ref();
    match grpc {
        Some(g) => parts.push(format!(
            "grpc {}/{}{}",
            g.service,
            g.method.as_deref().unwrap_or("*"),
            if g.idempotent { " (idempotent)" } else { "" }
        )),
        None if !m.methods.is_empty() => {
            let methods: Vec<&str> = m.methods.iter().map(|m| m.as_str()).collect();
            parts.push(methods.join(","));
        }
        None => {}
    }
    if !m.hosts.is_empty() {
        let hosts: Vec<String> = m.hosts.iter().map(ToString::to_string).collect();
        parts.push(hosts.join(","));
    }
    if grpc.is_none() {
        parts.push(m.path.as_ref().map_or("any path".into(), |p| p.describe()));
    }
    let extra = m.headers.len().saturating_sub(usize::from(grpc.is_some()))
        + m.query.len()
        + m.cookies.len();
    if extra > 0 {
        parts.push(format!("+{extra} conditions"));
    }
    parts.join(" ")
}

/// `-> items-svc`, `split 10% to items-svc (cookie sid), rest legacy`.
pub fn describe_action<'a>(
    r: &Route,
    features: &RouteFeatures,
    name: impl Fn(UpstreamId) -> &'a str,
) -> String {
    let mut s = match &features.migration {
        Some(m) => format!(
            "[{}{}] ",
            m.stage.label(),
            if m.ramp.is_some() { ", ramped" } else { "" }
        ),
        None => String::new(),
    };
    s += &match &r.action {
        Action::Forward(u) => format!("-> {}", name(*u)),
        Action::Split(sp) => format!(
            "split {}% to {} by {}, rest {}",
            f64::from(sp.current_threshold()) * 100.0 / f64::from(BUCKETS),
            name(sp.to),
            sp.key.describe(),
            name(sp.base)
        ),
    };
    if let Some(shadow) = &features.shadow {
        let _ = write!(
            s,
            ", shadow {}% to {}{}{}",
            f64::from(shadow.threshold) * 100.0 / f64::from(BUCKETS),
            name(shadow.to),
            match shadow.back {
                Some(back) => format!(" (what it serves to {})", name(back)),
                None => String::new(),
            },
            if shadow.noise {
                " (noise: secondary)"
            } else {
                ""
            }
        );
    }
    if !r.rewrite.is_noop() {
        s.push_str(", rewritten");
    }
    if let Some(f) = r.fallback {
        let _ = write!(s, ", fallback {}", name(f));
    }
    s
}
