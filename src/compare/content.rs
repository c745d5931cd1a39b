//! Bodies: decoded (gzip, br, deflate; each side its own), then compared by content type:
//! JSON structurally, text exactly after the route's normalisers, anything else by length
//! and hash.

use super::rules::Rules;
use super::{json, short, Difference, Kind, Response};
use std::borrow::Cow;
use std::io::Read;

/// The largest decoded body compared; past it, bodies compare by length and hash.
const MAX_DECODED: u64 = 16 * 1024 * 1024;

pub fn compare(primary: &Response, shadow: &Response, rules: &Rules, out: &mut Vec<Difference>) {
    if rules.ignores("body") {
        return;
    }
    // Most shadowed responses agree byte for byte: then nothing below can differ, and
    // the parse (the bulk of a comparison's cost) is skipped.
    let encoding = http::header::CONTENT_ENCODING;
    if primary.body == shadow.body
        && primary.headers.get(&encoding) == shadow.headers.get(&encoding)
    {
        return;
    }
    if crate::grpc::is_grpc(&primary.headers) && crate::grpc::is_grpc(&shadow.headers) {
        return super::grpc::compare(primary, shadow, rules, out);
    }
    let (a, b) = (decoded(primary), decoded(shadow));
    if a == b {
        return;
    }
    let is_json = |r: &Response, body: &[u8]| {
        content_type(r).is_some_and(|t| t.contains("json"))
            || (content_type(r).is_none() && looks_like_json(body))
    };
    if is_json(primary, &a) || is_json(shadow, &b) {
        match (serde_json::from_slice(&a), serde_json::from_slice(&b)) {
            (Ok(va), Ok(vb)) => return json::diff(&va, &vb, rules, out),
            (Err(_), Err(_)) => {}
            _ => {
                return out.push(Difference {
                    path: "body".into(),
                    field: "body".into(),
                    kind: Kind::Type,
                    primary: Some(short(&String::from_utf8_lossy(&a))),
                    shadow: Some(short(&String::from_utf8_lossy(&b))),
                })
            }
        }
    }
    let text = |r: &Response| {
        content_type(r).is_some_and(|t| {
            t.starts_with("text/") || t.contains("xml") || t.contains("javascript")
        })
    };
    if text(primary) || text(shadow) {
        if let (Ok(x), Ok(y)) = (std::str::from_utf8(&a), std::str::from_utf8(&b)) {
            let (x, y) = (rules.normalize(x), rules.normalize(y));
            if x != y {
                out.push(Difference {
                    path: "body".into(),
                    field: "body".into(),
                    kind: Kind::Value,
                    primary: Some(short(&x)),
                    shadow: Some(short(&y)),
                });
            }
            return;
        }
    }
    if a != b {
        out.push(super::bytes_differ(&a, &b));
    }
}

fn content_type(r: &Response) -> Option<&str> {
    r.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

fn looks_like_json(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// The body with its Content-Encoding undone; as it is when the encoding is unknown or
/// the data does not decode.
pub fn decoded(r: &Response) -> Cow<'_, [u8]> {
    let encoding = r
        .headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let body = &r.body[..];
    let mut out = Vec::new();
    let result = match encoding.as_deref() {
        Some("gzip" | "x-gzip") => flate2::read::GzDecoder::new(body)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        Some("deflate") => {
            // "deflate" is zlib-wrapped by the RFC, raw in some servers: try both.
            let zlib = flate2::read::ZlibDecoder::new(body)
                .take(MAX_DECODED)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(MAX_DECODED)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        Some("br") => brotli::Decompressor::new(body, 4096)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        _ => return Cow::Borrowed(body),
    };
    match result {
        Ok(_) => Cow::Owned(out),
        Err(_) => Cow::Borrowed(body),
    }
}
