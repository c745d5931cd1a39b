//! HTTP/1.1 on the wire, for the client side of banyan's own HTTP/1 server path: how a
//! response body is framed for the client that asked (RFC 9112 6.3), the response head
//! written straight into the connection's buffer, chunk framing, the `Date` header
//! formatted once a second, and banyan's answer to a head it refuses. Pure: no I/O.

use crate::inbound::framing::Violation;
/// How a response body is delimited: the upstream client's type, written this time.
pub use crate::upstream::h1::wire::Framing;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Version};
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// What decides a response's framing.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    pub head_request: bool,
    pub version: Version,
    pub status: StatusCode,
    /// The body's exact length, when known.
    pub exact: Option<u64>,
}

/// The framing of a response (a `Content-Length` header is trusted only when the body's
/// own length is unknown, and checked as the body is written).
pub fn framing(exchange: Exchange, headers: &HeaderMap) -> Framing {
    let status = exchange.status;
    if exchange.head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::Empty;
    }
    if let Some(n) = exchange.exact {
        return Framing::Length(n);
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) => Framing::Length(n),
        None if exchange.version == Version::HTTP_11 => Framing::Chunked,
        None => Framing::UntilClose,
    }
}

/// Write the status line and headers. The framing headers are banyan's (`Content-Length`
/// or `Transfer-Encoding: chunked`, kept as they were on a bodiless response to HEAD or
/// 304), `Connection` says `close` when the connection ends after this response (or
/// `keep-alive` to an HTTP/1.0 client that keeps it), and a `Date` is added when the
/// response has none.
pub fn encode_head(
    out: &mut Vec<u8>,
    exchange: Exchange,
    headers: &HeaderMap,
    framing: Framing,
    keep_alive: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(exchange.status.as_str().as_bytes());
    out.push(b' ');
    if let Some(reason) = exchange.status.canonical_reason() {
        out.extend_from_slice(reason.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    // A bodiless answer to HEAD or 304 says what the body would have been.
    let keep_length = framing == Framing::Empty
        && (exchange.head_request || exchange.status == StatusCode::NOT_MODIFIED);
    for (name, value) in headers {
        let framing_header = name == TRANSFER_ENCODING || name == CONTENT_LENGTH;
        if (framing_header && !(keep_length && name == CONTENT_LENGTH)) || name == CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if exchange.version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !headers.contains_key(DATE) {
        out.extend_from_slice(b"date: ");
        with_date(|date| out.extend_from_slice(date));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The response asks for the connection to end after it (`Connection: close`).
pub fn asks_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// The size line of a chunk of `len` bytes.
pub fn chunk_size_line(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with no trailers (HTTP/1.1 clients rarely ask for them: banyan sends
/// trailers over HTTP/2, where gRPC needs them).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// banyan's answer to a head it refuses, in the form of its other refusals: a status,
/// `x-banyan-error`, a sentence; the connection closes after it.
pub fn refusal(violation: Violation) -> (Vec<u8>, &'static str) {
    let status = violation.status();
    let cause = if status == StatusCode::BAD_REQUEST {
        "bad_request"
    } else {
        "headers_too_large"
    };
    let reason = status.canonical_reason().unwrap_or("");
    let body = format!("{} {reason}: {}\n", status.as_u16(), violation.0);
    let answer = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n{}: {cause}\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        status.as_u16(),
        crate::proxy::error::ERROR_HEADER,
        body.len()
    );
    (answer.into_bytes(), cause)
}

thread_local! {
    /// The second last formatted, and its IMF-fixdate (29 bytes).
    static CACHED_DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// The current time as an HTTP date, formatted at most once a second per thread.
fn with_date(write: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED_DATE.with_borrow_mut(|(at, text)| {
        if *at != second {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == text.len() {
                text.copy_from_slice(formatted.as_bytes());
                *at = second;
            }
        }
        write(text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn exchange(status: u16, exact: Option<u64>) -> Exchange {
        Exchange {
            head_request: false,
            version: Version::HTTP_11,
            status: StatusCode::from_u16(status).unwrap(),
            exact,
        }
    }

    fn head(exchange: Exchange, headers: &HeaderMap, keep_alive: bool) -> String {
        let mut out = Vec::new();
        encode_head(
            &mut out,
            exchange,
            headers,
            framing(exchange, headers),
            keep_alive,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_known_length_is_the_content_length_and_an_unknown_one_chunked() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert(
            "date",
            HeaderValue::from_static("Sat, 28 Nov 2026 08:00:00 GMT"),
        );
        let text = head(exchange(200, Some(12)), &headers, true);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ndate: Sat, 28 Nov 2026 08:00:00 GMT\r\ncontent-length: 12\r\n\r\n"
        );
        let text = head(exchange(201, None), &headers, true);
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        headers.remove("transfer-encoding");
        headers.insert("content-length", HeaderValue::from_static("7"));
        assert_eq!(
            framing(exchange(200, None), &headers),
            Framing::Length(7),
            "a declared length when the body's is unknown"
        );
        assert_eq!(
            framing(exchange(200, Some(3)), &headers),
            Framing::Length(3)
        );
    }

    #[test]
    fn bodiless_answers_keep_their_declared_length_only_for_head_and_304() {
        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("512"));
        let mut to_head = exchange(200, Some(0));
        to_head.head_request = true;
        assert_eq!(framing(to_head, &headers), Framing::Empty);
        assert!(head(to_head, &headers, true).contains("content-length: 512\r\n"));
        assert!(head(exchange(304, None), &headers, true).contains("content-length: 512\r\n"));
        let no_content = head(exchange(204, Some(0)), &headers, true);
        assert!(!no_content.contains("content-length"), "{no_content}");
    }

    #[test]
    fn the_connection_header_says_what_banyan_does_with_the_connection() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("keep-alive, x-hop"));
        let text = head(exchange(200, Some(0)), &headers, false);
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert!(!text.contains("x-hop"), "{text}");
        let mut old = exchange(200, Some(0));
        old.version = Version::HTTP_10;
        assert!(head(old, &HeaderMap::new(), true).contains("connection: keep-alive\r\n"));
        assert_eq!(
            framing(Exchange { exact: None, ..old }, &HeaderMap::new()),
            Framing::UntilClose
        );
        let mut closing = HeaderMap::new();
        closing.insert("connection", HeaderValue::from_static("Close"));
        assert!(asks_close(&closing));
        assert!(!asks_close(&headers));
    }

    #[test]
    fn a_date_is_added_when_the_response_has_none() {
        let text = head(exchange(502, Some(0)), &HeaderMap::new(), true);
        let date = text
            .lines()
            .find_map(|l| l.strip_prefix("date: "))
            .expect(&text);
        let parsed = httpdate::parse_http_date(date).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(skew.as_secs() <= 2, "{date}");
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        for (len, line) in [
            (0, "0\r\n"),
            (10, "a\r\n"),
            (4096, "1000\r\n"),
            (255, "ff\r\n"),
        ] {
            let mut out = Vec::new();
            chunk_size_line(&mut out, len);
            assert_eq!(out, line.as_bytes());
        }
    }

    #[test]
    fn a_refused_head_is_answered_with_its_reason() {
        let (answer, cause) = refusal(Violation("a line ends in LF without CR"));
        let text = String::from_utf8(answer).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.ends_with("400 Bad Request: a line ends in LF without CR\n"));
        assert_eq!(cause, "bad_request");
        let (_, cause) = refusal(crate::inbound::framing::HEADERS_TOO_LARGE);
        assert_eq!(cause, "headers_too_large");
    }
}
