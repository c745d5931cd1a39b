//! One parse of an HTTP/1 request head, for banyan's own HTTP/1 server path: the line
//! ends checked as strictly as the framing reader checks them (CRLF only: a bare LF or CR
//! is how requests are smuggled past a more lenient next hop), then httparse once, into
//! http's `Parts` with header values sliced from the head's bytes (no copy per value),
//! and how the body is framed. Pure: no I/O.
//!
//! What this path does not serve (an upgrade, CONNECT, `Expect`, HTTP/2's preface) is
//! handed to hyper with the bytes read so far, for the rest of the connection.

use super::framing::{Violation, HEADERS_TOO_LARGE};
use super::head::is_chunked_alone;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};
use std::mem::MaybeUninit;

/// The first bytes of an HTTP/2 connection with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Header slots on the stack; a head with more (up to `max_headers`) uses the heap.
const STACK_SLOTS: usize = 128;

/// How a request's body is delimited (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// A request head, parsed.
#[derive(Debug)]
pub struct Head {
    pub parts: http::request::Parts,
    pub body: BodyFraming,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
}

/// Where the scan of a buffer for a complete head stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Empty lines before the request line (RFC 9112 2.2): this many bytes to drop.
    Skip(usize),
    /// No complete head yet; scan again from this offset when more bytes came.
    Partial(usize),
    /// The head is the first this many bytes.
    Complete(usize),
    /// HTTP/2's preface (or what may yet become it): not for this path.
    H2Preface,
}

/// Find the end of the head at the start of `buf`, checking every line end on the way,
/// from `from` (what an earlier call returned as `Partial`). `first` is the connection's
/// first request, the only place HTTP/2's preface may begin.
pub fn scan(buf: &[u8], from: usize, max_head: usize, first: bool) -> Result<Scan, Violation> {
    if first && from == 0 {
        let n = buf.len().min(H2_PREFACE.len());
        if buf[..n] == H2_PREFACE[..n] && n > 0 {
            return Ok(if n == H2_PREFACE.len() {
                Scan::H2Preface
            } else {
                Scan::Partial(0)
            });
        }
    }
    if from == 0 {
        let empty = buf.chunks_exact(2).take_while(|p| *p == b"\r\n").count() * 2;
        if empty > 0 {
            return Ok(Scan::Skip(empty));
        }
        match buf.first() {
            Some(b'\n') => return Err(Violation("a line ends in LF without CR")),
            Some(b'\r') if buf.len() > 1 => return Err(Violation("a CR not followed by LF")),
            _ => {}
        }
    }
    for i in memchr::memchr2_iter(b'\r', b'\n', &buf[from..]).map(|i| i + from) {
        if buf[i] == b'\r' {
            match buf.get(i + 1) {
                None => return partial(buf, i, max_head),
                Some(b'\n') => continue,
                Some(_) => return Err(Violation("a CR not followed by LF")),
            }
        }
        if i == 0 || buf[i - 1] != b'\r' {
            return Err(Violation("a line ends in LF without CR"));
        }
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\r'), Some(b'\n')) => {
                let len = i + 3;
                return if len > max_head {
                    Err(HEADERS_TOO_LARGE)
                } else {
                    Ok(Scan::Complete(len))
                };
            }
            // The line's end is checked again when the next bytes are in.
            (None, _) | (Some(b'\r'), None) => return partial(buf, i, max_head),
            _ => {}
        }
    }
    partial(buf, buf.len(), max_head)
}

/// No complete head within `buf`: over the limit already, or wait for more.
fn partial(buf: &[u8], resume: usize, max_head: usize) -> Result<Scan, Violation> {
    if buf.len() >= max_head {
        Err(HEADERS_TOO_LARGE)
    } else {
        Ok(Scan::Partial(resume))
    }
}

/// What a complete head asks for.
#[derive(Debug)]
// Returned once per request and taken apart at once: boxing the head would cost every
// request an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    Request(Head),
    /// An upgrade, CONNECT or `Expect`: served by hyper from this head on.
    HandOff,
}

