//! Structural comparison of markup trees (XML and HTML, parsed by xml.rs and html.rs):
//! elements are matched like JSON objects whose keys are child names and whose values are
//! the runs of same-named children, so the JSON rules carry over: ignore, unordered,
//! keyed, tolerance, normalise, case-insensitive names, allowed additions. Attribute
//! order, whitespace-only text and comments are never differences.

use super::rules::Rules;
use super::{short, Difference, Kind};
use std::collections::HashMap;

/// An element, as both parsers produce it. Two elements are equal when everything but
/// their positions is: the same element moved is the same element.
#[derive(Debug, Clone, Default)]
pub struct Element {
    /// What the element is matched by: its namespace URI and local name in XML
    /// (`{uri}name`), its tag in HTML.
    pub key: String,
    /// How a path names it: the local name (XML), or the tag with `#id` and `.class`es
    /// (HTML).
    pub label: String,
    /// Its place among the siblings of its name in the source (1-based), for paths that
    /// a browser or an XPath engine finds again.
    pub position: usize,
    /// Attributes sorted by key; namespace declarations are not attributes here.
    pub attributes: Vec<Attribute>,
    /// The element's own text, its text children joined and trimmed (HTML: whitespace
    /// runs collapsed).
    pub text: String,
    pub children: Vec<Element>,
}

impl PartialEq for Element {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.label == other.label
            && self.attributes == other.attributes
            && self.text == other.text
            && self.children == other.children
    }
}

impl Eq for Element {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `{uri}name` for a namespaced attribute, the name otherwise.
    pub key: String,
    /// The name as paths show it.
    pub name: String,
    pub value: String,
}

/// How paths are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// XPath-like: `/catalog/book[2]/price`, `/catalog/book[2]/@id`.
    Xml,
    /// CSS-like: `html > body > ul > li:nth-of-type(2)`, `... > input@value`.
    Html,
}

/// Every difference between two documents under `rules`.
pub fn diff(a: &Element, b: &Element, syntax: Syntax, rules: &Rules, out: &mut Vec<Difference>) {
    let mut walk = Walk { rules, syntax, out };
    let mut path = Path::default();
    if a.key != b.key {
        // Another root element: another document.
        let (root_a, root_b) = (root_segment(a, syntax), root_segment(b, syntax));
        walk.out.push(Difference {
            path: root_a.clone(),
            field: root_a,
            kind: Kind::Value,
            primary: Some(short(&render(a))),
            shadow: Some(short(&format!("{root_b}: {}", render(b)))),
        });
        return;
    }
    let root = root_segment(a, syntax);
    path.concrete.push_str(&root);
    path.folded.push_str(&root);
    walk.element(a, b, &mut path);
}

fn root_segment(e: &Element, syntax: Syntax) -> String {
    match syntax {
        Syntax::Xml => format!("/{}", e.label),
        Syntax::Html => e.label.clone(),
    }
}

#[derive(Default)]
struct Path {
    concrete: String,
    folded: String,
}

impl Path {
    /// Descend into a child (indexed when its name is not unique on either side) or an
    /// attribute, run `f`, and come back.
    fn with<T>(&mut self, concrete: &str, folded: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let (c, d) = (self.concrete.len(), self.folded.len());
        self.concrete.push_str(concrete);
        self.folded.push_str(folded);
        let r = f(self);
        self.concrete.truncate(c);
        self.folded.truncate(d);
        r
    }
}

struct Walk<'a> {
    rules: &'a Rules,
    syntax: Syntax,
    out: &'a mut Vec<Difference>,
}

