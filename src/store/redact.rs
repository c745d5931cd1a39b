//! Redaction before anything is stored. With no configuration: headers, query parameters,
//! JSON keys and form fields whose names mark credentials, and credential-looking values
//! anywhere in text (secrets.rs); with configuration, further names and JSON paths, and
//! exempt fields. A secret becomes a short hash, so equal values stay recognisably equal.
//! Comparison runs on the unredacted responses: redaction never hides a difference.

use super::secrets::{is_secret_header, is_secret_name, normalize_name, scrub};
use crate::compare::rules::glob_to_regex;
use crate::compare::Difference;
use http::HeaderMap;
use regex::RegexSet;
use serde_json::Value;

/// `redacted:` and the first 8 hex digits of the value's hash.
pub fn mask(value: &str) -> String {
    format!(
        "redacted:{:08x}",
        xxhash_rust::xxh3::xxh3_64(value.as_bytes()) >> 32
    )
}

/// What to redact beyond the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactRules {
    /// Field paths (`$.user.ssn`, `$.items[*].iban`) always redacted.
    pub paths: Vec<String>,
    /// Further secret names (JSON keys, form fields, query parameters, headers).
    pub names: Vec<String>,
    /// Field paths never redacted by name (`$.session`, `header.x-session-id`,
    /// `query.token`); credential-looking values inside them still are.
    pub exempt: Vec<String>,
}

/// Redacts samples for storage.
pub struct Redactor {
    paths: Option<RegexSet>,
    exempt: Option<RegexSet>,
    names: Vec<String>,
}

fn set(globs: &[String]) -> Option<RegexSet> {
    let patterns: Vec<String> = globs.iter().map(|g| glob_to_regex(g)).collect();
    (!patterns.is_empty())
        .then(|| RegexSet::new(&patterns).ok())
        .flatten()
}

impl Redactor {
    pub fn new(rules: &RedactRules) -> Self {
        Redactor {
            paths: set(&rules.paths),
            exempt: set(&rules.exempt),
            names: rules.names.iter().map(|n| normalize_name(n)).collect(),
        }
    }

    fn exempt(&self, field: &str) -> bool {
        self.exempt.as_ref().is_some_and(|e| e.is_match(field))
    }

    /// Whether the field at `path`, named `name` (its last key), is a secret.
    fn secret_field(&self, path: &str, name: &str) -> bool {
        if self.exempt(path) {
            return false;
        }
        self.paths.as_ref().is_some_and(|p| p.is_match(path)) || is_secret_name(name, &self.names)
    }

    fn secret_header(&self, name: &str) -> bool {
        is_secret_header(name, &self.names) && !self.exempt(&format!("header.{name}"))
    }

    /// Text with credential-looking values masked.
    fn text(&self, text: &str) -> String {
        scrub(text, &self.names, mask).into_owned()
    }

