//! Structural JSON comparison: a walk over both documents that records each difference
//! with its concrete path (`$.items[3].price`) and its folded field (`$.items[*].price`).

use super::rules::Rules;
use super::{short, Difference, Kind};
use serde_json::Value;

/// Every difference between two JSON documents under `rules`.
pub fn diff(primary: &Value, shadow: &Value, rules: &Rules, out: &mut Vec<Difference>) {
    let mut walk = Walk { rules, out };
    walk.value(primary, shadow, &mut Path::root());
}

/// The concrete path and the folded one, built together as the walk descends.
struct Path {
    concrete: String,
    folded: String,
}

impl Path {
    fn root() -> Self {
        Path {
            concrete: "$".into(),
            folded: "$".into(),
        }
    }

    fn with_key<T>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let (c, d) = (self.concrete.len(), self.folded.len());
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        for s in [&mut self.concrete, &mut self.folded] {
            if plain {
                s.push('.');
                s.push_str(key);
            } else {
                // Quoted like a JSON string: `$["a b"]`.
                s.push('[');
                s.push_str(&Value::String(key.to_string()).to_string());
                s.push(']');
            }
        }
        let r = f(self);
        self.concrete.truncate(c);
        self.folded.truncate(d);
        r
    }

    fn with_index<T>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        let (c, d) = (self.concrete.len(), self.folded.len());
        {
            use std::fmt::Write;
            let _ = write!(self.concrete, "[{i}]");
        }
        self.folded.push_str("[*]");
        let r = f(self);
        self.concrete.truncate(c);
        self.folded.truncate(d);
        r
    }
}

struct Walk<'a> {
    rules: &'a Rules,
    out: &'a mut Vec<Difference>,
}

