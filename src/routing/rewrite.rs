//! Per-route request rewrites: path (prefix replace or template substitution) and headers.

use super::matcher::PathMatch;
use super::template::Template;
use http::{HeaderMap, HeaderName, HeaderValue};

/// How a route rewrites the path it forwards.
#[derive(Debug, Clone, Default)]
pub enum PathRewrite {
    #[default]
    Keep,
    /// Replace the matched prefix `from` with `to`.
    Prefix { from: String, to: String },
    /// Fill `to` with the parameters `from` captured.
    Template {
        from: Box<Template>,
        to: Box<Template>,
    },
}

/// Everything a route changes in the request it forwards.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    pub path: PathRewrite,
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    pub remove_headers: Vec<HeaderName>,
}

impl Rewrite {
    /// The new path for a request path, or None to keep it as it is.
    pub fn path(&self, path: &str) -> Option<String> {
        match &self.path {
            PathRewrite::Keep => None,
            PathRewrite::Prefix { from, to } => {
                let rest = path.strip_prefix(from.as_str())?;
                Some(format!("{to}{rest}"))
            }
            PathRewrite::Template { from, to } => {
                let values = from.captures(path)?;
                Some(to.render(&values))
            }
        }
    }

    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        for name in &self.remove_headers {
            headers.remove(name);
        }
        for (name, value) in &self.set_headers {
            headers.insert(name.clone(), value.clone());
        }
    }

    pub fn is_noop(&self) -> bool {
        matches!(self.path, PathRewrite::Keep)
            && self.set_headers.is_empty()
            && self.remove_headers.is_empty()
    }
}

/// The template of a path condition, when it is one.
pub fn template_of(path: Option<&PathMatch>) -> Option<&Template> {
    match path {
        Some(PathMatch::Template(t)) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_template_rewrites() {
        let prefix = Rewrite {
            path: PathRewrite::Prefix {
                from: "/api/".into(),
                to: "/v2/".into(),
            },
            ..Default::default()
        };
        assert_eq!(prefix.path("/api/items/1").as_deref(), Some("/v2/items/1"));
        let template = Rewrite {
            path: PathRewrite::Template {
                from: Box::new(Template::parse("/items/{id}").expect("t")),
                to: Box::new(Template::parse("/v2/products/{id}").expect("t")),
            },
            ..Default::default()
        };
        assert_eq!(
            template.path("/items/42").as_deref(),
            Some("/v2/products/42")
        );
        assert_eq!(Rewrite::default().path("/x"), None);
    }

    #[test]
    fn headers_removed_then_set() {
        let rw = Rewrite {
            set_headers: vec![(
                HeaderName::from_static("x-migrated"),
                HeaderValue::from_static("1"),
            )],
            remove_headers: vec![HeaderName::from_static("x-debug")],
            ..Default::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-debug", HeaderValue::from_static("on"));
        h.insert("x-migrated", HeaderValue::from_static("0"));
        rw.apply_headers(&mut h);
        assert!(h.get("x-debug").is_none());
        assert_eq!(h.get("x-migrated").map(|v| v.as_bytes()), Some(&b"1"[..]));
    }
}
