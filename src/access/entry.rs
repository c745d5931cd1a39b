//! One request's access-log entry, and its line in either format. An entry is built on
//! the request path from what the request already holds (ids, header values, counts:
//! no strings formatted there); the writer's thread turns it into a line.

use crate::ids::{RouteId, UpstreamId};
use http::{HeaderValue, Method, Version};
use serde::Serialize;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What an entry's ids name, resolved on the writer's thread: the snapshot the request
/// ran on.
pub trait Names: Send + Sync {
    fn route(&self, route: RouteId) -> &str;
    fn upstream(&self, upstream: UpstreamId) -> &str;
    /// `host:port` of one of the upstream's endpoints.
    fn endpoint(&self, upstream: UpstreamId, index: usize) -> String;
    /// The request target with the values of secret query parameters masked.
    fn redacted_target(&self, target: &str) -> String;
}

/// One request, as the access log tells it.
pub struct Entry {
    pub names: Arc<dyn Names>,
    /// When the request's head arrived.
    pub time: SystemTime,
    pub client: IpAddr,
    pub method: Method,
    /// The path and query the client sent (redacted when written).
    pub target: Option<http::uri::PathAndQuery>,
    pub version: Version,
    pub host: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub referer: Option<HeaderValue>,
    pub status: u16,
    /// Body bytes read from the client, and written to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// From the head's arrival to the answer's last byte (or the client's leaving).
    pub duration: Duration,
    pub route: Option<RouteId>,
    /// Who answered (None: banyan itself, before choosing).
    pub upstream: Option<UpstreamId>,
    /// The endpoint of the upstream's last attempt.
    pub endpoint: Option<usize>,
    /// `legacy` or `new`, on a split route.
    pub split: Option<&'static str>,
    /// The route's migration stage.
    pub stage: Option<&'static str>,
    /// `copied` or `not_copied` on a shadowing route, as far as known when the answer
    /// began (the comparison comes later, into the diff store).
    pub shadow: Option<&'static str>,
    /// Another endpoint was tried after a failed attempt.
    pub retried: bool,
    /// The route's fallback answered.
    pub fell_back: bool,
    pub request_id: Option<HeaderValue>,
    /// The W3C trace the request belongs to, as 32 hex digits.
    pub trace_id: Option<[u8; 16]>,
    /// banyan's own error cause (`x-banyan-error`), when it answered with one.
    pub error: Option<HeaderValue>,
    /// The answer ended before its last byte (the client left, the upstream broke).
    pub incomplete: bool,
}

/// A value written through its `Display`, with no `String` in between.
struct Shown<T>(T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// 32 lower-case hex digits, as `Display`.
struct TraceHex<'a>(&'a [u8; 16]);

impl std::fmt::Display for TraceHex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The JSON line's fields, in their order.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: Shown<humantime::Rfc3339Timestamp>,
    client: IpAddr,
    method: &'a str,
    path: String,
    protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow: Option<&'static str>,
    retried: bool,
    fallback: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<Shown<TraceHex<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    incomplete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referer: Option<&'a str>,
}

fn text(value: &Option<HeaderValue>) -> Option<&str> {
    value.as_ref().and_then(|v| v.to_str().ok())
}

