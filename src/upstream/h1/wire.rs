//! HTTP/1.1 on the wire, for the upstream side: a request head written straight into the
//! connection's buffer, a response head parsed once (httparse, header values sliced from
//! the read buffer without copying), how the response body is framed (RFC 9112 6.3), and
//! a chunked decoder. Pure: no I/O, unit-tested here.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use smallvec::SmallVec;

/// Header fields a response head may have.
const MAX_HEADERS: usize = 128;
/// The largest response head read (hyper's default buffer is about this).
pub const MAX_HEAD: usize = 64 * 1024;
/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// The largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

/// What the upstream sent that HTTP/1.1 does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream's response is not valid HTTP/1.1: {0}")]
pub struct Malformed(pub &'static str);

/// Write `METHOD target HTTP/1.1`, the headers (framing headers left out) and the
/// framing of a body of `body_len` bytes held in memory.
pub fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &PathAndQuery,
    headers: &HeaderMap,
    body_len: usize,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        // The body is sent whole with its own length: whatever framing the client's
        // request had does not describe it.
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // A method whose requests carry a body says so even when it is empty (as hyper does).
    if body_len > 0 || matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a HEAD request, 1xx, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request after this response's body.
    pub reusable: bool,
}

/// Parse the response head at the start of `buf`, consuming it. None: more bytes are
/// needed. An interim response (1xx but 101) is consumed and skipped.
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, Malformed> {
    loop {
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            buf,
            &mut slots,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(Malformed("the response head is too large"))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Malformed("the response has too many headers"))
            }
            Err(_) => return Err(Malformed("the response head does not parse")),
        };
        let code = response.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| Malformed("the status code is out of range"))?;
        let version = if response.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            buf.advance(len);
            continue;
        }
        // Header values are slices of the head's bytes: one buffer, no copy per value.
        let offsets: SmallVec<[(usize, usize, usize, usize); 24]> = response
            .headers
            .iter()
            .map(|h| {
                let name = h.name.as_ptr() as usize - buf.as_ptr() as usize;
                let value = h.value.as_ptr() as usize - buf.as_ptr() as usize;
                (name, h.name.len(), value, h.value.len())
            })
            .collect();
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(offsets.len());
        for (name, name_len, value, value_len) in offsets {
            let name = HeaderName::from_bytes(&head[name..name + name_len])
                .map_err(|_| Malformed("a header name is not valid"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(value..value + value_len))
                .map_err(|_| Malformed("a header value is not valid"))?;
            headers.append(name, value);
        }
        let (framing, mut reusable) = framing(status, version, method, &headers)?;
        reusable &= keep_alive(version, &headers);
        return Ok(Some(ResponseHead {
            status,
            headers,
            framing,
            reusable,
        }));
    }
}

/// The body's framing (RFC 9112 6.3), and whether it leaves the connection reusable.
fn framing(
    status: StatusCode,
    version: Version,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(Framing, bool), Malformed> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // What follows is another protocol: never reused.
        return Ok((Framing::Empty, false));
    }
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_some() {
        if version == Version::HTTP_10 {
            return Err(Malformed("transfer-encoding in an HTTP/1.0 response"));
        }
        let last = codings
            .last()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim);
        let chunked = last.is_some_and(|c| c.eq_ignore_ascii_case("chunked"));
        // With a Content-Length too, the message is read as chunked and the connection
        // is not trusted with another (RFC 9112 6.3, 3).
        let reusable = chunked && !headers.contains_key(CONTENT_LENGTH);
        let framing = if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        };
        return Ok((framing, reusable));
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value
            .to_str()
            .map_err(|_| Malformed("content-length is not a number"))?
            .split(',')
        {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Malformed("content-length is not a number"));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| Malformed("content-length is too large"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Malformed("content-length values differ"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), true),
        None => (Framing::UntilClose, false),
    })
}

fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

