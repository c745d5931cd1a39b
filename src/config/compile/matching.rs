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