/// 32 lower-case hex digits.
pub fn trace_hex(id: &[u8; 16]) -> String {
    TraceHex(id).to_string()
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

impl Entry {
    fn path(&self) -> String {
        let target = self.target.as_ref().map_or("/", |t| t.as_str());
        self.names.redacted_target(target)
    }

    fn route_name(&self) -> Option<&str> {
        self.route.map(|r| self.names.route(r))
    }

    fn upstream_name(&self) -> Option<&str> {
        self.upstream.map(|u| self.names.upstream(u))
    }

    fn endpoint_name(&self) -> Option<String> {
        Some(self.names.endpoint(self.upstream?, self.endpoint?))
    }

    /// The line as one JSON object, with its newline.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let line = JsonLine {
            time: Shown(humantime::format_rfc3339_millis(self.time)),
            client: self.client,
            method: self.method.as_str(),
            path: self.path(),
            protocol: protocol(self.version),
            host: text(&self.host),
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            duration_ms: (self.duration.as_secs_f64() * 1e6).round() / 1e3,
            route: self.route_name(),
            upstream: self.upstream_name(),
            endpoint: self.endpoint_name(),
            split: self.split,
            stage: self.stage,
            shadow: self.shadow,
            retried: self.retried,
            fallback: self.fell_back,
            request_id: text(&self.request_id),
            trace_id: self.trace_id.as_ref().map(|t| Shown(TraceHex(t))),
            error: text(&self.error),
            incomplete: self.incomplete,
            user_agent: text(&self.user_agent),
            referer: text(&self.referer),
        };
        // Serializing plain strings and numbers cannot fail.
        let _ = serde_json::to_writer(&mut *out, &line);
        out.push(b'\n');
    }

    /// Apache's combined format (as nginx's `combined`), then banyan's own fields as
    /// `key=value` pairs, with its newline:
    /// `127.0.0.1 - - [28/Nov/2026:01:02:03 +0000] "GET /a?b=1 HTTP/1.1" 200 1024 "-" "curl/8" ...`
    pub fn write_combined(&self, out: &mut Vec<u8>) {
        let quoted = |v: Option<&str>| match v {
            Some(v) => format!("\"{}\"", escape(v, true)),
            None => "\"-\"".to_string(),
        };
        let bytes_out = match self.bytes_out {
            0 => "-".to_string(),
            n => n.to_string(),
        };
        let _ = write!(
            out,
            "{} - - [{}] \"{} {} {}\" {} {} {} {}",
            self.client,
            clf_time(self.time),
            self.method,
            escape(&self.path(), false),
            protocol(self.version),
            self.status,
            bytes_out,
            quoted(text(&self.referer)),
            quoted(text(&self.user_agent)),
        );
        let _ = write!(
            out,
            " duration_ms={:.3} bytes_in={}",
            self.duration.as_secs_f64() * 1e3,
            self.bytes_in
        );
        let mut pair = |key: &str, value: Option<&str>| {
            if let Some(v) = value {
                let _ = write!(out, " {key}={}", escape(v, false));
            }
        };
        pair("route", self.route_name());
        pair("upstream", self.upstream_name());
        pair("endpoint", self.endpoint_name().as_deref());
        pair("split", self.split);
        pair("stage", self.stage);
        pair("shadow", self.shadow);
        pair("retried", self.retried.then_some("true"));
        pair("fallback", self.fell_back.then_some("true"));
        pair("request_id", text(&self.request_id));
        pair("trace_id", self.trace_id.as_ref().map(trace_hex).as_deref());
        pair("error", text(&self.error));
        pair("incomplete", self.incomplete.then_some("true"));
        out.push(b'\n');
    }
}

/// Quotes, backslashes and control bytes as `\xNN`, as nginx escapes its log variables,
/// so a client cannot forge a line or a field; spaces too in an unquoted field.
fn escape(text: &str, quoted: bool) -> std::borrow::Cow<'_, str> {
    let clean = |c: char| {
        (c.is_ascii_graphic() || (quoted && c == ' ') || !c.is_ascii()) && c != '"' && c != '\\'
    };
    if text.chars().all(clean) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if clean(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{:02X}", c as u8));
        }
    }
    out.into()
}

