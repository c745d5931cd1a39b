//! One captured exchange, as stored: a line of JSON in a gzip file (`*.jsonl.gz`), the
//! format docs/capture.md documents. Pure: building a record from what the proxy saw
//! (redacted), and reading capture files back, a truncated last line (a file still being
//! written, or cut by a crash) ending the read, not failing it.

use crate::store::redact::Redactor;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};

/// The request as the client sent it, kept for a capture.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// An exchange as the proxy saw it, before redaction (the writer thread redacts).
#[derive(Debug)]
pub struct Exchange {
    pub route: String,
    /// Seconds since 1970 at the request's arrival.
    pub at: f64,
    pub request: RequestHead,
    pub request_body: Bytes,
    pub status: StatusCode,
    pub response_headers: HeaderMap,
    pub response_body: Bytes,
    /// From the request's arrival to the answer's head.
    pub latency: std::time::Duration,
}

/// The format's version, in every record.
pub const VERSION: u32 = 1;

/// A captured request and the answer the client got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    /// When the request arrived, RFC 3339 with milliseconds.
    pub time: String,
    /// The route that took it (for a HAR entry: the route the config gives it, if any).
    pub route: Option<String>,
    pub request: Request,
    pub response: Answer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    #[serde(flatten)]
    pub body: Body,
}

impl Request {
    /// The request target: path and query.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(flatten)]
    pub body: Body,
    /// From the request's arrival to the answer's head.
    pub latency_ms: f64,
}

/// A body: text as text, anything else in base64.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Body {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl Body {
    /// Text bodies redacted as diff samples are; binary ones kept as they are (replay
    /// sends them back), in base64.
    pub fn of(bytes: &[u8], content_type: Option<&str>, redactor: &Redactor) -> Body {
        if bytes.is_empty() {
            return Body::default();
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Body {
                body: redactor.body(bytes, content_type),
                body_base64: None,
            },
            Err(_) => Body {
                body: String::new(),
                body_base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            },
        }
    }

    pub fn bytes(&self) -> Bytes {
        match &self.body_base64 {
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(Bytes::from)
                .unwrap_or_default(),
            None => Bytes::from(self.body.clone()),
        }
    }
}

impl Record {
    /// An exchange as stored: headers and text bodies redacted as diff samples are.
    pub fn of(e: &Exchange, redactor: &Redactor) -> Record {
        let content_type = |h: &HeaderMap| {
            h.get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let target = redactor.target(
            e.request
                .uri
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str),
        );
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (target, None),
        };
        // Stored decoded (so it reads, and redacts, as text): without its encoding.
        let response = crate::compare::Response {
            status: e.status.as_u16(),
            headers: e.response_headers.clone(),
            body: e.response_body.clone(),
            call: None,
        };
        let decoded = crate::compare::content::decoded(&response);
        let mut response_headers = headers(&e.response_headers, redactor);
        if matches!(decoded, std::borrow::Cow::Owned(_)) {
            response_headers.retain(|(name, _)| name != "content-encoding");
        }
        Record {
            v: VERSION,
            time: rfc3339(e.at),
            route: Some(e.route.clone()),
            request: Request {
                method: e.request.method.to_string(),
                path,
                query,
                headers: headers(&e.request.headers, redactor),
                body: Body::of(
                    &e.request_body,
                    content_type(&e.request.headers).as_deref(),
                    redactor,
                ),
            },
            response: Answer {
                status: e.status.as_u16(),
                headers: response_headers,
                body: Body::of(
                    &decoded,
                    content_type(&e.response_headers).as_deref(),
                    redactor,
                ),
                latency_ms: e.latency.as_secs_f64() * 1e3,
            },
        }
    }
}

/// Headers a capture does not keep: how the message travelled, not what it said.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// Headers as stored: hop-by-hop ones left out, credentials masked.
pub fn headers(map: &HeaderMap, redactor: &Redactor) -> Vec<(String, String)> {
    redactor
        .headers(map)
        .into_iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .collect()
}

/// RFC 3339 in UTC with milliseconds, from seconds since 1970.
pub fn rfc3339(unix: f64) -> String {
    let millis = (unix * 1000.0) as i64;
    let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since 1970 of an RFC 3339 time (HAR's `startedDateTime` too); None when it is
/// not one.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let (date, rest) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let s = t.next().unwrap_or("0").parse::<f64>().ok()?;
    let offset_secs = match offset.chars().next() {
        Some(sign @ ('+' | '-')) => {
            let (oh, om) = offset[1..].split_once(':').unwrap_or((&offset[1..], "0"));
            let o = oh.parse::<f64>().ok()? * 3600.0 + om.parse::<f64>().ok()? * 60.0;
            if sign == '+' {
                o
            } else {
                -o
            }
        }
        _ => 0.0,
    };
    let days = days_from_civil(y, m, day) as f64;
    Some(days * 86_400.0 + h * 3600.0 + min * 60.0 + s - offset_secs)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_833_296.789), "2026-11-28T02:34:56.789Z");
        for t in [0.0, 951_782_400.5, 1_795_833_296.789, 4_102_444_800.0] {
            let back = parse_rfc3339(&rfc3339(t)).unwrap();
            assert!((back - t).abs() < 0.001, "{t} -> {back}");
        }
        let with_offset = parse_rfc3339("2026-11-28T03:34:56.789+01:00").unwrap();
        assert!((with_offset - 1_795_833_296.789).abs() < 0.001);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn bodies_text_or_base64() {
        let redactor = Redactor::new(&Default::default());
        let text = Body::of(
            b"{\"a\":1,\"password\":\"x\"}",
            Some("application/json"),
            &redactor,
        );
        assert!(text.body.contains("\"a\":1") && !text.body.contains("\"x\""));
        assert_eq!(text.body_base64, None);
        let binary = Body::of(&[0xff, 0x00, 0x10], None, &redactor);
        assert_eq!(binary.bytes().as_ref(), &[0xff, 0x00, 0x10]);
        assert!(binary.body.is_empty());
    }
}
