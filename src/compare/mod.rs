//! Comparing two responses: pure functions from (primary, shadow, rules) to a list of
//! differences. No I/O, no clock: everything here is unit-tested without sockets.

pub mod content;
pub mod form;
pub mod grpc;
pub mod html;
pub mod json;
pub mod markup;
pub mod noise;
pub mod protobuf;
pub mod rules;
pub mod selector;
pub mod text;
pub mod xml;

use bytes::Bytes;
use http::HeaderMap;
pub use rules::Rules;
use serde::{Deserialize, Serialize};

/// What kind of difference a field shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Same type, other value.
    Value,
    /// Another JSON type (a string for a number, null for an object...).
    Type,
    /// In the primary's response, not in the shadow's.
    Missing,
    /// In the shadow's response, not in the primary's.
    Extra,
    /// An array of another length.
    Length,
    /// An array with the same elements in another order.
    Order,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Value => "value",
            Kind::Type => "type",
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Length => "length",
            Kind::Order => "order",
        }
    }
}

/// One difference between the two responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The concrete place: `status`, `header.etag`, `$.items[3].price`, `body`.
    pub path: String,
    /// The place with array indices folded, for counting: `$.items[*].price`.
    pub field: String,
    pub kind: Kind,
    /// Both values, as short JSON or text; None where a side has none.
    pub primary: Option<String>,
    pub shadow: Option<String>,
}

/// A response as far as comparison cares: status, headers, the whole body (still encoded).
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    /// With the trailers, where a gRPC answer's status and trailing metadata are.
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The gRPC call (`/shop.Items/Get`) this answers, when it answers one: its
    /// messages are decoded by the method's type.
    pub call: Option<String>,
}

/// Every difference between two responses under a route's rules.
pub fn compare(primary: &Response, shadow: &Response, rules: &Rules) -> Vec<Difference> {
    let mut out = Vec::new();
    if primary.status != shadow.status && !rules.ignores("status") {
        out.push(Difference {
            path: "status".into(),
            field: "status".into(),
            kind: Kind::Value,
            primary: Some(primary.status.to_string()),
            shadow: Some(shadow.status.to_string()),
        });
    }
    compare_headers(&primary.headers, &shadow.headers, rules, &mut out);
    content::compare(primary, shadow, rules, &mut out);
    out
}

/// Headers that differ between any two responses and say nothing about behaviour.
const IGNORED_HEADERS: [&str; 11] = [
    "date",
    "server",
    "x-request-id",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "etag",
    // How gRPC messages travelled; the decompressed messages are compared.
    "grpc-encoding",
    "grpc-accept-encoding",
    // Compared only by presence below: the values are sessions and the like.
    "set-cookie",
];

fn compare_headers(a: &HeaderMap, b: &HeaderMap, rules: &Rules, out: &mut Vec<Difference>) {
    let mut names: Vec<&http::HeaderName> = a.keys().chain(b.keys()).collect();
    names.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    names.dedup();
    for name in names {
        let n = name.as_str();
        // Content-Encoding is how the body travelled; the decoded bodies are compared.
        if n == "content-encoding" || n == "vary" {
            continue;
        }
        let field = format!("header.{n}");
        if rules.ignores(&field) {
            continue;
        }
        let default_ignored = IGNORED_HEADERS.contains(&n) && !rules.compares_header(n);
        let values = |m: &HeaderMap| -> Option<String> {
            let v: Vec<&str> = m
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!v.is_empty() || m.contains_key(name)).then(|| {
                let joined = v.join(", ");
                if n == "content-type" {
                    without_boundary(&joined)
                } else {
                    joined
                }
            })
        };
        let (va, vb) = (values(a), values(b));
        let kind = match (&va, &vb) {
            (Some(_), None) => Kind::Missing,
            (None, Some(_)) => Kind::Extra,
            (Some(x), Some(y)) if x != y && !default_ignored => Kind::Value,
            _ => continue,
        };
        if default_ignored && n != "set-cookie" {
            continue;
        }
        let redact = n == "set-cookie";
        out.push(Difference {
            path: field.clone(),
            field,
            kind,
            primary: if redact {
                va.map(|_| "(set)".into())
            } else {
                va
            },
            shadow: if redact {
                vb.map(|_| "(set)".into())
            } else {
                vb
            },
        });
    }
}

/// A content type without its multipart `boundary`: each service draws its own, and the
/// parts are compared field by field.
fn without_boundary(content_type: &str) -> String {
    content_type
        .split(';')
        .filter(|p| {
            !p.trim()
                .get(..9)
                .is_some_and(|k| k.eq_ignore_ascii_case("boundary="))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Two bodies that differ as bytes: their lengths and hashes (samples keep the bodies).
pub fn bytes_differ(a: &[u8], b: &[u8]) -> Difference {
    let describe = |bytes: &[u8]| {
        format!(
            "{} bytes, xxh3 {:016x}",
            bytes.len(),
            xxhash_rust::xxh3::xxh3_64(bytes)
        )
    };
    Difference {
        path: "body".into(),
        field: "body".into(),
        kind: Kind::Value,
        primary: Some(describe(a)),
        shadow: Some(describe(b)),
    }
}

/// Shorten a value for a difference record: samples keep whole bodies elsewhere.
pub fn short(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