/// `28/Nov/2026:01:02:03 +0000`, the common log format's time, in UTC.
fn clf_time(time: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // humantime's RFC 3339 form: 2026-11-28T01:02:03Z.
    let iso = humantime::format_rfc3339_seconds(time).to_string();
    let (date, clock) = iso.split_once('T').unwrap_or((&iso, "00:00:00Z"));
    let mut parts = date.split('-');
    let (year, month, day) = (
        parts.next().unwrap_or("1970"),
        parts
            .next()
            .and_then(|m| m.parse::<usize>().ok())
            .unwrap_or(1),
        parts.next().unwrap_or("01"),
    );
    format!(
        "{day}/{}/{year}:{} +0000",
        MONTHS[month.clamp(1, 12) - 1],
        clock.trim_end_matches('Z')
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    struct Fixed;

    impl Names for Fixed {
        fn route(&self, _: RouteId) -> &str {
            "items"
        }
        fn upstream(&self, _: UpstreamId) -> &str {
            "items-svc"
        }
        fn endpoint(&self, _: UpstreamId, index: usize) -> String {
            format!("127.0.0.1:900{index}")
        }
        fn redacted_target(&self, target: &str) -> String {
            target.replace("secret", "redacted:1234")
        }
    }

    pub fn entry() -> Entry {
        Entry {
            names: Arc::new(Fixed),
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_827_723_456),
            client: "192.0.2.7".parse().unwrap(),
            method: Method::GET,
            target: Some("/items/1?token=secret".parse().unwrap()),
            version: Version::HTTP_11,
            host: Some(HeaderValue::from_static("shop.example")),
            user_agent: Some(HeaderValue::from_static("curl/8.5 \"quoted\"")),
            referer: None,
            status: 200,
            bytes_in: 0,
            bytes_out: 1024,
            duration: Duration::from_micros(2_345),
            route: Some(RouteId::new(0)),
            upstream: Some(UpstreamId::new(1)),
            endpoint: Some(2),
            split: Some("new"),
            stage: None,
            shadow: Some("copied"),
            retried: true,
            fell_back: false,
            request_id: Some(HeaderValue::from_static("req-1")),
            trace_id: Some([0xab; 16]),
            error: None,
            incomplete: false,
        }
    }

    #[test]
    fn json_names_every_field_and_redacts_the_query() {
        let mut out = Vec::new();
        entry().write_json(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2026-11-28T01:02:03.456Z");
        assert_eq!(v["client"], "192.0.2.7");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/items/1?token=redacted:1234");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_out"], 1024);
        assert_eq!(v["duration_ms"], 2.345);
        assert_eq!(v["route"], "items");
        assert_eq!(v["upstream"], "items-svc");
        assert_eq!(v["endpoint"], "127.0.0.1:9002");
        assert_eq!(v["split"], "new");
        assert_eq!(v["shadow"], "copied");
        assert_eq!(v["retried"], true);
        assert_eq!(v["fallback"], false);
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["trace_id"], "ab".repeat(16));
        assert!(v.get("stage").is_none() && v.get("error").is_none());
        assert!(!String::from_utf8(out).unwrap().contains("secret"));
    }

    #[test]
    fn combined_is_apaches_line_then_banyans_fields() {
        let mut out = Vec::new();
        entry().write_combined(&mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.starts_with("192.0.2.7 - - [28/Nov/2026:01:02:03 +0000] \"GET /items/1?token=redacted:1234 HTTP/1.1\" 200 1024 \"-\" \"curl/8.5 \\x22quoted\\x22\" duration_ms=2.345 bytes_in=0 route=items upstream=items-svc endpoint=127.0.0.1:9002 split=new shadow=copied retried=true request_id=req-1 trace_id="),
            "{line}"
        );
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    }

    #[test]
    fn a_client_cannot_forge_a_line() {
        let mut e = entry();
        e.user_agent = Some(HeaderValue::from_bytes(b"x\" 200 \"\tevil").unwrap());
        e.target = Some("/a%0Ab".parse().unwrap());
        let mut out = Vec::new();
        e.write_combined(&mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains("\"x\\x22 200 \\x22\\x09evil\""), "{line}");
        assert_eq!(line.matches('"').count(), 6, "{line}");
    }
}
