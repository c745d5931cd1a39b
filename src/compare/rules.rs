//! A route's comparison rules, compiled: which fields to ignore, which arrays are
//! unordered (and by which key), numeric tolerance, null vs missing, text normalisers.

use regex::{Regex, RegexSet};
use std::collections::{HashMap, HashSet};

/// Compiled rules; the default compares everything exactly.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    ignore: Option<RegexSet>,
    /// Objects whose keys are matched regardless of case (`compare.case_insensitive_keys`).
    case_insensitive_keys: Option<RegexSet>,
    /// Objects to which the new side may add fields (`compare.allow_extra`).
    allow_extra: Option<RegexSet>,
    /// Folded array paths compared as multisets.
    pub unordered: HashSet<String>,
    /// Folded array paths whose elements are matched by a key field.
    pub unordered_by: HashMap<String, String>,
    pub tolerance: Tolerance,
    pub null_equals_missing: bool,
    /// Headers of the default ignore set to compare anyway (`etag`...).
    pub compare_headers: HashSet<String>,
    /// Applied in order to text bodies before they are compared.
    pub normalizers: Vec<(Regex, String)>,
    /// `ignore` entries that are CSS selectors: HTML elements (or one attribute of them)
    /// left out of the comparison.
    pub html_ignore: Vec<super::selector::Ignored>,
    /// The descriptor set gRPC answers are decoded with (`compare.protobuf`).
    pub protobuf: Option<super::protobuf::Protobuf>,
}

/// Numbers closer than either bound are equal.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tolerance {
    pub absolute: f64,
    pub relative: f64,
}

impl Tolerance {
    pub fn equal(&self, a: f64, b: f64) -> bool {
        if a == b {
            return true;
        }
        let diff = (a - b).abs();
        diff <= self.absolute || diff <= self.relative * a.abs().max(b.abs())
    }
}

/// Why a glob or normaliser was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

impl Rules {
    /// Compile ignore globs: `$.meta.*`, `$.items[*].updated_at`, `$..timestamp`,
    /// `header.x-*`. `*` stands for one name or index, `**` (or `..`) for any depth.
    pub fn with_ignores(mut self, globs: &[String]) -> Result<Self, RuleError> {
        self.ignore = glob_set(globs)?;
        Ok(self)
    }

    /// Objects (folded paths, as globs) whose keys match whatever their case.
    pub fn with_case_insensitive_keys(mut self, globs: &[String]) -> Result<Self, RuleError> {
        self.case_insensitive_keys = glob_set(globs)?;
        Ok(self)
    }

    /// Objects (folded paths, as globs) to which the new side may add fields.
    pub fn with_allowed_extra(mut self, globs: &[String]) -> Result<Self, RuleError> {
        self.allow_extra = glob_set(globs)?;
        Ok(self)
    }

    /// Is `d` a field the new side added to an object that may grow? `new_is_shadow`:
    /// the copy's answer is the new service's (else the served one is).
    pub fn allows_extra(&self, d: &super::Difference, new_is_shadow: bool) -> bool {
        let Some(set) = &self.allow_extra else {
            return false;
        };
        let added = if new_is_shadow {
            super::Kind::Extra
        } else {
            super::Kind::Missing
        };
        d.kind == added && parent(&d.field).is_some_and(|p| set.is_match(p))
    }

    /// Are the keys of the object at this folded path matched whatever their case?
    pub fn folds_keys(&self, field: &str) -> bool {
        self.case_insensitive_keys
            .as_ref()
            .is_some_and(|set| set.is_match(field))
    }

    pub fn with_normalizers(mut self, pairs: &[(String, String)]) -> Result<Self, RuleError> {
        for (pattern, replacement) in pairs {
            let re = Regex::new(pattern)
                .map_err(|e| RuleError(format!("normalizer {pattern:?}: {e}")))?;
            self.normalizers.push((re, replacement.clone()));
        }
        Ok(self)
    }

    /// Is this folded field path ignored?
    pub fn ignores(&self, field: &str) -> bool {
        self.ignore.as_ref().is_some_and(|set| set.is_match(field))
    }

    pub fn compares_header(&self, name: &str) -> bool {
        self.compare_headers.contains(name)
    }

    pub fn normalize<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for (re, replacement) in &self.normalizers {
            if let std::borrow::Cow::Owned(s) = re.replace_all(&out, replacement.as_str()) {
                out = std::borrow::Cow::Owned(s);
            }
        }
        out
    }
}

/// Field globs as one set; None for none.
fn glob_set(globs: &[String]) -> Result<Option<RegexSet>, RuleError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let patterns: Vec<String> = globs.iter().map(|g| glob_to_regex(g)).collect();
    RegexSet::new(&patterns)
        .map(Some)
        .map_err(|e| RuleError(e.to_string()))
}

/// The object a field is in: `$.items[*]` for `$.items[*].price`, `$` for `$["a b"]`;
/// the element of an XML or HTML field.
fn parent(field: &str) -> Option<&str> {
    if !field.starts_with('$') {
        return markup_parent(field);
    }
    let cut = if field.ends_with("\"]") {
        field.rfind("[\"")?
    } else {
        field.rfind('.')?
    };
    Some(&field[..cut])
}

/// The element or attribute an XML or HTML field is on: `/a/b` for `/a/b/c` and
/// `/a/b/@id`, `html > body` for `html > body > p` and `html > body@class`.
fn markup_parent(field: &str) -> Option<&str> {
    if field.starts_with('/') {
        return field.rfind('/').filter(|&i| i > 0).map(|i| &field[..i]);
    }
    let attribute = field.rfind('@');
    let child = field.rfind(" > ");
    match (attribute, child) {
        (Some(a), Some(c)) if a > c => Some(&field[..a]),
        (Some(a), None) => Some(&field[..a]),
        (_, Some(c)) => Some(&field[..c]),
        (None, None) => None,
    }
}

