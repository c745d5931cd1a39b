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
        let seg = if !key.is_empty()
            && key
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            format!(".{key}")
        } else {
            format!("[{}]", Value::String(key.to_string()))
        };
        self.concrete.push_str(&seg);
        self.folded.push_str(&seg);
        let r = f(self);
        self.concrete.truncate(c);
        self.folded.truncate(d);
        r
    }

    fn with_index<T>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        let (c, d) = (self.concrete.len(), self.folded.len());
        self.concrete.push_str(&format!("[{i}]"));
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
        if x.len() == y.len() && x != y && same_multiset(x, y) {
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

    /// Elements matched by a key field; each unmatched one is missing or extra.
    fn keyed(&mut self, x: &[Value], y: &[Value], key: &str, path: &mut Path) {
        let key_of = |v: &Value| v.get(key).map(Value::to_string);
        for (i, va) in x.iter().enumerate() {
            let matched =
                key_of(va).and_then(|k| y.iter().find(|vb| key_of(vb).as_ref() == Some(&k)));
            path.with_index(i, |p| match matched {
                Some(vb) => self.value(va, vb, p),
                None => self.record(p, Kind::Missing, Some(va), None),
            });
        }
        for (j, vb) in y.iter().enumerate() {
            let k = key_of(vb);
            if !x.iter().any(|va| key_of(va) == k && k.is_some()) {
                path.with_index(j, |p| self.record(p, Kind::Extra, None, Some(vb)));
            }
        }
    }

    /// Compared as multisets: what one side has more of is missing or extra.
    fn multiset(&mut self, x: &[Value], y: &[Value], path: &mut Path) {
        let mut unmatched: Vec<Option<&Value>> = y.iter().map(Some).collect();
        for (i, va) in x.iter().enumerate() {
            match unmatched.iter_mut().find(|s| s.is_some_and(|vb| vb == va)) {
                Some(slot) => *slot = None,
                None => path.with_index(i, |p| self.record(p, Kind::Missing, Some(va), None)),
            }
        }
        for (j, vb) in unmatched.into_iter().enumerate() {
            if let Some(vb) = vb {
                path.with_index(j, |p| self.record(p, Kind::Extra, None, Some(vb)));
            }
        }
    }
}

fn same_multiset(x: &[Value], y: &[Value]) -> bool {
    let mut a: Vec<String> = x.iter().map(Value::to_string).collect();
    let mut b: Vec<String> = y.iter().map(Value::to_string).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}
