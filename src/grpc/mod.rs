//! gRPC as a proxy sees it (the "gRPC over HTTP/2" protocol): which requests are gRPC
//! calls, the deadline a call carries, and the status banyan answers with when it fails
//! a call itself. Pure: no I/O.

pub mod status;

use http::{header, HeaderMap};
use std::time::Duration;

pub use status::Code;

/// `grpc-timeout`: how long the caller waits for the whole call.
pub const TIMEOUT: &str = "grpc-timeout";
/// `grpc-status`: the call's outcome, in the trailers (or the headers of a
/// trailers-only response).
pub const STATUS: &str = "grpc-status";
/// `grpc-message`: the outcome's description, percent-encoded.
pub const MESSAGE: &str = "grpc-message";
/// `grpc-encoding`: how the compressed messages of a body are compressed.
pub const ENCODING: &str = "grpc-encoding";

/// Whether a request or response is gRPC: `application/grpc`, alone or with a `+proto`,
/// `+json`... suffix or parameters. gRPC-Web (`application/grpc-web`) is not: it runs
/// over HTTP/1.1 with its trailers in the body.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let bytes = value.as_bytes();
    let prefix = b"application/grpc";
    bytes.len() >= prefix.len()
        && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(bytes.get(prefix.len()), None | Some(b'+' | b';'))
}

/// The deadline a call carries in `grpc-timeout`: `None` when it carries none or one
/// that does not follow the protocol (at most 8 digits and a unit), which gRPC servers
/// also ignore.
pub fn deadline(headers: &HeaderMap) -> Option<Duration> {
    parse_timeout(headers.get(TIMEOUT)?.as_bytes())
}

fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 digits: no overflow below.
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The service and method a gRPC call names in its path (`/shop.Items/Get`).
pub fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// `grpc-message` as the protocol writes it: bytes outside printable ASCII, and `%`,
/// percent-encoded.
pub fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `grpc-message` as text: percent-decoded, lossy on bytes that are not UTF-8 (the
/// protocol asks receivers not to fail on a malformed message).
pub fn decode_message(value: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let hex = value
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (value[i], hex) {
            (b'%', Some(b)) => {
                bytes.push(b);
                i += 3;
            }
            (b, _) => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc(&with("content-type", "application/grpc")));
        assert!(is_grpc(&with("content-type", "application/grpc+proto")));
        assert!(is_grpc(&with("content-type", "Application/GRPC;charset=x")));
        assert!(!is_grpc(&with("content-type", "application/grpc-web")));
        assert!(!is_grpc(&with("content-type", "application/json")));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn timeouts_in_every_unit() {
        let d = |v: &'static str| deadline(&with(TIMEOUT, v));
        assert_eq!(d("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(d("3M"), Some(Duration::from_secs(180)));
        assert_eq!(d("10S"), Some(Duration::from_secs(10)));
        assert_eq!(d("250m"), Some(Duration::from_millis(250)));
        assert_eq!(d("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(d("5n"), Some(Duration::from_nanos(5)));
    }

    #[test]
    fn malformed_timeouts_are_ignored() {
        for v in ["", "S", "123456789S", "10s", "1.5S", "-1S", "10"] {
            assert_eq!(parse_timeout(v.as_bytes()), None, "{v:?}");
        }
    }

    #[test]
    fn service_and_method_from_the_path() {
        assert_eq!(
            service_and_method("/shop.Items/Get"),
            Some(("shop.Items", "Get"))
        );
        assert_eq!(service_and_method("/shop.Items/"), None);
        assert_eq!(service_and_method("/shop.Items"), None);
        assert_eq!(service_and_method("/a/b/c"), None);
    }

    #[test]
    fn messages_round_trip_through_percent_encoding() {
        let text = "upstream 100% down: café\n";
        let encoded = encode_message(text);
        assert_eq!(encoded, "upstream 100%25 down: caf%C3%A9%0A");
        assert_eq!(decode_message(encoded.as_bytes()), text);
        // A stray % is kept as it is.
        assert_eq!(decode_message(b"50%"), "50%");
    }
}
