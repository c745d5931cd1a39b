//! Redaction before anything is stored: credentials in headers, and configured JSON
//! paths, become a short hash (equal values stay recognisably equal).

use crate::compare::rules::glob_to_regex;
use crate::compare::Difference;
use http::HeaderMap;
use regex::RegexSet;
use serde_json::Value;

/// Headers whose values are never stored.
const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// `redacted:` and the first 8 hex digits of the value's hash.
pub fn mask(value: &str) -> String {
    format!(
        "redacted:{:08x}",
        xxhash_rust::xxh3::xxh3_64(value.as_bytes()) >> 32
    )
}

/// Redacts headers and the JSON paths it was given.
pub struct Redactor {
    paths: Option<RegexSet>,
}

impl Redactor {
    pub fn new(globs: &[String]) -> Self {
        let patterns: Vec<String> = globs.iter().map(|g| glob_to_regex(g)).collect();
        Redactor {
            paths: (!patterns.is_empty())
                .then(|| RegexSet::new(&patterns).ok())
                .flatten(),
        }
    }

    fn secret_field(&self, field: &str) -> bool {
        self.paths.as_ref().is_some_and(|p| p.is_match(field))
    }

    /// Headers as (name, value) pairs, credentials masked.
    pub fn headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes());
                let value = if SECRET_HEADERS.contains(&k.as_str()) {
                    mask(&value)
                } else {
                    value.into_owned()
                };
                (k.as_str().to_string(), value)
            })
            .collect()
    }

    /// A body for storage: JSON with the configured paths masked, other text as it is,
    /// binary as a note of its size.
    pub fn body(&self, bytes: &[u8]) -> String {
        if let Ok(mut v) = serde_json::from_slice::<Value>(bytes) {
            if self.paths.is_some() {
                self.walk(&mut v, &mut "$".to_string());
            }
            return v.to_string();
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => format!("({} bytes of binary)", bytes.len()),
        }
    }

    fn walk(&self, v: &mut Value, path: &mut String) {
        if self.secret_field(path) {
            *v = Value::String(mask(&v.to_string()));
            return;
        }
        let len = path.len();
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    path.push('.');
                    path.push_str(k);
                    self.walk(child, path);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for child in items.iter_mut() {
                    path.push_str("[*]");
                    self.walk(child, path);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    /// Differences with the values of secret fields masked.
    pub fn differences(&self, diffs: &[Difference]) -> Vec<Difference> {
        diffs
            .iter()
            .map(|d| {
                let secret = self.secret_field(&d.field)
                    || d.field
                        .strip_prefix("header.")
                        .is_some_and(|h| SECRET_HEADERS.contains(&h));
                let mut d = d.clone();
                if secret {
                    d.primary = d.primary.as_deref().map(mask);
                    d.shadow = d.shadow.as_deref().map(mask);
                }
                d
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn credentials_and_paths_are_masked() {
        let r = Redactor::new(&["$.email".into(), "$.users[*].phone".into()]);
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        h.insert("cookie", HeaderValue::from_static("sid=abc"));
        h.insert("accept", HeaderValue::from_static("json"));
        let stored = format!("{:?}", r.headers(&h));
        assert!(
            !stored.contains("s3cret") && !stored.contains("sid=abc"),
            "{stored}"
        );
        assert!(stored.contains("json"));
        let body = r.body(br#"{"email":"a@b.c","users":[{"phone":"555","name":"x"}]}"#);
        assert!(!body.contains("a@b.c") && !body.contains("555"), "{body}");
        assert!(body.contains("\"name\":\"x\""));
        assert_eq!(mask("a"), mask("a"));
    }
}
