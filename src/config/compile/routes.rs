//! `[[routes]]`: each route's name, action, split, upgrades and guarded methods.

use super::*;

impl Compiler<'_> {
    pub(super) fn routes(
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

    pub(super) fn route(
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
        // The route's compare rules: its shadow's, or compiled alone for a route that
        // does not shadow now (a replay of its captures compares with them).
        let compare = match &shadow {
            Some(s) => Some(s.rules.clone()),
            None => raw
                .compare
                .as_ref()
                .map(|c| std::sync::Arc::new(self.compare_rules(name, Some(c)).0)),
        };
        let mut matches = matches;
        if let (Some(g), Some(raw_grpc)) = (matches.grpc.as_mut(), &raw.matches.grpc) {
            let rules = shadow.as_ref().map(|s| &*s.rules);
            g.idempotent = super::shadow::grpc_idempotent(raw_grpc.get_ref(), rules);
        }
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
            access_log_share: raw
                .access_log
                .as_ref()
                .and_then(|a| self.access_log_share(name, a)),
            compare,
            capture: raw
                .capture
                .as_ref()
                .and_then(|c| self.route_capture(name, c))
                .map(std::sync::Arc::new),
        };
        Some((route, features))
    }

    /// `upgrades` and `allow_methods`.
    pub(super) fn protocols(&mut self, route: &str, raw: &RawRoute) -> Protocols {
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

    pub(super) fn action(
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

    pub(super) fn split_key(
        &mut self,
        route: &str,
        raw: &Spanned<RawSplitKey>,
    ) -> Option<SplitKey> {
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
}