/// `$.items[*].price` matches the folded path itself; `*` is one segment, `**` or `..`
/// any number of them. XML paths (`/catalog/book/@id`) take `*`, `**` and `//`.
pub fn glob_to_regex(glob: &str) -> String {
    if glob.starts_with('/') {
        return xml_glob_to_regex(glob);
    }
    let mut out = String::from("^");
    let g = glob.replace("..", ".**.");
    let mut chars = g.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' if g_peek_is(&mut chars, "*]") => {
                chars.next();
                chars.next();
                out.push_str(r"\[\*\]");
            }
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str(r"[^.\[]*"),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    // `$.**.x` also matches `$.x`.
    out = out.replace(r"\..*\.", r"(?:\..*)?\.");
    out.push('$');
    out
}

/// `/catalog/*/price`: `*` one step, `**` any number of them, `//` any depth.
fn xml_glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut rest = glob;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("//") {
            out.push_str("/(?:.*/)?");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("**") {
            out.push_str(".*");
            rest = r;
        } else if let Some(r) = rest.strip_prefix('*') {
            out.push_str("[^/]*");
            rest = r;
        } else {
            out.push_str(&regex::escape(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
    }
    out.push('$');
    out
}

fn g_peek_is(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, want: &str) -> bool {
    let rest: String = chars.clone().take(want.len()).collect();
    rest == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_extra_lets_the_new_side_add_fields_to_the_named_objects_only() {
        use crate::compare::{Difference, Kind};
        let d = |field: &str, kind: Kind| Difference {
            path: field.replace("[*]", "[0]"),
            field: field.to_string(),
            kind,
            primary: None,
            shadow: None,
        };
        let rules = Rules::default()
            .with_allowed_extra(&["$".to_string(), "$.items[*]".to_string()])
            .unwrap();
        // The copy is the new service's: what it adds is Extra.
        assert!(rules.allows_extra(&d("$.added", Kind::Extra), true));
        assert!(rules.allows_extra(&d("$.items[*].color", Kind::Extra), true));
        assert!(rules.allows_extra(&d("$[\"a b\"]", Kind::Extra), true));
        assert!(
            !rules.allows_extra(&d("$.meta.added", Kind::Extra), true),
            "not a named object"
        );
        assert!(
            !rules.allows_extra(&d("$.added", Kind::Missing), true),
            "a missing field still differs"
        );
        assert!(
            !rules.allows_extra(&d("$.price", Kind::Value), true),
            "a changed field still differs"
        );
        // The served answer is the new service's: what it adds shows as Missing.
        assert!(rules.allows_extra(&d("$.added", Kind::Missing), false));
        assert!(!rules.allows_extra(&d("$.added", Kind::Extra), false));
        assert!(!Rules::default().allows_extra(&d("$.added", Kind::Extra), true));

        // XML and HTML fields: the element they are in (or on).
        let markup = Rules::default()
            .with_allowed_extra(&["/catalog/book".to_string(), "html > body".to_string()])
            .unwrap();
        assert!(markup.allows_extra(&d("/catalog/book/color", Kind::Extra), true));
        assert!(markup.allows_extra(&d("/catalog/book/@color", Kind::Extra), true));
        assert!(!markup.allows_extra(&d("/catalog/color", Kind::Extra), true));
        assert!(markup.allows_extra(&d("html > body > aside", Kind::Extra), true));
        assert!(markup.allows_extra(&d("html > body@class", Kind::Extra), true));
        assert!(!markup.allows_extra(&d("html > body > div > p", Kind::Extra), true));
    }

    fn ignores(glob: &str, field: &str) -> bool {
        Rules::default()
            .with_ignores(&[glob.to_string()])
            .expect("glob")
            .ignores(field)
    }

    #[test]
    fn globs() {
        let cases = [
            ("$.id", "$.id", true),
            ("$.id", "$.idx", false),
            ("$.items[*].price", "$.items[*].price", true),
            ("$.items[*].price", "$.items[*].cost", false),
            ("$.meta.*", "$.meta.generated_at", true),
            ("$.meta.*", "$.meta.a.b", false),
            ("$.meta.**", "$.meta.a.b", true),
            ("$..timestamp", "$.a[*].b.timestamp", true),
            ("$..timestamp", "$.timestamp", true),
            ("header.x-*", "header.x-served-by", true),
            ("header.x-*", "header.cache-control", false),
            ("/catalog/book/price", "/catalog/book/price", true),
            ("/catalog/book/price", "/catalog/book/priced", false),
            ("/catalog/*/price", "/catalog/book/price", true),
            ("/catalog/*/price", "/catalog/a/b/price", false),
            ("/catalog/**", "/catalog/a/b/@id", true),
            ("//@id", "/catalog/book/@id", true),
            ("//@id", "/@id", true),
            ("//price", "/catalog/book/price", true),
            ("//price", "/catalog/book/price/x", false),
        ];
        for (glob, field, want) in cases {
            assert_eq!(
                ignores(glob, field),
                want,
                "{glob} on {field}: {}",
                glob_to_regex(glob)
            );
        }
    }

    #[test]
    fn tolerance_is_absolute_or_relative() {
        let t = Tolerance {
            absolute: 0.01,
            relative: 0.0,
        };
        assert!(t.equal(19.99, 19.990000000000002));
        assert!(!t.equal(19.99, 20.01));
        let r = Tolerance {
            absolute: 0.0,
            relative: 0.01,
        };
        assert!(r.equal(1000.0, 1009.0));
        assert!(!r.equal(1000.0, 1011.0));
    }
}
