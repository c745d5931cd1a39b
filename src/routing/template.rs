//! Path templates: `/items/{id}`, `/static/{*rest}`. A parameter fills a whole segment;
//! a catch-all takes the rest of the path and must come last.

use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Static(String),
    Param(String),
    CatchAll(String),
}

/// A parsed template, with a matchit router of its own for matching one route alone.
#[derive(Debug, Clone)]
pub struct Template {
    pattern: String,
    segments: Vec<Segment>,
    router: matchit::Router<()>,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("a path template must start with '/'")]
    NoLeadingSlash,
    #[error("segment {0:?} is not a parameter: write {{name}} or {{*name}} for a whole segment")]
    BadSegment(String),
    #[error("parameter {0:?} has no name")]
    EmptyName(String),
    #[error("parameter {0:?} appears twice")]
    Duplicate(String),
    #[error("the catch-all {0:?} must be the last segment")]
    CatchAllNotLast(String),
    #[error("{0}")]
    Router(String),
}

impl Template {
    pub fn parse(pattern: &str) -> Result<Self, TemplateError> {
        let rest = pattern
            .strip_prefix('/')
            .ok_or(TemplateError::NoLeadingSlash)?;
        let mut segments = Vec::new();
        let mut names = HashSet::new();
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let segment = parse_segment(part)?;
            if let Segment::Param(name) | Segment::CatchAll(name) = &segment {
                if !names.insert(name.clone()) {
                    return Err(TemplateError::Duplicate(name.clone()));
                }
            }
            if matches!(segment, Segment::CatchAll(_)) && i + 1 != parts.len() {
                return Err(TemplateError::CatchAllNotLast((*part).to_string()));
            }
            segments.push(segment);
        }
        let mut router = matchit::Router::new();
        router
            .insert(pattern, ())
            .map_err(|e| TemplateError::Router(e.to_string()))?;
        Ok(Template {
            pattern: pattern.to_string(),
            segments,
            router,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, path: &str) -> bool {
        self.router.at(path).is_ok()
    }

    /// The parameter values a path gives this template, by name.
    pub fn captures<'p>(&'p self, path: &'p str) -> Option<Vec<(&'p str, &'p str)>> {
        let m = self.router.at(path).ok()?;
        Some(m.params.iter().collect())
    }

    /// Names of the parameters, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::CatchAll(n) => Some(n.as_str()),
            Segment::Static(_) => None,
        })
    }

    /// The first segment, when it is literal text.
    pub fn first_literal(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Static(s)) => Some(s),
            _ => None,
        }
    }

    /// Could some path match both templates? Conservative: says yes when unsure.
    pub fn overlaps(&self, other: &Template) -> bool {
        let (a, b) = (&self.segments, &other.segments);
        for i in 0..a.len().max(b.len()) {
            match (a.get(i), b.get(i)) {
                (Some(Segment::CatchAll(_)), _) | (_, Some(Segment::CatchAll(_))) => return true,
                (Some(Segment::Static(x)), Some(Segment::Static(y))) if x != y => return false,
                (Some(_), Some(_)) => {}
                _ => return false,
            }
        }
        true
    }

    /// Fill this template with values captured by another.
    pub fn render(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(self.pattern.len() + 16);
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Static(s) => out.push_str(s),
                Segment::Param(name) | Segment::CatchAll(name) => {
                    if let Some((_, v)) = values.iter().find(|(k, _)| k == name) {
                        out.push_str(v);
                    }
                }
            }
        }
        out
    }
}

fn parse_segment(part: &str) -> Result<Segment, TemplateError> {
    if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        let (catch_all, name) = match inner.strip_prefix('*') {
            Some(n) => (true, n),
            None => (false, inner),
        };
        if name.is_empty() {
            return Err(TemplateError::EmptyName(part.to_string()));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(TemplateError::BadSegment(part.to_string()));
        }
        return Ok(if catch_all {
            Segment::CatchAll(name.to_string())
        } else {
            Segment::Param(name.to_string())
        });
    }
    if part.contains(['{', '}']) {
        return Err(TemplateError::BadSegment(part.to_string()));
    }
    Ok(Segment::Static(part.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str) -> Template {
        Template::parse(p).expect("template")
    }

    #[test]
    fn parses_and_refuses() {
        assert!(t("/items/{id}").matches("/items/42"));
        assert!(t("/static/{*rest}").matches("/static/a/b.css"));
        let bad = [
            ("items/{id}", TemplateError::NoLeadingSlash),
            ("/items/x{id}", TemplateError::BadSegment("x{id}".into())),
            ("/items/{}", TemplateError::EmptyName("{}".into())),
            ("/a/{id}/{id}", TemplateError::Duplicate("id".into())),
            (
                "/a/{*rest}/b",
                TemplateError::CatchAllNotLast("{*rest}".into()),
            ),
        ];
        for (pattern, want) in bad {
            assert_eq!(Template::parse(pattern).err(), Some(want), "{pattern}");
        }
    }

    #[test]
    fn captures_and_renders() {
        let from = t("/items/{id}/reviews/{*rest}");
        let to = t("/v2/products/{id}/r/{rest}");
        let values = from.captures("/items/42/reviews/page/2").expect("match");
        assert_eq!(to.render(&values), "/v2/products/42/r/page/2");
    }

    #[test]
    fn overlap_is_conservative() {
        let cases = [
            ("/items/{id}", "/items/new", true),
            ("/items/{id}", "/items/{sku}", true),
            ("/items/{id}", "/users/{id}", false),
            ("/items/{id}", "/items/{id}/reviews", false),
            ("/static/{*rest}", "/static/a/{b}", true),
            ("/a/b", "/a/c", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(t(a).overlaps(&t(b)), want, "{a} vs {b}");
            assert_eq!(t(b).overlaps(&t(a)), want, "{b} vs {a}");
        }
    }
}