impl Walk<'_> {
    fn record(&mut self, path: &Path, kind: Kind, a: Option<String>, b: Option<String>) {
        self.out.push(Difference {
            path: path.concrete.clone(),
            field: path.folded.clone(),
            kind,
            primary: a.map(|v| short(&v)),
            shadow: b.map(|v| short(&v)),
        });
    }

    /// The path segment of a child: (concrete, folded).
    fn segment(&self, e: &Element, indexed: bool) -> (String, String) {
        match self.syntax {
            Syntax::Xml if indexed => (
                format!("/{}[{}]", e.label, e.position),
                format!("/{}", e.label),
            ),
            Syntax::Xml => (format!("/{}", e.label), format!("/{}", e.label)),
            Syntax::Html if indexed => (
                format!(" > {}:nth-of-type({})", e.label, e.position),
                format!(" > {}", e.label),
            ),
            Syntax::Html => (format!(" > {}", e.label), format!(" > {}", e.label)),
        }
    }

    fn attribute_segment(&self, name: &str) -> String {
        match self.syntax {
            Syntax::Xml => format!("/@{name}"),
            Syntax::Html => format!("@{name}"),
        }
    }

    /// Two texts (or attribute values) equal under the rules: normalisers, and numeric
    /// tolerance when one is set.
    fn same_text(&self, a: &str, b: &str) -> bool {
        if a == b {
            return true;
        }
        let t = self.rules.tolerance;
        if t.absolute > 0.0 || t.relative > 0.0 {
            if let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
                if t.equal(x, y) {
                    return true;
                }
            }
        }
        !self.rules.normalizers.is_empty() && self.rules.normalize(a) == self.rules.normalize(b)
    }

    fn element(&mut self, a: &Element, b: &Element, path: &mut Path) {
        if self.rules.ignores(&path.folded) {
            return;
        }
        let fold = self.syntax == Syntax::Xml && self.rules.folds_keys(&path.folded);
        self.attributes(a, b, fold, path);
        if !self.same_text(&a.text, &b.text) {
            self.record(
                path,
                Kind::Value,
                Some(a.text.clone()),
                Some(b.text.clone()),
            );
        }
        self.children(a, b, fold, path);
    }

    fn attributes(&mut self, a: &Element, b: &Element, fold: bool, path: &mut Path) {
        let key = |at: &Attribute| {
            if fold {
                at.key.to_lowercase()
            } else {
                at.key.clone()
            }
        };
        let theirs: HashMap<String, &Attribute> =
            b.attributes.iter().map(|x| (key(x), x)).collect();
        let ours: HashMap<String, &Attribute> = a.attributes.iter().map(|x| (key(x), x)).collect();
        for x in &a.attributes {
            let seg = self.attribute_segment(&x.name);
            path.with(&seg, &seg, |p| {
                if self.rules.ignores(&p.folded) {
                    return;
                }
                match theirs.get(&key(x)) {
                    Some(y) if self.same_text(&x.value, &y.value) => {}
                    Some(y) => {
                        self.record(p, Kind::Value, Some(x.value.clone()), Some(y.value.clone()))
                    }
                    None => self.record(p, Kind::Missing, Some(x.value.clone()), None),
                }
            });
        }
        for y in &b.attributes {
            if ours.contains_key(&key(y)) {
                continue;
            }
            let seg = self.attribute_segment(&y.name);
            path.with(&seg, &seg, |p| {
                if !self.rules.ignores(&p.folded) {
                    self.record(p, Kind::Extra, None, Some(y.value.clone()));
                }
            });
        }
    }

    /// Children grouped by name, in order of first appearance; each group compared like
    /// a JSON array.
    fn children(&mut self, a: &Element, b: &Element, fold: bool, path: &mut Path) {
        let key = |e: &Element| {
            if fold {
                e.key.to_lowercase()
            } else {
                e.key.clone()
            }
        };
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, (Vec<&Element>, Vec<&Element>)> = HashMap::new();
        for (side, e) in a
            .children
            .iter()
            .map(|e| (0, e))
            .chain(b.children.iter().map(|e| (1, e)))
        {
            let k = key(e);
            let entry = groups.entry(k.clone()).or_insert_with(|| {
                order.push(k);
                (Vec::new(), Vec::new())
            });
            if side == 0 {
                entry.0.push(e);
            } else {
                entry.1.push(e);
            }
        }
        for k in order {
            let (xs, ys) = &groups[&k];
            self.group(xs, ys, path);
        }
    }

    fn group(&mut self, xs: &[&Element], ys: &[&Element], path: &mut Path) {
        let indexed = xs.len() > 1 || ys.len() > 1;
        let Some(first) = xs.first().or(ys.first()) else {
            return;
        };
        let (group_concrete, group_folded) = self.segment(first, false);
        // Rules on the run as a whole (ignored, keyed, unordered, reordered, its length)
        // decide how its elements are matched.
        let plan = path.with(&group_concrete, &group_folded, |p| {
            if self.rules.ignores(&p.folded) {
                return Plan::Settled;
            }
            if xs.is_empty() || ys.is_empty() {
                return Plan::ByPosition;
            }
            if let Some(key) = self.rules.unordered_by.get(&p.folded) {
                return Plan::ByKey(key.clone());
            }
            if self.rules.unordered.contains(&p.folded) {
                return Plan::AsMultiset;
            }
            if xs.len() == ys.len() && reordered(xs, ys) {
                let all = |v: &[&Element]| v.iter().map(|e| render(e)).collect::<String>();
                self.record(p, Kind::Order, Some(all(xs)), Some(all(ys)));
                return Plan::Settled;
            }
            if xs.len() != ys.len() {
                self.record(
                    p,
                    Kind::Length,
                    Some(xs.len().to_string()),
                    Some(ys.len().to_string()),
                );
            }
            Plan::ByPosition
        });
        match plan {
            Plan::Settled => {}
            Plan::ByKey(key) => self.keyed(xs, ys, &key, indexed, path),
            Plan::AsMultiset => self.multiset(xs, ys, indexed, path),
            Plan::ByPosition => self.pairwise(xs, ys, indexed, path),
        }
    }

    /// Same-named children matched by position; what one side has beyond the other's is
    /// missing or extra when the other side has none of the name (else the Length says it).
    fn pairwise(&mut self, xs: &[&Element], ys: &[&Element], indexed: bool, path: &mut Path) {
        for (x, y) in xs.iter().zip(ys) {
            let (c, f) = self.segment(x, indexed);
            path.with(&c, &f, |p| self.element(x, y, p));
        }
        if ys.is_empty() {
            for x in xs {
                self.lone(x, Kind::Missing, indexed, path);
            }
        }
        if xs.is_empty() {
            for y in ys {
                self.lone(y, Kind::Extra, indexed, path);
            }
        }
    }

    fn lone(&mut self, e: &Element, kind: Kind, indexed: bool, path: &mut Path) {
        let (c, f) = self.segment(e, indexed);
        path.with(&c, &f, |p| {
            if self.rules.ignores(&p.folded) {
                return;
            }
            let shown = Some(render(e));
            match kind {
                Kind::Missing => self.record(p, kind, shown, None),
                _ => self.record(p, kind, None, shown),
            }
        });
    }

    /// Matched by a key: `@id` (an attribute) or `isbn` (a child element's text).
    fn keyed(
        &mut self,
        xs: &[&Element],
        ys: &[&Element],
        key: &str,
        indexed: bool,
        path: &mut Path,
    ) {
        let key_of = |e: &Element| -> Option<String> {
            match key.strip_prefix('@') {
                Some(name) => e
                    .attributes
                    .iter()
                    .find(|a| a.name == name)
                    .map(|a| a.value.clone()),
                None => e
                    .children
                    .iter()
                    .find(|c| c.label == key)
                    .map(|c| c.text.clone()),
            }
        };
        let mut theirs: HashMap<String, Vec<usize>> = HashMap::new();
        for (j, y) in ys.iter().enumerate().rev() {
            if let Some(k) = key_of(y) {
                theirs.entry(k).or_default().push(j);
            }
        }
        let mut matched = vec![false; ys.len()];
        let mut keyless: Vec<&Element> = Vec::new();
        for x in xs {
            let Some(k) = key_of(x) else {
                keyless.push(x);
                continue;
            };
            match theirs.get_mut(&k).and_then(|v| v.pop()) {
                Some(j) => {
                    matched[j] = true;
                    let (c, f) = self.segment(x, indexed);
                    path.with(&c, &f, |p| self.element(x, ys[j], p));
                }
                None => self.lone(x, Kind::Missing, indexed, path),
            }
        }
        let rest: Vec<&Element> = ys
            .iter()
            .zip(&matched)
            .filter(|(y, m)| !**m && key_of(y).is_some())
            .map(|(y, _)| *y)
            .collect();
        for y in rest {
            self.lone(y, Kind::Extra, indexed, path);
        }
        let their_keyless: Vec<&Element> =
            ys.iter().filter(|y| key_of(y).is_none()).copied().collect();
        self.multiset(&keyless, &their_keyless, indexed, path);
    }

    /// Compared as multisets: what one side has more of is missing or extra.
    fn multiset(&mut self, xs: &[&Element], ys: &[&Element], indexed: bool, path: &mut Path) {
        let mut left = Buckets::new(ys);
        for x in xs {
            if left.take(x, ys).is_none() {
                self.lone(x, Kind::Missing, indexed, path);
            }
        }
        for j in left.rest() {
            self.lone(ys[j], Kind::Extra, indexed, path);
        }
    }
}

