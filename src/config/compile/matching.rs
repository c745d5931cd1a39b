//! A route's `match` table: hosts, methods, path, headers, query and cookies.

use super::*;

impl Compiler<'_> {
    pub(super) fn route_match(&mut self, route: &str, raw: &RawMatch) -> RouteMatch {
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
        let mut path = raw.path.as_ref().and_then(|p| self.path(route, p));
        let mut headers: Vec<HeaderMatch> = raw
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
        let mut methods = methods;
        let grpc = raw.grpc.as_ref().and_then(|g| {
            let grpc = self.grpc_match(route, raw, g)?;
            // A gRPC call: POST to /service/method, with a gRPC content type.
            path = Some(match &grpc.method {
                Some(method) => PathMatch::Exact(format!("/{}/{method}", grpc.service)),
                None => PathMatch::Prefix(format!("/{}/", grpc.service)),
            });
            methods = vec![Method::POST];
            headers.push(HeaderMatch {
                name: http::header::CONTENT_TYPE,
                value: ValueMatch::Regex(
                    full_match_regex("(?i)application/grpc([+;].*)?").expect("a valid regex"),
                ),
            });
            Some(grpc)
        });
        RouteMatch {
            hosts,
            methods,
            path,
            headers,
            query,
            cookies,
            grpc,
        }
    }

    fn grpc_match(
        &mut self,
        route: &str,
        raw: &RawMatch,
        g: &Spanned<RawGrpcMatch>,
    ) -> Option<GrpcMatch> {
        let span = g.span();
        if raw.path.is_some() || !raw.methods.is_empty() {
            self.error(span, format!("route {route:?}: match.grpc names the path and method of its calls: give no path or methods beside it"));
            return None;
        }
        let RawGrpcMatch {
            service,
            method,
            idempotent,
        } = g.get_ref();
        // A service is a package-qualified name (shop.v1.Items), a method an identifier.
        let ident =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !service.split('.').all(ident) {
            self.error(span, format!("route {route:?}: grpc service {service:?} is not a service name such as \"shop.v1.Items\""));
            return None;
        }
        if let Some(m) = method.as_deref().filter(|m| !ident(m)) {
            self.error(
                span,
                format!(
                    "route {route:?}: grpc method {m:?} is not a method name such as \"GetItem\""
                ),
            );
            return None;
        }
        Some(GrpcMatch {
            service: service.clone(),
            method: method.clone(),
            idempotent: *idempotent,
        })
    }

    pub(super) fn params(
        &mut self,
        route: &str,
        what: &str,
        raw: &[Spanned<RawKeyMatch>],
    ) -> Vec<ParamMatch> {
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

    pub(super) fn value_match(
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

    pub(super) fn path(&mut self, route: &str, raw: &Spanned<RawPath>) -> Option<PathMatch> {
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
}
