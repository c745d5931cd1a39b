//! `[shadow]` and a route's `shadow` and `compare` tables: where copies go, what is
//! compared and how, what is redacted.

use super::*;

impl Compiler<'_> {
    pub(super) fn shadow_settings(&mut self, raw: &RawShadowSettings) -> ShadowSettings {
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

    pub(super) fn redact_names(&mut self, raw: &[Spanned<String>]) -> Vec<String> {
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

    pub(super) fn redact_exempt(&mut self, raw: &[Spanned<String>]) -> Vec<String> {
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

    pub(super) fn globs(&mut self, raw: &[Spanned<String>], what: &str) -> Vec<String> {
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

    pub(super) fn shadow(
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
    pub(super) fn shadow_spec(
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
        // A gRPC call is a POST: shadowed when it has no side effects.
        let grpc_idempotent = raw
            .matches
            .grpc
            .as_ref()
            .is_some_and(|g| grpc_idempotent(g.get_ref(), Some(&rules)));
        if grpc_idempotent && !methods.contains(&Method::POST) {
            methods.push(Method::POST);
        }
        Some(ShadowSpec {
            to,
            back: None,
            new: to,
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
            grpc_idempotent,
        })
    }

    pub(super) fn compare_rules(
        &mut self,
        route: &str,
        raw: Option<&Spanned<RawCompare>>,
    ) -> (Rules, Vec<String>) {
        let Some(raw) = raw else {
            return (Rules::default(), Vec::new());
        };
        let (span, c) = (raw.span(), raw.get_ref());
        let (ignore, html_ignore) = self.ignore_entries(route, &c.ignore);
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
        rules.html_ignore = html_ignore;
        rules = self.glob_rule(
            route,
            rules,
            &c.allow_extra,
            "allow_extra",
            Rules::with_allowed_extra,
        );
        rules = self.glob_rule(
            route,
            rules,
            &c.case_insensitive_keys,
            "case_insensitive_keys",
            Rules::with_case_insensitive_keys,
        );
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
        let mut rules = rules;
        rules.protobuf = c.protobuf.as_ref().and_then(|p| self.protobuf(route, p));
        (rules, redact)
    }

    /// `compare.ignore`: field globs (JSON, XML, header, status, body) and CSS selectors
    /// for HTML, told apart by how they begin.
    fn ignore_entries(
        &mut self,
        route: &str,
        raw: &[Spanned<String>],
    ) -> (Vec<String>, Vec<crate::compare::html::Ignored>) {
        let (mut globs, mut selectors) = (Vec::new(), Vec::new());
        for entry in raw {
            let text = entry.get_ref();
            if is_field_glob(text) {
                globs.push(text.clone());
                continue;
            }
            match crate::compare::html::Ignored::parse(text) {
                Ok(s) => selectors.push(s),
                Err(e) => self.error(entry.span(), format!("route {route:?}: compare.ignore: {e}; write a field ($.field, $..any_depth, /xml/path, //@attr, header.name, status or body) or a CSS selector for HTML (input[name=csrf]@value)")),
            }
        }
        (globs, selectors)
    }

    /// A `compare` rule that takes field globs (`allow_extra`, `case_insensitive_keys`):
    /// `rules` with it applied, or unchanged and the error located at the rule.
    fn glob_rule(
        &mut self,
        route: &str,
        rules: Rules,
        raw: &[Spanned<String>],
        key: &str,
        apply: fn(Rules, &[String]) -> Result<Rules, crate::compare::rules::RuleError>,
    ) -> Rules {
        let what = format!("route {route:?}: compare.{key}");
        let globs: Vec<String> = raw
            .iter()
            .filter_map(|g| {
                if is_field_glob(g.get_ref()) {
                    Some(g.get_ref().clone())
                } else {
                    self.error(g.span(), format!("{what}: {:?} is not a field path: write $.field, $.items[*], $..any_depth or an XML path such as /catalog/book", g.get_ref()));
                    None
                }
            })
            .collect();
        match apply(rules.clone(), &globs) {
            Ok(r) => r,
            Err(e) => {
                if let Some(first) = raw.first() {
                    self.error(first.span(), format!("{what}: {e}"));
                }
                rules
            }
        }
    }

    fn protobuf(&mut self, route: &str, raw: &Spanned<RawProtobuf>) -> Option<Protobuf> {
        if !self.reads_file(raw.span()) {
            return None;
        }
        let path = &raw.get_ref().descriptor_set;
        let read = std::fs::read(path)
            .map_err(|e| format!("cannot read {path:?}: {e}"))
            .and_then(|bytes| {
                Protobuf::decode(&bytes).map_err(|e| format!("{path:?} is not a descriptor set (protoc --descriptor_set_out, buf build -o): {e}"))
            });
        match read {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(
                    raw.span(),
                    format!("route {route:?}: compare.protobuf: {e}"),
                );
                None
            }
        }
    }
}

/// Whether a route's gRPC method has no side effects: declared `idempotent`, or, on a
/// route for one method, its `idempotency_level` in the descriptor set.
pub(super) fn grpc_idempotent(g: &RawGrpcMatch, rules: Option<&Rules>) -> bool {
    let described = |method: &String| {
        rules
            .and_then(|r| r.protobuf.as_ref())
            .is_some_and(|p| p.is_idempotent(&format!("/{}/{method}", g.service)))
    };
    g.idempotent || g.method.as_ref().is_some_and(described)
}

/// A field path or glob a comparison names: JSON (`$...`), XML (`/...`), a header,
/// the status or the whole body.
fn is_field_glob(text: &str) -> bool {
    text.starts_with('$')
        || text.starts_with('/')
        || text.starts_with("header.")
        || text == "status"
        || text == "body"
}