/// Parse a complete head (`scan` found its end; `head` is exactly its bytes).
pub fn parse(head: &Bytes, max_headers: usize) -> Result<Parsed, Violation> {
    // Every line but the request line and the empty one is a header field.
    let fields = memchr::memchr_iter(b'\n', head).count().saturating_sub(2);
    if fields > max_headers {
        return Err(HEADERS_TOO_LARGE);
    }
    if fields <= STACK_SLOTS {
        // Uninitialised slots: zeroing 128 of them would cost more than the parse.
        let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_SLOTS];
        parse_into(head, &mut slots)
    } else {
        let mut slots = vec![MaybeUninit::<httparse::Header>::uninit(); fields];
        parse_into(head, &mut slots)
    }
}

fn parse_into<'h>(
    head: &'h Bytes,
    slots: &mut [MaybeUninit<httparse::Header<'h>>],
) -> Result<Parsed, Violation> {
    const UNPARSED: Violation = Violation("the request head does not parse");
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, head, slots)
    {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(UNPARSED),
    }
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| Violation("the method is not a token"))?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let path = req.path.unwrap_or_default().as_bytes();
    let uri = Uri::from_maybe_shared(head.slice_ref(path))
        .map_err(|_| Violation("the request target is not a URI"))?;
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    let mut declared = Declared::default();
    for field in req.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| Violation("a header name is not valid"))?;
        let value = HeaderValue::from_maybe_shared(head.slice_ref(field.value))
            .map_err(|_| Violation("a header value is not valid"))?;
        declared.read(&name, field.value)?;
        headers.append(name, value);
    }
    if method == Method::CONNECT || declared.upgrade || declared.expect {
        return Ok(Parsed::HandOff);
    }
    let body = declared.body(version)?;
    let keep_alive = if version == Version::HTTP_10 {
        declared.keep_alive_token && !declared.close_token
    } else {
        !declared.close_token
    };
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Parsed::Request(Head {
        parts,
        body,
        keep_alive,
    }))
}

/// What the headers say of framing and the connection, gathered as they are read.
#[derive(Debug, Default)]
struct Declared {
    length: Option<u64>,
    /// `Transfer-Encoding` fields seen, and whether the one seen is `chunked` alone.
    codings: usize,
    chunked: bool,
    close_token: bool,
    keep_alive_token: bool,
    upgrade: bool,
    expect: bool,
}

