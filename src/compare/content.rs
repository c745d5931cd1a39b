//! Bodies: decoded (gzip, br, deflate; each side its own), then compared by content type:
//! JSON, XML, HTML and forms structurally, other text line by line after the route's
//! normalisers, anything else by length and hash.

use super::rules::Rules;
use super::{form, json, short, text, Difference, Kind, Response};
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
    let (ka, kb) = (kind_of(primary, &a), kind_of(shadow, &b));
    // A structured kind on either side decides how both are read: a side that does not
    // read as that kind answered something else (a `Type` difference).
    let structured = [ka, kb].into_iter().find(|k| k.is_structured());
    if let Some(kind) = structured {
        match (
            structure(kind, primary, &a, rules),
            structure(kind, shadow, &b, rules),
        ) {
            (Some(x), Some(y)) => return x.diff(&y, rules, out),
            (None, None) => {}
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
    if ka.is_text() || kb.is_text() {
        if let (Ok(x), Ok(y)) = (std::str::from_utf8(&a), std::str::from_utf8(&b)) {
            let (x, y) = (rules.normalize(x), rules.normalize(y));
            return text::compare(&x, &y, out);
        }
    }
    out.push(super::bytes_differ(&a, &b));
}

/// What a body is, by its content type (sniffed when it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Xml,
    Html,
    /// `application/x-www-form-urlencoded`
    Form,
    /// `multipart/form-data`
    Multipart,
    /// Any other text: plain, CSV, JavaScript, CSS...
    Text,
    /// Bytes: compared by length and hash.
    Other,
}

impl BodyKind {
    fn is_structured(self) -> bool {
        !matches!(self, BodyKind::Text | BodyKind::Other)
    }

    /// Text when it is not read as a structure (or does not parse as one).
    pub fn is_text(self) -> bool {
        self != BodyKind::Other
    }
}

/// A body's kind by a content type and the (decoded) body.
pub fn body_kind(content_type: Option<&str>, body: &[u8]) -> BodyKind {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let Some(media) = media else {
        let start = body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(&[][..], |i| &body[i..]);
        let lower = |n: usize| start[..start.len().min(n)].to_ascii_lowercase();
        return match start.first() {
            Some(b'{' | b'[') => BodyKind::Json,
            Some(b'<') if lower(14).starts_with(b"<!doctype html") || lower(5) == b"<html" => {
                BodyKind::Html
            }
            Some(b'<') => BodyKind::Xml,
            _ => BodyKind::Other,
        };
    };
    match media.as_str() {
        m if m.contains("json") => BodyKind::Json,
        "text/html" => BodyKind::Html,
        m if m.ends_with("+xml") || m.ends_with("/xml") => BodyKind::Xml,
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "multipart/form-data" => BodyKind::Multipart,
        m if m.starts_with("text/") || m.contains("javascript") || m.contains("xml") => {
            BodyKind::Text
        }
        _ => BodyKind::Other,
    }
}

fn kind_of(r: &Response, body: &[u8]) -> BodyKind {
    body_kind(content_type(r), body)
}

/// A body read as a structure of its kind.
enum Structure {
    Json(serde_json::Value),
    Markup(super::markup::Element, super::markup::Syntax),
}

impl Structure {
    fn diff(&self, other: &Structure, rules: &Rules, out: &mut Vec<Difference>) {
        match (self, other) {
            (Structure::Json(x), Structure::Json(y)) => json::diff(x, y, rules, out),
            (Structure::Markup(x, syntax), Structure::Markup(y, _)) => {
                super::markup::diff(x, y, *syntax, rules, out)
            }
            // Both sides are read as one kind.
            _ => {}
        }
    }
}

/// The body read as `kind`; None when it does not read as one.
fn structure(kind: BodyKind, r: &Response, body: &[u8], rules: &Rules) -> Option<Structure> {
    use super::markup::Syntax;
    match kind {
        BodyKind::Json => serde_json::from_slice(body).ok().map(Structure::Json),
        BodyKind::Xml => super::xml::parse(body)
            .ok()
            .map(|e| Structure::Markup(e, Syntax::Xml)),
        BodyKind::Html => super::html::parse(body, &rules.html_ignore)
            .ok()
            .map(|e| Structure::Markup(e, Syntax::Html)),
        BodyKind::Form => std::str::from_utf8(body)
            .ok()
            .map(|_| Structure::Json(form::urlencoded(body))),
        BodyKind::Multipart => form::multipart(body, content_type(r).unwrap_or_default())
            .ok()
            .map(Structure::Json),
        BodyKind::Text | BodyKind::Other => None,
    }
}

fn content_type(r: &Response) -> Option<&str> {
    r.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
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