/// Indices of elements grouped by their hash: finding an equal one costs a hash, not a
/// scan (a run of thousands of `<item>`s is common).
struct Buckets {
    by_hash: HashMap<u64, Vec<usize>>,
}

impl Buckets {
    fn new(items: &[&Element]) -> Self {
        let mut by_hash: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, e) in items.iter().enumerate().rev() {
            by_hash.entry(hash_of(e)).or_default().push(i);
        }
        Buckets { by_hash }
    }

    /// Take (remove) the first element equal to `want`.
    fn take(&mut self, want: &Element, items: &[&Element]) -> Option<usize> {
        let bucket = self.by_hash.get_mut(&hash_of(want))?;
        let pos = bucket.iter().rposition(|&j| items[j] == want)?;
        Some(bucket.remove(pos))
    }

    /// What was never taken, in order.
    fn rest(self) -> Vec<usize> {
        let mut rest: Vec<usize> = self.by_hash.into_values().flatten().collect();
        rest.sort_unstable();
        rest
    }
}

/// A structural hash of an element, its position left out (as equality leaves it out).
fn hash_of(e: &Element) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    feed(&mut h, e);
    h.digest()
}

fn feed(h: &mut xxhash_rust::xxh3::Xxh3, e: &Element) {
    for s in [&e.key, &e.label, &e.text] {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    for a in &e.attributes {
        for s in [&a.key, &a.value] {
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    }
    h.update(&(e.children.len() as u64).to_le_bytes());
    e.children.iter().for_each(|c| feed(h, c));
}

/// How a run of same-named children is matched.
enum Plan {
    /// Ignored, or reported whole (reordered).
    Settled,
    ByPosition,
    ByKey(String),
    AsMultiset,
}

/// The same elements in another order? Positions that agree cancel out, so only the
/// ones that differ are hashed; fewer than two cannot be a reordering.
fn reordered(xs: &[&Element], ys: &[&Element]) -> bool {
    let differing: Vec<usize> = (0..xs.len()).filter(|&i| xs[i] != ys[i]).collect();
    if differing.len() < 2 {
        return false;
    }
    let sorted = |v: &[&Element]| {
        let mut h: Vec<(u64, usize)> = differing.iter().map(|&i| (hash_of(v[i]), i)).collect();
        h.sort_unstable();
        h
    };
    let (a, b) = (sorted(xs), sorted(ys));
    // Paired by hash, each pair confirmed equal: a collision cannot invent a reordering.
    a.iter()
        .zip(&b)
        .all(|(&(ha, i), &(hb, j))| ha == hb && xs[i] == ys[j])
}

/// A short rendering of an element for a difference: `<price currency="EUR">10</price>`.
pub fn render(e: &Element) -> String {
    let mut out = String::new();
    render_into(e, &mut out);
    out
}

fn render_into(e: &Element, out: &mut String) {
    // Past what a difference record shows, the rest is not worth building.
    if out.len() > 400 {
        return;
    }
    let tag = e.label.split(['#', '.']).next().unwrap_or(&e.label);
    out.push('<');
    out.push_str(tag);
    for a in &e.attributes {
        out.push_str(&format!(" {}=\"{}\"", a.name, a.value));
    }
    if e.text.is_empty() && e.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    out.push_str(&e.text);
    for c in &e.children {
        render_into(c, out);
    }
    out.push_str(&format!("</{tag}>"));
}