impl Declared {
    fn read(&mut self, name: &HeaderName, value: &[u8]) -> Result<(), Violation> {
        if name == CONTENT_LENGTH {
            for part in value.split(|b| *b == b',') {
                let n = content_length(part.trim_ascii())?;
                if self.length.is_some_and(|l| l != n) {
                    return Err(Violation("Content-Length values differ"));
                }
                self.length = Some(n);
            }
        } else if name == TRANSFER_ENCODING {
            self.codings += 1;
            self.chunked = is_chunked_alone(value);
        } else if name == CONNECTION {
            for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                self.close_token |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == UPGRADE {
            self.upgrade = true;
        } else if name == EXPECT {
            self.expect = true;
        }
        Ok(())
    }

    fn body(&self, version: Version) -> Result<BodyFraming, Violation> {
        if self.codings > 0 {
            // Both framings in one request were meant to be read two ways (CL.TE).
            if self.length.is_some() {
                return Err(Violation("both Content-Length and Transfer-Encoding"));
            }
            if version == Version::HTTP_10 {
                return Err(Violation("Transfer-Encoding in a request of version 1.0"));
            }
            if self.codings > 1 || !self.chunked {
                return Err(Violation("a Transfer-Encoding other than chunked alone"));
            }
            return Ok(BodyFraming::Chunked);
        }
        Ok(match self.length {
            None | Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        })
    }
}

fn content_length(digits: &[u8]) -> Result<u64, Violation> {
    const NOT_A_LENGTH: Violation = Violation("Content-Length is not a number");
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(NOT_A_LENGTH);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or(NOT_A_LENGTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(text: &[u8]) -> Result<Parsed, Violation> {
        match scan(text, 0, 64 * 1024, true)? {
            Scan::Complete(len) => parse(&Bytes::copy_from_slice(&text[..len]), 100),
            other => panic!("not complete: {other:?}"),
        }
    }

    fn request(text: &[u8]) -> Head {
        match complete(text) {
            Ok(Parsed::Request(head)) => head,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_head_is_complete_at_its_empty_line_and_not_before() {
        let text = b"GET /a?b=1 HTTP/1.1\r\nHost: shop\r\n\r\nGET /next";
        assert_eq!(scan(text, 0, 1024, true), Ok(Scan::Complete(35)));
        for cut in 1..35 {
            let Ok(Scan::Partial(resume)) = scan(&text[..cut], 0, 1024, false) else {
                panic!("cut at {cut}: {:?}", scan(&text[..cut], 0, 1024, false));
            };
            // Resuming from where the scan stopped finds the same end.
            assert_eq!(scan(text, resume, 1024, false), Ok(Scan::Complete(35)));
        }
        assert_eq!(scan(b"\r\n\r\nGET", 0, 1024, true), Ok(Scan::Skip(4)));
    }

    #[test]
    fn bare_line_ends_are_violations_wherever_they_are() {
        let bad: &[&[u8]] = &[
            b"GET / HTTP/1.1\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\n\n",
            b"GET / HTTP/1.1\r\nX: b\rY: c\r\n\r\n",
            b"\nGET / HTTP/1.1\r\n\r\n",
            b"\rGET / HTTP/1.1\r\n\r\n",
        ];
        for text in bad {
            assert!(
                scan(text, 0, 1024, false).is_err(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn heads_over_the_limits_are_431() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(scan(long.as_bytes(), 0, 64, false), Err(HEADERS_TOO_LARGE));
        let many: String = (0..5).map(|i| format!("x-{i}: 1\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let head = Bytes::from(text);
        assert_eq!(parse(&head, 4).unwrap_err(), HEADERS_TOO_LARGE);
        assert!(matches!(parse(&head, 5), Ok(Parsed::Request(_))));
    }

    #[test]
    fn the_preface_of_http2_is_handed_on() {
        assert_eq!(scan(b"PRI * HT", 0, 1024, true), Ok(Scan::Partial(0)));
        assert_eq!(
            scan(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, 1024, true),
            Ok(Scan::H2Preface)
        );
        // Only as a connection's first bytes; later, it is a head that does not parse.
        let later = scan(b"PRI * HTTP/2.0\r\n\r\n", 0, 1024, false).unwrap();
        assert_eq!(later, Scan::Complete(18));
        assert!(parse(&Bytes::from_static(b"PRI * HTTP/2.0\r\n\r\n"), 100).is_err());
    }

    #[test]
    fn parts_carry_method_target_version_and_every_header() {
        let head = request(
            b"POST /items?x=1 HTTP/1.1\r\nHost: shop\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri, "/items?x=1");
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(head.body, BodyFraming::Length(5));
        assert!(head.keep_alive);
        let absolute = request(b"GET http://shop/a HTTP/1.1\r\nHost: shop\r\n\r\n");
        assert_eq!(absolute.parts.uri.authority().unwrap(), "shop");
    }

    #[test]
    fn framing_follows_rfc_9112_and_refuses_what_reads_two_ways() {
        let body = |text: &[u8]| request(text).body;
        assert_eq!(
            body(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            BodyFraming::None
        );
        assert_eq!(
            body(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
            BodyFraming::None
        );
        assert_eq!(
            body(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n"),
            BodyFraming::Chunked
        );
        assert_eq!(
            body(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n"),
            BodyFraming::Length(3)
        );
        let refused: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
        ];
        for text in refused {
            assert!(complete(text).is_err(), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_tokens() {
        let keep = |text: &[u8]| request(text).keep_alive;
        assert!(keep(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep(b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n"));
        assert!(!keep(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(keep(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn upgrades_connect_and_expect_are_handed_to_hyper() {
        let handed: &[&[u8]] = &[
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n",
        ];
        for text in handed {
            assert!(
                matches!(complete(text), Ok(Parsed::HandOff)),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }
}
