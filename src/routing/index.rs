//! The path index: from a request path to the few routes whose path condition it meets,
//! without scanning every route. Exact paths are a hash lookup, prefixes one lookup per
//! distinct prefix length, templates a matchit router per layer of non-overlapping
//! templates, regexes one RegexSet pass.

use super::matcher::PathMatch;
use super::template::Template;
use regex::RegexSet;
use smallvec::SmallVec;
use std::collections::HashMap;

/// Route indices, in config order once sorted.
pub type Candidates = SmallVec<[usize; 8]>;

#[derive(Debug, Default)]
pub struct PathIndex {
    exact: HashMap<String, Vec<usize>>,
    /// (prefix length, prefix -> routes), by increasing length.
    prefixes: Vec<(usize, HashMap<String, Vec<usize>>)>,
    /// Each layer holds templates of which no two can match the same path, so one lookup
    /// per layer finds every matching template.
    template_layers: Vec<Layer>,
    regexes: Option<(RegexSet, Vec<usize>)>,
    /// Routes without a path condition: candidates for every path.
    any_path: Vec<usize>,
}

#[derive(Debug, Default)]
struct Layer {
    router: matchit::Router<usize>,
    /// Members by their first segment when it is literal; only templates with the same
    /// first literal (or a parameter there) can overlap, so only those are compared.
    by_first: HashMap<String, Vec<Template>>,
    /// Members whose first segment is a parameter.
    open_first: Vec<Template>,
}

impl Layer {
    fn overlaps(&self, t: &Template) -> bool {
        let rivals: Box<dyn Iterator<Item = &Template>> = match t.first_literal() {
            Some(first) => Box::new(
                self.by_first
                    .get(first)
                    .into_iter()
                    .flatten()
                    .chain(&self.open_first),
            ),
            None => Box::new(self.by_first.values().flatten().chain(&self.open_first)),
        };
        rivals.into_iter().any(|other| other.overlaps(t))
    }

    fn add(&mut self, t: &Template) {
        match t.first_literal() {
            Some(first) => self
                .by_first
                .entry(first.to_string())
                .or_default()
                .push(t.clone()),
            None => self.open_first.push(t.clone()),
        }
    }
}

impl PathIndex {
    /// Build the index over routes' path conditions, given in route order.
    pub fn build<'a>(paths: impl IntoIterator<Item = Option<&'a PathMatch>>) -> Self {
        let mut index = PathIndex::default();
        let mut prefixes: HashMap<usize, HashMap<String, Vec<usize>>> = HashMap::new();
        let mut regexes: (Vec<String>, Vec<usize>) = (Vec::new(), Vec::new());
        let mut templates = Vec::new();
        for (i, path) in paths.into_iter().enumerate() {
            match path {
                None => index.any_path.push(i),
                Some(PathMatch::Exact(p)) => index.exact.entry(p.clone()).or_default().push(i),
                Some(PathMatch::Prefix(p)) => prefixes
                    .entry(p.len())
                    .or_default()
                    .entry(p.clone())
                    .or_default()
                    .push(i),
                Some(PathMatch::Regex(re)) => {
                    regexes.0.push(re.as_str().to_string());
                    regexes.1.push(i);
                }
                Some(PathMatch::Template(t)) => templates.push((i, t)),
            }
        }
        let mut by_length: Vec<_> = prefixes.into_iter().collect();
        by_length.sort_by_key(|(len, _)| *len);
        index.prefixes = by_length;
        if !regexes.0.is_empty() {
            // Each pattern already compiled alone, so the set compiles too; if it ever
            // did not, the routes stay reachable through the any-path fallback.
            match RegexSet::new(&regexes.0) {
                Ok(set) => index.regexes = Some((set, regexes.1)),
                Err(_) => index.any_path.extend(regexes.1),
            }
        }
        for (i, template) in templates {
            index.add_template(i, template);
        }
        index.any_path.sort_unstable();
        index
    }

    fn add_template(&mut self, route: usize, template: &Template) {
        for layer in &mut self.template_layers {
            if !layer.overlaps(template) && layer.router.insert(template.pattern(), route).is_ok() {
                layer.add(template);
                return;
            }
        }
        let mut layer = Layer::default();
        if layer.router.insert(template.pattern(), route).is_ok() {
            layer.add(template);
            self.template_layers.push(layer);
        } else {
            // matchit refuses a few shapes our parser accepts; match those one by one.
            self.any_path.push(route);
        }
    }

    /// Every route whose path condition the path may meet, sorted in route order.
    /// Routes in `any_path` still have their own path condition checked by the caller.
    pub fn candidates(&self, path: &str) -> Candidates {
        let mut out = Candidates::new();
        out.extend_from_slice(&self.any_path);
        if let Some(routes) = self.exact.get(path) {
            out.extend_from_slice(routes);
        }
        for (len, map) in &self.prefixes {
            if *len > path.len() {
                break;
            }
            let Some(head) = path.get(..*len) else {
                continue;
            };
            if let Some(routes) = map.get(head) {
                out.extend_from_slice(routes);
            }
        }
        for layer in &self.template_layers {
            if let Ok(m) = layer.router.at(path) {
                out.push(*m.value);
            }
        }
        if let Some((set, routes)) = &self.regexes {
            out.extend(set.matches(path).iter().map(|k| routes[k]));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether `route` is one whose path the index did not check itself.
    pub fn needs_path_check(&self, route: usize) -> bool {
        self.any_path.binary_search(&route).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::matcher::full_match_regex;
    use crate::routing::template::Template;

    fn paths() -> Vec<Option<PathMatch>> {
        vec![
            Some(PathMatch::Exact("/a".into())),     // 0
            Some(PathMatch::Prefix("/api/".into())), // 1
            Some(PathMatch::Template(
                Template::parse("/items/{id}").expect("t"),
            )), // 2
            Some(PathMatch::Template(
                Template::parse("/items/new").expect("t"),
            )), // 3
            Some(PathMatch::Regex(
                full_match_regex("/v[0-9]/.*").expect("re"),
            )), // 4
            None,                                    // 5
            Some(PathMatch::Prefix("/api/v2/".into())), // 6
            Some(PathMatch::Template(
                Template::parse("/items/{sku}").expect("t"),
            )), // 7
            Some(PathMatch::Exact("/a".into())),     // 8
        ]
    }

    #[test]
    fn finds_every_candidate_in_order() {
        let p = paths();
        let index = PathIndex::build(p.iter().map(Option::as_ref));
        let cases: Vec<(&str, Vec<usize>)> = vec![
            ("/a", vec![0, 5, 8]),
            ("/api/v2/x", vec![1, 5, 6]),
            ("/items/new", vec![2, 3, 5, 7]),
            ("/items/7", vec![2, 5, 7]),
            ("/v1/x", vec![4, 5]),
            ("/nothing", vec![5]),
        ];
        for (path, want) in cases {
            assert_eq!(index.candidates(path).to_vec(), want, "{path}");
        }
    }

    #[test]
    fn candidates_agree_with_a_linear_scan() {
        let p = paths();
        let index = PathIndex::build(p.iter().map(Option::as_ref));
        for path in [
            "/a",
            "/a/",
            "/api/",
            "/api",
            "/items/",
            "/items/1/2",
            "/v9/",
            "/x",
        ] {
            let linear: Vec<usize> = p
                .iter()
                .enumerate()
                .filter(|(_, m)| m.as_ref().is_none_or(|m| m.matches(path)))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(index.candidates(path).to_vec(), linear, "{path}");
        }
    }
}