/// What the chunked decoder found in the buffer.
#[derive(Debug, PartialEq)]
pub enum Chunk {
    Data(Bytes),
    /// The last chunk and the trailers (empty when there were none).
    End(HeaderMap),
    /// The buffer holds no complete piece yet.
    More,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// A decoder of `Transfer-Encoding: chunked`, strict about line ends (CRLF only).
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
        }
    }
}

/// An LF not after a CR, or a CR before anything but an LF, up to the end of the
/// trailer section (its empty line) or of `buf`.
fn has_bare_line_end(buf: &[u8]) -> bool {
    for i in memchr::memchr2_iter(b'\r', b'\n', buf) {
        let bare = if buf[i] == b'\n' {
            i == 0 || buf[i - 1] != b'\r'
        } else {
            buf.get(i + 1).is_some_and(|b| *b != b'\n')
        };
        if bare {
            return true;
        }
        if buf[i] == b'\n' && buf[i + 1..].starts_with(b"\r\n") {
            return false;
        }
    }
    false
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Take the next piece from `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, Malformed> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(end) = find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(Malformed("a chunk-size line is too long"));
                        }
                        if buf.contains(&b'\n') {
                            return Err(Malformed("a chunk-size line does not end in CRLF"));
                        }
                        return Ok(Chunk::More);
                    };
                    let line = &buf[..end];
                    let digits = line
                        .iter()
                        .position(|b| !b.is_ascii_hexdigit())
                        .unwrap_or(line.len());
                    if digits == 0 || digits > 16 {
                        return Err(Malformed("a chunk size is not a hex number"));
                    }
                    if digits < line.len() && !matches!(line[digits], b';' | b' ' | b'\t') {
                        return Err(Malformed("a chunk size is not a hex number"));
                    }
                    let text = std::str::from_utf8(&line[..digits])
                        .map_err(|_| Malformed("a chunk size is not a hex number"))?;
                    let size = u64::from_str_radix(text, 16)
                        .map_err(|_| Malformed("a chunk size is too large"))?;
                    buf.advance(end + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Chunk::More);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Chunk::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Chunk::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Malformed("chunk data does not end in CRLF"));
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.state = ChunkState::Done;
                        return Ok(Chunk::End(HeaderMap::new()));
                    }
                    // A bare LF or CR among the trailers: the section's end would be read
                    // two ways (as the framing reader in front of hyper refuses it).
                    if has_bare_line_end(buf) {
                        return Err(Malformed("a trailer line does not end in CRLF"));
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if buf.len() > MAX_TRAILERS {
                            return Err(Malformed("the trailers are too large"));
                        }
                        return Ok(Chunk::More);
                    };
                    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut trailers = HeaderMap::new();
                    match httparse::parse_headers(&buf[..end + 4], &mut slots) {
                        Ok(httparse::Status::Complete((_, fields))) => {
                            for f in fields {
                                let name = HeaderName::from_bytes(f.name.as_bytes())
                                    .map_err(|_| Malformed("a trailer name is not valid"))?;
                                let value = HeaderValue::from_bytes(f.value)
                                    .map_err(|_| Malformed("a trailer value is not valid"))?;
                                trailers.append(name, value);
                            }
                        }
                        _ => return Err(Malformed("the trailers do not parse")),
                    }
                    buf.advance(end + 4);
                    self.state = ChunkState::Done;
                    return Ok(Chunk::End(trailers));
                }
                ChunkState::Done => return Ok(Chunk::End(HeaderMap::new())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: &Method) -> Result<Option<ResponseHead>, Malformed> {
        let mut buf = BytesMut::from(text);
        parse_response_head(&mut buf, method)
    }

    #[test]
    fn the_request_head_carries_the_target_headers_and_the_bodys_length() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("items.internal"));
        headers.insert("content-length", HeaderValue::from_static("999"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let mut out = Vec::new();
        let target = PathAndQuery::from_static("/items/7?x=1");
        encode_request_head(&mut out, &Method::GET, &target, &headers, 0);
        assert_eq!(
            out,
            b"GET /items/7?x=1 HTTP/1.1\r\nhost: items.internal\r\n\r\n".as_slice()
        );
        out.clear();
        encode_request_head(&mut out, &Method::POST, &target, &headers, 12);
        assert!(out.ends_with(b"host: items.internal\r\ncontent-length: 12\r\n\r\n"));
        out.clear();
        encode_request_head(&mut out, &Method::POST, &target, &HeaderMap::new(), 0);
        assert!(out.ends_with(b"content-length: 0\r\n\r\n"));
    }

    #[test]
    fn response_heads_give_status_headers_framing_and_reuse() {
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\nx-a: 2\r\n\r\nhello",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.reusable);
        assert_eq!(h.headers.get_all("x-a").iter().count(), 2);

        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.reusable), (Framing::Chunked, true));
        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.reusable), (Framing::Chunked, false));
        let h = head("HTTP/1.1 200 OK\r\n\r\n", &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.reusable), (Framing::UntilClose, false));
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            &Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.reusable), (Framing::Empty, true));
        let h = head(
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(!h.reusable);
        let h = head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", &Method::GET)
            .unwrap()
            .unwrap();
        assert!(!h.reusable, "HTTP/1.0 closes unless it says keep-alive");
        let h = head(
            "HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(h.reusable);
    }

    #[test]
    fn interim_responses_are_skipped_and_partial_heads_wait() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
        );
        let h = parse_response_head(&mut buf, &Method::POST)
            .unwrap()
            .unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        assert!(buf.is_empty());
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le", &Method::GET)
            .unwrap()
            .is_none());
        let h = head(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(!h.reusable);
    }

    #[test]
    fn ambiguous_or_broken_heads_are_refused() {
        for text in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1x\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "SPDY/3 200 OK\r\n\r\n",
        ] {
            assert!(head(text, &Method::GET).is_err(), "{text:?}");
        }
        let same = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(same.framing, Framing::Length(5));
        let huge = format!("HTTP/1.1 200 OK\r\nx: {}\r\n", "a".repeat(MAX_HEAD));
        assert!(head(&huge, &Method::GET).is_err());
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, HeaderMap), Malformed> {
        // Fed one byte at a time: every split point must work.
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in input {
            buf.extend_from_slice(&[*b]);
            loop {
                match decoder.decode(&mut buf)? {
                    Chunk::Data(d) => out.extend_from_slice(&d),
                    Chunk::End(trailers) => return Ok((out, trailers)),
                    Chunk::More => break,
                }
            }
        }
        Err(Malformed("incomplete"))
    }

    #[test]
    fn chunked_bodies_decode_at_any_split_with_trailers() {
        let (body, trailers) =
            decode_all(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-check: 9\r\n\r\n").unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(trailers["x-check"], "9");
        let (body, trailers) = decode_all(b"A\r\n0123456789\r\n0\r\n\r\n").unwrap();
        assert_eq!(body, b"0123456789");
        assert!(trailers.is_empty());
    }

    #[test]
    fn broken_chunked_bodies_are_refused() {
        for input in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"x\r\n",
            b"11111111111111111\r\n",
            b"-1\r\n",
        ] {
            assert!(
                decode_all(input).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn trailers_with_a_bare_line_end_are_refused_not_read_past() {
        // Read whole, as a pipelined request behind them would be: without the check the
        // bare LF hides the section's end and the next request's head becomes trailers.
        for input in [
            &b"0\r\nx-a: 1\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"0\r\nx-a: 1\r\nx-b: 2\rx\r\n\r\n",
        ] {
            let mut decoder = ChunkedDecoder::default();
            let mut buf = BytesMut::from(input);
            assert_eq!(
                decoder.decode(&mut buf),
                Err(Malformed("a trailer line does not end in CRLF")),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // A well-formed section followed by more bytes is read to its own end only.
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::from(&b"0\r\nx-a: 1\r\n\r\nGET /\n"[..]);
        assert!(matches!(decoder.decode(&mut buf), Ok(Chunk::End(_))));
        assert_eq!(&buf[..], b"GET /\n");
    }
}
