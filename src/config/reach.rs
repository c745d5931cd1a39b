//! Routes that an earlier route makes unreachable: the earlier one matches every request
//! the later one would. Conservative: only reports what it can prove from the text.

use super::raw::{RawKeyMatch, RawMatch, RawPath, RawRoute};
use crate::routing::matcher::full_match_regex;
use crate::routing::template::Template;
use std::ops::Range;
use toml::Spanned;

/// (span of the shadowed route's name, warning) for each unreachable route.
pub fn unreachable_routes(routes: &[Spanned<RawRoute>]) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    for (j, later) in routes.iter().enumerate() {
        let later = later.get_ref();
        if let Some(earlier) = routes[..j]
            .iter()
            .map(Spanned::get_ref)
            .find(|earlier| covers(&earlier.matches, &later.matches))
        {
            out.push((
                later.name.span(),
                format!(
                    "route {:?} is unreachable: route {:?} before it matches every request it would",
                    later.name.get_ref(),
                    earlier.name.get_ref()
                ),
            ));
        }
    }
    out
}

/// Does every request that meets `b` also meet `a`?
fn covers(a: &RawMatch, b: &RawMatch) -> bool {
    let values = |m: &[Spanned<String>]| m.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>();
    let subset = |a: &[Spanned<String>], b: &[Spanned<String>]| {
        a.is_empty() || (!b.is_empty() && values(b).iter().all(|x| values(a).contains(x)))
    };
    let conditions_within = |a: &[Spanned<RawKeyMatch>], b: &[Spanned<RawKeyMatch>]| {
        a.iter()
            .all(|x| b.iter().any(|y| x.get_ref() == y.get_ref()))
    };
    subset(&a.hosts, &b.hosts)
        && subset(&a.methods, &b.methods)
        && conditions_within(&a.headers, &b.headers)
        && conditions_within(&a.query, &b.query)
        && conditions_within(&a.cookies, &b.cookies)
        && path_covers(
            a.path.as_ref().map(Spanned::get_ref),
            b.path.as_ref().map(Spanned::get_ref),
        )
}

fn path_covers(a: Option<&RawPath>, b: Option<&RawPath>) -> bool {
    let Some(a) = a else { return true };
    let Some(b) = b else { return false };
    if a == b {
        return true;
    }
    match (a, b) {
        (RawPath::Prefix(p), RawPath::Exact(q) | RawPath::Prefix(q)) => q.starts_with(p.as_str()),
        (RawPath::Prefix(p), RawPath::Template(t)) => {
            let literal = t.split('{').next().unwrap_or("");
            literal.starts_with(p.as_str())
        }
        (RawPath::Template(t), RawPath::Exact(q)) => Template::parse(t).is_ok_and(|t| t.matches(q)),
        (RawPath::Regex(r), RawPath::Exact(q)) => full_match_regex(r).is_ok_and(|r| r.is_match(q)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: &str, v: &str) -> RawPath {
        match kind {
            "exact" => RawPath::Exact(v.into()),
            "prefix" => RawPath::Prefix(v.into()),
            "template" => RawPath::Template(v.into()),
            _ => RawPath::Regex(v.into()),
        }
    }

    #[test]
    fn path_coverage() {
        let cases = [
            (p("prefix", "/api/"), p("exact", "/api/x"), true),
            (p("prefix", "/api/"), p("prefix", "/api/v2/"), true),
            (p("prefix", "/api/v2/"), p("prefix", "/api/"), false),
            (p("prefix", "/items/"), p("template", "/items/{id}"), true),
            (p("template", "/items/{id}"), p("exact", "/items/7"), true),
            (
                p("template", "/items/{id}"),
                p("exact", "/items/7/x"),
                false,
            ),
            (p("regex", "/v[0-9]/.*"), p("exact", "/v1/a"), true),
            (p("exact", "/a"), p("prefix", "/a"), false),
        ];
        for (a, b, want) in cases {
            assert_eq!(path_covers(Some(&a), Some(&b)), want, "{a:?} covers {b:?}");
        }
        assert!(path_covers(None, Some(&p("exact", "/x"))));
        assert!(!path_covers(Some(&p("prefix", "/")), None));
    }
}
