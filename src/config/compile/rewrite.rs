//! A route's `rewrite` table: the path (prefix or template) and headers.

use super::*;

impl Compiler<'_> {
    pub(super) fn rewrite(
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

    pub(super) fn template_rewrite(
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