impl Walk<'_> {
    fn record(&mut self, path: &Path, kind: Kind, a: Option<&Value>, b: Option<&Value>) {
        self.out.push(Difference {
            path: path.concrete.clone(),
            field: path.folded.clone(),
            kind,
            primary: a.map(|v| short(&v.to_string())),
            shadow: b.map(|v| short(&v.to_string())),
        });
    }

    fn value(&mut self, a: &Value, b: &Value, path: &mut Path) {
        if self.rules.ignores(&path.folded) {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => self.object(x, y, path),
            (Value::Array(x), Value::Array(y)) => self.array(x, y, path),
            (Value::Number(x), Value::Number(y)) => {
                let equal = match (x.as_f64(), y.as_f64()) {
                    (Some(p), Some(q)) => self.rules.tolerance.equal(p, q),
                    _ => x == y,
                };
                if !equal {
                    self.record(path, Kind::Value, Some(a), Some(b));
                }
            }
            (Value::String(_), Value::String(_)) | (Value::Bool(_), Value::Bool(_)) => {
                if a != b {
                    self.record(path, Kind::Value, Some(a), Some(b));
                }
            }
            (Value::Null, Value::Null) => {}
            _ => self.record(path, Kind::Type, Some(a), Some(b)),
        }
    }

    fn object(
        &mut self,
        x: &serde_json::Map<String, Value>,
        y: &serde_json::Map<String, Value>,
        path: &mut Path,
    ) {
        let lowered;
        let (x, y) = if self.rules.folds_keys(&path.folded) {
            // Matched, and named in differences, by their lower-case keys.
            lowered = (lower_keys(x), lower_keys(y));
            (&lowered.0, &lowered.1)
        } else {
            (x, y)
        };
        let nulls_as_missing = self.rules.null_equals_missing;
        for (k, va) in x {
            path.with_key(k, |p| match y.get(k) {
                Some(vb) => self.value(va, vb, p),
                None if nulls_as_missing && va.is_null() => {}
                None if self.rules.ignores(&p.folded) => {}
                None => self.record(p, Kind::Missing, Some(va), None),
            });
        }
        for (k, vb) in y {
            if x.contains_key(k) || (nulls_as_missing && vb.is_null()) {
                continue;
            }
            path.with_key(k, |p| {
                if !self.rules.ignores(&p.folded) {
                    self.record(p, Kind::Extra, None, Some(vb));
                }
            });
        }
    }

    fn array(&mut self, x: &[Value], y: &[Value], path: &mut Path) {
        if let Some(key) = self.rules.unordered_by.get(&path.folded).cloned() {
            return self.keyed(x, y, &key, path);
        }
        if self.rules.unordered.contains(&path.folded) {
            return self.multiset(x, y, path);
        }
        if x.len() == y.len() && reordered(x, y) {
            // Same elements, another order: one difference, not one per index.
            let (a, b) = (Value::Array(x.to_vec()), Value::Array(y.to_vec()));
            return self.record(path, Kind::Order, Some(&a), Some(&b));
        }
        if x.len() != y.len() {
            self.record(
                path,
                Kind::Length,
                Some(&Value::from(x.len())),
                Some(&Value::from(y.len())),
            );
        }
        for (i, (va, vb)) in x.iter().zip(y).enumerate() {
            path.with_index(i, |p| self.value(va, vb, p));
        }
    }

    /// Elements matched by a key field; each unmatched one is missing or extra. Elements
    /// without the key have nothing to be matched by but themselves: they are compared
    /// among themselves as a multiset.
    fn keyed(&mut self, x: &[Value], y: &[Value], key: &str, path: &mut Path) {
        let by_key = Buckets::new(y, |v| v.get(key));
        let x_keys = Buckets::new(x, |v| v.get(key));
        let mut keyless = Buckets::new(y, |v| v.get(key).is_none().then_some(v));
        for (i, va) in x.iter().enumerate() {
            let matched = match va.get(key) {
                Some(k) => by_key.first(k, y, |v| v.get(key)),
                None => keyless.take(va, y),
            };
            path.with_index(i, |p| match matched {
                Some(j) => self.value(va, &y[j], p),
                None => self.record(p, Kind::Missing, Some(va), None),
            });
        }
        let keyless_left = keyless.left();
        for (j, vb) in y.iter().enumerate() {
            let in_x = match vb.get(key) {
                Some(k) => x_keys.first(k, x, |v| v.get(key)).is_some(),
                None => keyless_left.binary_search(&j).is_err(),
            };
            if !in_x {
                path.with_index(j, |p| self.record(p, Kind::Extra, None, Some(vb)));
            }
        }
    }

    /// Compared as multisets: what one side has more of is missing or extra.
    fn multiset(&mut self, x: &[Value], y: &[Value], path: &mut Path) {
        let mut unmatched = Buckets::new(y, Some);
        for (i, va) in x.iter().enumerate() {
            if unmatched.take(va, y).is_none() {
                path.with_index(i, |p| self.record(p, Kind::Missing, Some(va), None));
            }
        }
        for j in unmatched.left() {
            path.with_index(j, |p| self.record(p, Kind::Extra, None, Some(&y[j])));
        }
    }
}

/// An object with its keys in lower case (`compare.case_insensitive_keys`). Of keys
/// that differ only in case on one side, the last wins.
fn lower_keys(map: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    map.iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect()
}

/// Indices of a slice's elements grouped by the hash of a value drawn from each (the
/// element itself, or its key field): finding an equal one costs a hash, not a scan.
struct Buckets {
    by_hash: std::collections::HashMap<u64, Vec<usize>>,
}

impl Buckets {
    fn new<'v>(items: &'v [Value], probe: impl Fn(&'v Value) -> Option<&'v Value>) -> Self {
        let mut by_hash: std::collections::HashMap<u64, Vec<usize>> = Default::default();
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = probe(item) {
                by_hash.entry(hash_of(v)).or_default().push(i);
            }
        }
        // Popped from the end: reversed so the first element is taken first.
        by_hash.values_mut().for_each(|v| v.reverse());
        Buckets { by_hash }
    }

    /// The first element whose probed value equals `want`, in `items`' order.
    fn first<'v>(
        &self,
        want: &Value,
        items: &'v [Value],
        probe: impl Fn(&'v Value) -> Option<&'v Value>,
    ) -> Option<usize> {
        let bucket = self.by_hash.get(&hash_of(want))?;
        bucket
            .iter()
            .rev()
            .copied()
            .find(|&j| probe(&items[j]) == Some(want))
    }

    /// Take (remove) an element equal to `want`.
    fn take(&mut self, want: &Value, items: &[Value]) -> Option<usize> {
        let bucket = self.by_hash.get_mut(&hash_of(want))?;
        let pos = bucket.iter().rposition(|&j| &items[j] == want)?;
        Some(bucket.remove(pos))
    }

    /// What was never taken, in order.
    fn left(self) -> Vec<usize> {
        let mut rest: Vec<usize> = self.by_hash.into_values().flatten().collect();
        rest.sort_unstable();
        rest
    }
}

