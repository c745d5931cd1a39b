//! A strict reader of HTTP/1 request framing, fed every byte a client sends before
//! hyper parses it. hyper (like most servers) accepts a bare LF as a line end; a backend
//! or another proxy in the path may not, and framing two parties read differently is
//! how requests are smuggled. This follows heads and bodies (Content-Length or chunked)
//! and stops the connection at the first line that does not end in CRLF. Anything it
//! cannot follow (an upgrade, HTTP/2, a head too large for hyper anyway) turns it off
//! for the rest of the connection: hyper's own checks still apply there.

/// The head buffer a connection keeps between requests, at most: most heads fit.
const KEPT_HEAD_CAPACITY: usize = 4096;

/// The first bytes of an HTTP/2 connection (prior knowledge).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// The line structure of a request's framing is broken, or its head is over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation(pub &'static str);

/// A head with more header fields than `max_headers`, or more bytes than
/// `max_header_bytes`: answered 431, before hyper would answer it without saying why.
pub const HEADERS_TOO_LARGE: Violation = Violation("the request has too many or too large headers");

impl Violation {
    /// The status banyan answers with, when it can still answer.
    pub fn status(self) -> http::StatusCode {
        if self == HEADERS_TOO_LARGE {
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        } else {
            http::StatusCode::BAD_REQUEST
        }
    }
}

#[derive(Debug)]
pub struct Framing {
    state: State,
    /// The head read so far (bounded by `max_head`).
    head: Vec<u8>,
    max_head: usize,
    /// Header fields a head may have.
    max_headers: usize,
    /// The previous byte was CR.
    after_cr: bool,
    /// Bytes seen since the connection began, to recognise HTTP/2's preface.
    seen: usize,
    /// Bytes of the head's current line so far.
    line_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// A body of fixed length: bytes left.
    Fixed(u64),
    /// A chunk-size line: its value so far and whether its digits ended (an extension).
    ChunkSize {
        size: u64,
        digits: u32,
        ext: bool,
    },
    /// Chunk data: bytes left, then CRLF.
    ChunkData(u64),
    ChunkDataEnd,
    /// Trailer lines after the last chunk: bytes in the current line.
    Trailers(usize),
    /// Not followed any more (upgrade, HTTP/2, oversized head).
    Off,
}

impl Framing {
    pub fn new(max_head: usize, max_headers: usize) -> Self {
        Framing {
            state: State::Head,
            head: Vec::new(),
            max_head,
            max_headers,
            after_cr: false,
            seen: 0,
            line_len: 0,
        }
    }

    /// Part of a request head has arrived, and not all of it: the client is sending a
    /// head, which `header_timeout` bounds (an idle connection is not).
    pub fn in_head(&self) -> bool {
        self.state == State::Head && !self.head.is_empty()
    }