    /// Headers as (name, value) pairs, credentials masked.
    pub fn headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes());
                let value = if self.secret_header(k.as_str()) {
                    mask(&value)
                } else {
                    self.text(&value)
                };
                (k.as_str().to_string(), value)
            })
            .collect()
    }

    /// A request target with the values of secret query parameters masked.
    pub fn target(&self, path_and_query: &str) -> String {
        let Some((path, query)) = path_and_query.split_once('?') else {
            return self.text(path_and_query);
        };
        let pairs = query.split('&').map(|pair| {
            let (raw_name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name: String = form_urlencoded::parse(raw_name.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            if self.exempt(&format!("query.{name}")) {
                pair.to_string()
            } else if is_secret_name(&name, &self.names) {
                format!("{raw_name}={}", mask(value))
            } else {
                self.text(pair)
            }
        });
        format!(
            "{}?{}",
            self.text(path),
            pairs.collect::<Vec<_>>().join("&")
        )
    }

    /// A body for storage: JSON and forms with secret fields masked, text with
    /// credential-looking values masked, binary as a note of its size.
    pub fn body(&self, bytes: &[u8], content_type: Option<&str>) -> String {
        if let Ok(mut v) = serde_json::from_slice::<Value>(bytes) {
            self.walk(&mut v, &mut "$".to_string());
            return v.to_string();
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return format!("({} bytes of binary)", bytes.len());
        };
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("application/x-www-form-urlencoded") => self.form(text),
            Some(m) if m.ends_with("xml") => self.xml(text).unwrap_or_else(|| self.text(text)),
            Some("text/html") => self.text(&self.html_inputs(text)),
            // Multipart parts are found by their names in the text.
            _ => self.text(text),
        }
    }

    /// XML with the text of secret-named elements and the values of secret-named
    /// attributes masked (`<Password>`, `<wsse:BinarySecurityToken>`, `api_key="..."`);
    /// None when it does not read as XML (then it is scrubbed as text).
    fn xml(&self, text: &str) -> Option<String> {
        use quick_xml::events::{BytesText, Event};
        let mut reader = quick_xml::Reader::from_str(text);
        let mut writer = quick_xml::Writer::new(Vec::new());
        // For each open element: is its content secret?
        let mut secret: Vec<bool> = Vec::new();
        loop {
            let event = reader.read_event().ok()?;
            let event = match event {
                Event::Start(e) => {
                    let inside = secret.last().copied().unwrap_or(false);
                    secret.push(inside || self.secret_xml_name(e.local_name().as_ref()));
                    Event::Start(self.xml_attributes(&e)?)
                }
                Event::Empty(e) => Event::Empty(self.xml_attributes(&e)?),
                Event::End(e) => {
                    secret.pop();
                    Event::End(e)
                }
                Event::Text(t) => {
                    let raw = t.xml_content().ok()?;
                    let clean = if secret.last().copied().unwrap_or(false) && !raw.trim().is_empty()
                    {
                        mask(&raw)
                    } else {
                        self.text(&raw)
                    };
                    Event::Text(BytesText::new(&clean).into_owned())
                }
                Event::CData(t) if secret.last().copied().unwrap_or(false) => {
                    let raw = t.decode().ok()?;
                    Event::Text(BytesText::new(&mask(&raw)).into_owned())
                }
                Event::Eof => break,
                other => other,
            };
            writer.write_event(event).ok()?;
        }
        String::from_utf8(writer.into_inner()).ok()
    }

    fn secret_xml_name(&self, local: &[u8]) -> bool {
        is_secret_name(&String::from_utf8_lossy(local), &self.names)
    }

    /// A start tag with its secret-named attributes' values masked.
    fn xml_attributes(
        &self,
        start: &quick_xml::events::BytesStart<'_>,
    ) -> Option<quick_xml::events::BytesStart<'static>> {
        let mut out = start.to_owned();
        out.clear_attributes();
        for attribute in start.attributes() {
            let attribute = attribute.ok()?;
            let value = attribute.unescape_value().ok()?;
            let name = attribute.key.local_name();
            let value = if attribute.key.as_namespace_binding().is_none()
                && self.secret_xml_name(name.as_ref())
            {
                mask(&value)
            } else {
                self.text(&value)
            };
            out.push_attribute((attribute.key.as_ref(), value.as_bytes()));
        }
        Some(out)
    }

    /// HTML with the value of each `<input>` whose name marks a secret masked (a CSRF
    /// token in a hidden field, a prefilled password).
    fn html_inputs(&self, text: &str) -> String {
        static INPUT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r#"(?is)<input\b[^>]*>"#).expect("input regex")
        });
        static NAME: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r#"(?i)\bname\s*=\s*["']?([^"'\s>]+)"#).expect("name regex")
        });
        static VALUE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r#"(?i)(\bvalue\s*=\s*)("[^"]*"|'[^']*'|[^\s>]+)"#)
                .expect("value regex")
        });
        INPUT
            .replace_all(text, |c: &regex::Captures<'_>| {
                let tag = &c[0];
                let secret = NAME
                    .captures(tag)
                    .is_some_and(|n| is_secret_name(&n[1], &self.names));
                if !secret {
                    return tag.to_string();
                }
                VALUE
                    .replace(tag, |v: &regex::Captures<'_>| {
                        let raw = v[2].trim_matches(['"', '\'']);
                        format!("{}\"{}\"", &v[1], mask(raw))
                    })
                    .into_owned()
            })
            .into_owned()
    }

    fn form(&self, text: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(text.as_bytes()) {
            let path = format!("$.{name}");
            let value = if self.secret_field(&path, &name) {
                mask(&value)
            } else {
                self.text(&value)
            };
            out.append_pair(&name, &value);
        }
        out.finish()
    }

    fn walk(&self, v: &mut Value, path: &mut String) {
        let len = path.len();
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    path.push('.');
                    path.push_str(k);
                    if self.secret_field(path, k) {
                        *child = Value::String(mask(&child.to_string()));
                    } else {
                        self.walk(child, path);
                    }
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for child in items.iter_mut() {
                    path.push_str("[*]");
                    if self.paths.as_ref().is_some_and(|p| p.is_match(path)) && !self.exempt(path) {
                        *child = Value::String(mask(&child.to_string()));
                    } else {
                        self.walk(child, path);
                    }
                    path.truncate(len);
                }
            }
            Value::String(s) => {
                // JSON inside a string (an echo of a request body) is JSON all the same.
                let nested = s.trim_start().starts_with(['{', '['])
                    && serde_json::from_str::<Value>(s).is_ok_and(|mut inner| {
                        self.walk(&mut inner, path);
                        *s = inner.to_string();
                        true
                    });
                if !nested {
                    if let std::borrow::Cow::Owned(clean) = scrub(s, &self.names, mask) {
                        *s = clean;
                    }
                }
            }
            _ => {}
        }
    }

    /// Differences with the values of secret fields masked, and credential-looking
    /// values masked in all the others.
    pub fn differences(&self, diffs: &[Difference]) -> Vec<Difference> {
        diffs
            .iter()
            .map(|d| {
                let secret = match d.field.strip_prefix("header.") {
                    Some(h) => self.secret_header(h),
                    None => self.secret_field(&d.field, last_key(&d.field)),
                };
                let mut d = d.clone();
                if secret {
                    d.primary = d.primary.as_deref().map(mask);
                    d.shadow = d.shadow.as_deref().map(mask);
                } else {
                    d.primary = d.primary.as_deref().map(|v| self.text(v));
                    d.shadow = d.shadow.as_deref().map(|v| self.text(v));
                }
                d
            })
            .collect()
    }
}