/// The same elements in another order? Positions that agree cancel out of a multiset
/// comparison, so only the ones that differ are hashed; fewer than two cannot be a
/// reordering. Most differing arrays differ in a value or two, and cost one pass.
fn reordered(x: &[Value], y: &[Value]) -> bool {
    let differing: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
    if differing.len() < 2 {
        return false;
    }
    // Pair the differing elements of both sides by hash, then confirm each pair exactly,
    // so a hash collision cannot invent a reordering.
    let sorted = |v: &[Value]| {
        let mut h: Vec<(u64, usize)> = differing.iter().map(|&i| (hash_of(&v[i]), i)).collect();
        h.sort_unstable();
        h
    };
    let (a, b) = (sorted(x), sorted(y));
    a.iter()
        .zip(&b)
        .all(|(&(ha, i), &(hb, j))| ha == hb && x[i] == y[j])
}

/// A structural hash of a value, walked directly: no serialisation.
fn hash_of(v: &Value) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    feed(&mut h, v);
    h.digest()
}

fn feed(h: &mut xxhash_rust::xxh3::Xxh3, v: &Value) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.update(b"#");
            match n.as_f64() {
                Some(f) => h.update(&f.to_bits().to_le_bytes()),
                None => h.update(n.to_string().as_bytes()),
            }
        }
        Value::String(s) => {
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        Value::Array(items) => {
            h.update(b"[");
            items.iter().for_each(|i| feed(h, i));
            h.update(b"]");
        }
        Value::Object(map) => {
            h.update(b"{");
            for (k, v) in map {
                h.update(&(k.len() as u64).to_le_bytes());
                h.update(k.as_bytes());
                feed(h, v);
            }
            h.update(b"}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(a: &Value, b: &Value, rules: &Rules) -> Vec<(String, Kind)> {
        let mut out = Vec::new();
        diff(a, b, rules, &mut out);
        out.into_iter().map(|d| (d.path, d.kind)).collect()
    }

    #[test]
    fn case_insensitive_keys_match_keys_of_the_named_objects_only() {
        let a = json!({"headers": {"Content-Type": "json", "X-Id": "1"}, "Meta": {"A": 1}});
        let b = json!({"headers": {"content-type": "json", "x-id": "2"}, "meta": {"a": 1}});
        // Without the rule, every key that differs in case is missing on one side and
        // extra on the other.
        assert_eq!(fields(&a, &b, &Rules::default()).len(), 6);
        let rules = Rules::default()
            .with_case_insensitive_keys(&["$.headers".to_string()])
            .unwrap();
        let found = fields(&a, &b, &rules);
        // The headers' keys match; a real difference under them is still found, named in
        // lower case; the top-level keys (not named by the rule) still differ.
        assert!(
            found.contains(&("$.headers.x-id".to_string(), Kind::Value)),
            "{found:?}"
        );
        assert!(
            !found
                .iter()
                .any(|(p, _)| p.starts_with("$.headers.content")),
            "{found:?}"
        );
        assert!(
            found.contains(&("$.Meta".to_string(), Kind::Missing)),
            "{found:?}"
        );
        assert!(
            found.contains(&("$.meta".to_string(), Kind::Extra)),
            "{found:?}"
        );
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn case_insensitive_keys_take_globs() {
        let a = json!({"items": [{"SKU": "a"}, {"SKU": "b"}]});
        let b = json!({"items": [{"sku": "a"}, {"sku": "b"}]});
        let rules = Rules::default()
            .with_case_insensitive_keys(&["$.items[*]".to_string()])
            .unwrap();
        assert!(fields(&a, &b, &rules).is_empty());
        let root = Rules::default()
            .with_case_insensitive_keys(&["$.**".to_string()])
            .unwrap();
        assert!(
            fields(&a, &b, &root).is_empty(),
            "every object below the root"
        );
    }
}