    /// Read `bytes`, the next ones the client sent.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Violation> {
        let mut rest = bytes;
        while let Some((&b, after)) = rest.split_first() {
            // Body bytes are counted in bulk, not looked at one by one.
            let bulk = match self.state {
                State::Off => return Ok(()),
                State::Fixed(left) | State::ChunkData(left) if left > 1 => {
                    (left - 1).min(rest.len() as u64) as usize
                }
                _ => 0,
            };
            // Inside a head (past the HTTP/2 preface's reach): scanned as a run.
            if self.state == State::Head
                && self.seen >= H2_PREFACE.len()
                && !self.head.is_empty()
                && self.head != b"\r"
            {
                let used = self.head_run(rest)?;
                self.seen = self.seen.saturating_add(used);
                rest = &rest[used..];
                continue;
            }
            if bulk > 0 {
                self.state = match self.state {
                    State::Fixed(left) => State::Fixed(left - bulk as u64),
                    State::ChunkData(left) => State::ChunkData(left - bulk as u64),
                    other => other,
                };
                self.seen = self.seen.saturating_add(bulk);
                rest = &rest[bulk..];
                continue;
            }
            self.seen = self.seen.saturating_add(1);
            self.step(b)?;
            rest = after;
        }
        Ok(())
    }

    fn line_end(&mut self, b: u8) -> Result<bool, Violation> {
        let was_cr = self.after_cr;
        self.after_cr = b == b'\r';
        match b {
            b'\n' if !was_cr => Err(Violation("a line ends in LF without CR")),
            b'\n' => Ok(true),
            _ if was_cr => Err(Violation("a CR not followed by LF")),
            _ => Ok(false),
        }
    }

    fn step(&mut self, b: u8) -> Result<(), Violation> {
        match self.state {
            State::Off => Ok(()),
            State::Head => self.head_byte(b),
            State::Fixed(left) => {
                self.state = if left <= 1 {
                    State::Head
                } else {
                    State::Fixed(left - 1)
                };
                Ok(())
            }
            State::ChunkSize { size, digits, ext } => {
                if self.line_end(b)? {
                    if digits == 0 {
                        return Err(Violation("a chunk without a size"));
                    }
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                    return Ok(());
                }
                if b == b'\r' {
                    return Ok(());
                }
                match (ext, (b as char).to_digit(16)) {
                    (false, Some(d)) => {
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .ok_or(Violation("a chunk size beyond 64 bits"))?;
                        self.state = State::ChunkSize {
                            size,
                            digits: digits + 1,
                            ext,
                        };
                    }
                    (false, None) if b == b';' || b == b' ' || b == b'\t' => {
                        self.state = State::ChunkSize {
                            size,
                            digits,
                            ext: true,
                        };
                    }
                    (false, None) => return Err(Violation("a chunk size that is not hex")),
                    (true, _) => {}
                }
                Ok(())
            }
            State::ChunkData(left) => {
                self.state = if left <= 1 {
                    State::ChunkDataEnd
                } else {
                    State::ChunkData(left - 1)
                };
                Ok(())
            }
            State::ChunkDataEnd => {
                if self.line_end(b)? {
                    self.state = State::ChunkSize {
                        size: 0,
                        digits: 0,
                        ext: false,
                    };
                } else if b != b'\r' {
                    return Err(Violation("chunk data longer than its size"));
                }
                Ok(())
            }
            State::Trailers(len) => {
                if self.line_end(b)? {
                    self.state = if len == 0 {
                        State::Head
                    } else {
                        State::Trailers(0)
                    };
                } else if b != b'\r' {
                    self.state = State::Trailers(len + 1);
                }
                Ok(())
            }
        }
    }

    fn head_byte(&mut self, b: u8) -> Result<(), Violation> {
        // Empty lines before a request line are allowed (RFC 9112 2.2).
        let at_start = self.head.is_empty() || self.head == b"\r";
        let end = self.line_end(b)?;
        self.line_len = if end { 0 } else { self.line_len + 1 };
        if at_start && end {
            self.head.clear();
            return Ok(());
        }
        self.head.push(b);
        if self.seen <= H2_PREFACE.len() && self.head == H2_PREFACE {
            self.state = State::Off;
            return Ok(());
        }
        let complete = end && self.head.ends_with(b"\r\n\r\n");
        // hyper gives up on a head that fills its buffer (max_header_bytes) unfinished.
        if self.head.len() > self.max_head || (!complete && self.head.len() >= self.max_head) {
            return Err(HEADERS_TOO_LARGE);
        }
        if complete {
            self.state = body_framing(&self.head, self.max_headers)?;
            self.head_done();
        }
        Ok(())
    }

    /// A head was read whole: keep its buffer for the next one, unless one large head
    /// made it large (it would stay with the connection while it idles).
    fn head_done(&mut self) {
        if self.head.capacity() > KEPT_HEAD_CAPACITY {
            self.head = Vec::new();
        } else {
            self.head.clear();
        }
    }

    /// The rest of a head that has begun: the same checks as `head_byte`, in one pass
    /// over the bytes. Returns how many bytes it used (up to the end of the head).
    fn head_run(&mut self, rest: &[u8]) -> Result<usize, Violation> {
        let (mut after_cr, mut line_len) = (self.after_cr, self.line_len);
        let mut i = 0;
        while i < rest.len() {
            if after_cr {
                // After a CR only an LF may come.
                if rest[i] != b'\n' {
                    return Err(Violation("a CR not followed by LF"));
                }
                let empty_line = line_len == 1;
                (after_cr, line_len) = (false, 0);
                if empty_line {
                    self.head.extend_from_slice(&rest[..=i]);
                    if self.head.len() > self.max_head {
                        return Err(HEADERS_TOO_LARGE);
                    }
                    self.state = body_framing(&self.head, self.max_headers)?;
                    self.head_done();
                    (self.after_cr, self.line_len) = (false, 0);
                    return Ok(i + 1);
                }
                i += 1;
                continue;
            }
            // Jump to the next CR or LF (memchr scans words at a time, not bytes).
            match memchr::memchr2(b'\r', b'\n', &rest[i..]) {
                None => {
                    line_len += rest.len() - i;
                    i = rest.len();
                }
                Some(k) if rest[i + k] == b'\n' => {
                    return Err(Violation("a line ends in LF without CR"));
                }
                Some(k) => {
                    line_len += k + 1;
                    after_cr = true;
                    i += k + 1;
                }
            }
        }
        self.head.extend_from_slice(rest);
        (self.after_cr, self.line_len) = (after_cr, line_len);
        // hyper gives up on a head that fills its buffer (max_header_bytes) unfinished.
        if self.head.len() >= self.max_head {
            return Err(HEADERS_TOO_LARGE);
        }
        Ok(rest.len())
    }
}