/// `password` of `$.user.password`, `token` of `$.items[*].token`, of
/// `/Login/Password` and of `/Login/@token`.
fn last_key(path: &str) -> &str {
    let trimmed = path.trim_end_matches("[*]");
    trimmed
        .rsplit(['.', '[', '/', '@'])
        .next()
        .unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn redactor(paths: &[&str], names: &[&str], exempt: &[&str]) -> Redactor {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Redactor::new(&RedactRules {
            paths: own(paths),
            names: own(names),
            exempt: own(exempt),
        })
    }

    #[test]
    fn credentials_and_paths_are_masked() {
        let r = redactor(&["$.email", "$.users[*].phone"], &[], &[]);
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        h.insert("cookie", HeaderValue::from_static("sid=abc"));
        h.insert("x-auth-token", HeaderValue::from_static("tok123"));
        h.insert("accept", HeaderValue::from_static("json"));
        h.insert(
            "x-echo",
            HeaderValue::from_static("Bearer abcdefghijklmnop"),
        );
        let stored = format!("{:?}", r.headers(&h));
        for secret in ["s3cret", "sid=abc", "tok123", "abcdefghijklmnop"] {
            assert!(!stored.contains(secret), "{stored}");
        }
        assert!(stored.contains("json"));
        let body = r.body(
            br#"{"email":"a@b.c","users":[{"phone":"555","name":"x"}]}"#,
            None,
        );
        assert!(!body.contains("a@b.c") && !body.contains("555"), "{body}");
        assert!(body.contains("\"name\":\"x\""));
        assert_eq!(mask("a"), mask("a"));
    }

    #[test]
    fn secret_names_anywhere_in_json_by_default() {
        let r = redactor(&[], &["ssn"], &["$.meta.session"]);
        let body = r.body(
            br#"{"user":{"Password":"hunter2","api-key":"k-123","SSN":"078-05-1120","name":"Ann"},
                "auth":{"access_token":{"value":"at-1"}},"meta":{"session":"visible"},
                "note":"paid with 4111 1111 1111 1111"}"#,
            None,
        );
        for secret in ["hunter2", "k-123", "078-05-1120", "at-1", "4111 1111"] {
            assert!(!body.contains(secret), "{secret} in {body}");
        }
        assert!(body.contains("Ann") && body.contains("visible"), "{body}");
    }

    #[test]
    fn xml_elements_and_attributes_and_html_inputs_named_as_secrets() {
        let r = redactor(&[], &[], &[]);
        let soap = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><wsse:Security xmlns:wsse="urn:x"><wsse:UsernameToken><wsse:Username>ann</wsse:Username><wsse:Password>hunter2</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header><s:Body><Login api_key="k-123" user="ann"><SessionToken><![CDATA[s3cr3t]]></SessionToken></Login></s:Body></s:Envelope>"#;
        let stored = r.body(soap.as_bytes(), Some("application/soap+xml; charset=utf-8"));
        for secret in ["hunter2", "k-123", "s3cr3t"] {
            assert!(!stored.contains(secret), "{secret} in {stored}");
        }
        assert!(stored.contains("user=\"ann\""), "{stored}");
        assert!(
            crate::compare::xml::parse(stored.as_bytes()).is_ok(),
            "still XML: {stored}"
        );
        let page = r#"<form><input type="hidden" name="csrf_token" value="abc123xyz"><input name="q" value="shoes"></form>"#;
        let stored = r.body(page.as_bytes(), Some("text/html"));
        assert!(!stored.contains("abc123xyz"), "{stored}");
        assert!(stored.contains("value=\"shoes\""), "{stored}");
        let diffs = r.differences(&[Difference {
            path: "/Login/Password".into(),
            field: "/Login/Password".into(),
            kind: crate::compare::Kind::Value,
            primary: Some("hunter2".into()),
            shadow: Some("hunter3".into()),
        }]);
        assert!(!diffs[0]
            .primary
            .as_deref()
            .unwrap_or("")
            .contains("hunter2"));
    }

    #[test]
    fn forms_queries_and_text() {
        let r = redactor(&[], &[], &[]);
        let form = r.body(
            b"user=ann&password=hunter2&client_secret=cs-1",
            Some("application/x-www-form-urlencoded"),
        );
        assert!(
            !form.contains("hunter2") && !form.contains("cs-1"),
            "{form}"
        );
        assert!(form.contains("user=ann"), "{form}");
        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nann\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--XyZ--\r\n";
        let stored = r.body(
            multipart.as_bytes(),
            Some("multipart/form-data; boundary=XyZ"),
        );
        assert!(!stored.contains("hunter2"), "{stored}");
        assert!(stored.contains("ann"), "{stored}");
        let target = r.target("/login?user=ann&token=t0k-1&API_KEY=k&page=2");
        assert!(
            !target.contains("t0k-1") && !target.contains("=k&"),
            "{target}"
        );
        assert!(
            target.contains("user=ann") && target.contains("page=2"),
            "{target}"
        );
        let exempt = redactor(&[], &[], &["query.token"]);
        assert!(exempt.target("/x?token=visible").contains("visible"));
        let text = r.body(
            b"Authorization: Bearer abcdefghijklmnop",
            Some("text/plain"),
        );
        assert!(!text.contains("abcdefghijklmnop"), "{text}");
    }

    #[test]
    fn differences_of_secret_fields() {
        let r = redactor(&[], &[], &[]);
        let diff = |field: &str, a: &str| Difference {
            path: field.into(),
            field: field.into(),
            kind: crate::compare::Kind::Value,
            primary: Some(a.into()),
            shadow: Some(format!("{a}-2")),
        };
        let out = r.differences(&[
            diff("$.user.password", "hunter2"),
            diff("header.x-session-id", "sess-1"),
            diff("$.items[*].token", "tk"),
            diff("$.note", "Bearer abcdefghijklmnop"),
            diff("$.name", "Ann"),
        ]);
        let text = format!("{out:?}");
        for secret in ["hunter2", "sess-1", "\"tk", "abcdefghijklmnop"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("Ann"));
    }
}
