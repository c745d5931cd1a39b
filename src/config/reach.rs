//! Routes that an earlier route makes unreachable: the earlier one matches every request
//! the later one would. Conservative: only reports what it can prove from the text.

use super::raw::{RawKeyMatch, RawMatch, RawPath, RawRoute};
use crate::routing::matcher::PathMatch;
use crate::routing::RouteTable;
use std::collections::HashMap;
use std::ops::Range;
use toml::Spanned;

/// (span of the shadowed route's name, warning) for each unreachable route. `table` is
/// the compiled form of `routes` (so it exists only for a config without errors): its
/// path index finds the few earlier routes that can cover a route, instead of trying
/// every pair.
pub fn unreachable_routes(
    routes: &[Spanned<RawRoute>],
    table: &RouteTable,
) -> Vec<(Range<usize>, String)> {
    let compiled = table.routes();
    if compiled.len() != routes.len() {
        return Vec::new();
    }
    let facts: Vec<Facts> = routes
        .iter()
        .zip(compiled)
        .map(|(r, c)| Facts::of(&r.get_ref().matches, c.matches.path.as_ref()))
        .collect();
    let mut same_regex: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        if let Some(RawPath::Regex(r)) = f.path {
            same_regex.entry(r.as_str()).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (j, later) in facts.iter().enumerate() {
        let mut candidates: Vec<usize> = match later.path {
            None => table.candidates("").to_vec(),
            Some(RawPath::Exact(p) | RawPath::Prefix(p) | RawPath::Template(p)) => {
                table.candidates(p).to_vec()
            }
            Some(RawPath::Regex(r)) => {
                let mut c = table.candidates("").to_vec();
                c.extend(same_regex.get(r.as_str()).into_iter().flatten());
                c
            }
        };
        candidates.retain(|&i| i < j);
        candidates.sort_unstable();
        if let Some(&i) = candidates.iter().find(|&&i| facts[i].covers(later)) {
            let (earlier, later) = (routes[i].get_ref(), routes[j].get_ref());
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

/// What one route's match says, in the form the pairwise check needs.
struct Facts<'a> {
    hosts: Vec<&'a str>,
    methods: Vec<&'a str>,
    headers: &'a [Spanned<RawKeyMatch>],
    query: &'a [Spanned<RawKeyMatch>],
    cookies: &'a [Spanned<RawKeyMatch>],
    path: Option<&'a RawPath>,
    compiled: Option<&'a PathMatch>,
}

impl<'a> Facts<'a> {
    fn of(m: &'a RawMatch, compiled: Option<&'a PathMatch>) -> Self {
        Facts {
            hosts: m.hosts.iter().map(|h| h.get_ref().as_str()).collect(),
            methods: m.methods.iter().map(|h| h.get_ref().as_str()).collect(),
            headers: &m.headers,
            query: &m.query,
            cookies: &m.cookies,
            path: m.path.as_ref().map(Spanned::get_ref),
            compiled,
        }
    }

    /// Does every request that meets `b` also meet `self`?
    fn covers(&self, b: &Facts<'_>) -> bool {
        let subset = |a: &[&str], b: &[&str]| {
            a.is_empty() || (!b.is_empty() && b.iter().all(|x| a.contains(x)))
        };
        let within = |a: &[Spanned<RawKeyMatch>], b: &[Spanned<RawKeyMatch>]| {
            a.iter()
                .all(|x| b.iter().any(|y| x.get_ref() == y.get_ref()))
        };
        self.path_covers(b)
            && subset(&self.hosts, &b.hosts)
            && subset(&self.methods, &b.methods)
            && within(self.headers, b.headers)
            && within(self.query, b.query)
            && within(self.cookies, b.cookies)
    }

    fn path_covers(&self, b: &Facts<'_>) -> bool {
        let Some(a_path) = self.path else { return true };
        let Some(b_path) = b.path else { return false };
        if a_path == b_path {
            return true;
        }
        match (a_path, b_path) {
            (RawPath::Prefix(p), RawPath::Exact(q) | RawPath::Prefix(q)) => {
                q.starts_with(p.as_str())
            }
            (RawPath::Prefix(p), RawPath::Template(t)) => {
                t.split('{').next().unwrap_or("").starts_with(p.as_str())
            }
            (RawPath::Template(_) | RawPath::Regex(_), RawPath::Exact(q)) => {
                self.compiled.is_some_and(|m| m.matches(q))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::matcher::full_match_regex;
    use crate::routing::template::Template;

    fn p(kind: &str, v: &str) -> RawPath {
        match kind {
            "exact" => RawPath::Exact(v.into()),
            "prefix" => RawPath::Prefix(v.into()),
            "template" => RawPath::Template(v.into()),
            _ => RawPath::Regex(v.into()),
        }
    }

    fn compiled(p: &RawPath) -> Option<PathMatch> {
        match p {
            RawPath::Template(t) => Template::parse(t).ok().map(PathMatch::Template),
            RawPath::Regex(r) => full_match_regex(r).ok().map(PathMatch::Regex),
            _ => None,
        }
    }

    fn path_covers(a: Option<&RawPath>, b: Option<&RawPath>) -> bool {
        let raw = |p: Option<&RawPath>| RawMatch {
            path: p.map(|p| Spanned::new(0..0, p.clone())),
            ..Default::default()
        };
        let (ma, mb) = (raw(a), raw(b));
        let (ca, cb) = (a.and_then(compiled), b.and_then(compiled));
        Facts::of(&ma, ca.as_ref()).covers(&Facts::of(&mb, cb.as_ref()))
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