/// What follows a complete head: nothing, a fixed-length body, chunks, or something
/// this reader does not follow.
fn body_framing(head: &[u8], max_headers: usize) -> Result<State, Violation> {
    // Every line but the request line and the empty one is a header field.
    let fields = memchr::memchr_iter(b'\n', head).count().saturating_sub(2);
    if fields > max_headers {
        return Err(HEADERS_TOO_LARGE);
    }
    // Uninitialised slots: zeroing 128 of them would cost more than the parse.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; 128];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, head, &mut slots);
    if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
        // hyper refuses what httparse cannot parse, and closes the connection.
        return Ok(State::Off);
    }
    if req.method == Some("CONNECT") {
        return Ok(State::Off);
    }
    let has = |name: &str| {
        req.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    if has("upgrade") {
        return Ok(State::Off);
    }
    // hyper would drop the Content-Length and go by the chunks (RFC 9112 6.3), but a
    // request that carries both was built to be read two ways: refuse it.
    if has("transfer-encoding") {
        if has("content-length") {
            return Err(Violation("both Content-Length and Transfer-Encoding"));
        }
        let mut codings = req
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
        let chunked_alone = match (codings.next(), codings.next()) {
            (Some(one), None) => super::head::is_chunked_alone(one.value),
            _ => false,
        };
        if !chunked_alone {
            return Err(Violation("a Transfer-Encoding other than chunked alone"));
        }
        return Ok(State::ChunkSize {
            size: 0,
            digits: 0,
            ext: false,
        });
    }
    let length = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
    Ok(match length {
        None | Some(Some(0)) => State::Head,
        Some(Some(n)) => State::Fixed(n),
        // Ambiguous lengths are hyper's to refuse.
        Some(None) => State::Off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> Result<(), Violation> {
        let mut f = Framing::new(1024, 100);
        f.feed(input)
    }

    fn run_split(input: &[u8]) -> Result<(), Violation> {
        // Byte by byte: the reader keeps its place across reads.
        let mut f = Framing::new(1024, 100);
        input
            .iter()
            .try_for_each(|b| f.feed(std::slice::from_ref(b)))
    }

    #[test]
    fn well_formed_streams_pass() {
        let ok: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhe\nlo GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhe\nlo\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\n",
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\n\n\x00",
        ];
        for input in ok {
            assert_eq!(run(input), Ok(()), "{}", String::from_utf8_lossy(input));
            assert_eq!(
                run_split(input),
                Ok(()),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn broken_line_ends_and_chunks_are_violations() {
        let bad: &[&[u8]] = &[
            b"GET / HTTP/1.1\nHost: a\n\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: b\rY: c\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000000005\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            // The second request of a pipeline is checked as well.
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGET / HTTP/1.1\nHost: a\n\n",
        ];
        for input in bad {
            assert!(run(input).is_err(), "{}", String::from_utf8_lossy(input));
            assert!(
                run_split(input).is_err(),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_head_is_in_progress_from_its_first_byte_to_its_end() {
        let mut f = Framing::new(1024, 100);
        assert!(!f.in_head(), "a connection that has sent nothing");
        f.feed(b"GET / HT").unwrap();
        assert!(f.in_head());
        f.feed(b"TP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab")
            .unwrap();
        assert!(!f.in_head(), "in the body");
        f.feed(b"cGET /2 HTTP/1.1\r\n").unwrap();
        assert!(f.in_head(), "a pipelined head begun");
        f.feed(b"Host: a\r\n\r\n").unwrap();
        assert!(!f.in_head(), "idle between requests");
        let mut h2 = Framing::new(1024, 100);
        h2.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        assert!(!h2.in_head(), "HTTP/2 is not followed");
    }

    #[test]
    fn a_large_head_does_not_stay_with_the_connection() {
        let mut f = Framing::new(64 * 1024, 100);
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "b".repeat(20_000)
        );
        f.feed(big.as_bytes()).unwrap();
        assert!(
            f.head.capacity() <= KEPT_HEAD_CAPACITY,
            "{}",
            f.head.capacity()
        );
        f.feed(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
        f.feed(b"\r\n").unwrap();
        assert!(
            f.head.capacity() > 0,
            "a small head's buffer is kept for the next"
        );
    }

    #[test]
    fn heads_over_a_limit_are_refused_with_431() {
        let mut f = Framing::new(16, 100);
        let head = format!("GET /{} HTTP/1.1\r\nHost: a\r\n", "a".repeat(64));
        assert_eq!(f.feed(head.as_bytes()), Err(HEADERS_TOO_LARGE));
        let mut f = Framing::new(1024, 2);
        assert_eq!(f.feed(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n"), Ok(()));
        let three = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(f.feed(three), Err(HEADERS_TOO_LARGE));
        assert_eq!(HEADERS_TOO_LARGE.status().as_u16(), 431);
    }
}
