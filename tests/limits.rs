//! Limits on what a client may send: URI length, header size and count, body size per
//! route (413, before or while streaming), and the header, body and idle timeouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(backend: &Backend, server: &str) -> String {
    format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n\n\
         [[routes]]\nname = \"uploads\"\nmatch.path = {{ prefix = \"/upload\" }}\naction = \"forward\"\nupstream = \"legacy\"\nmax_body = 1000\n\n\
         [server]\nlisten = \"127.0.0.1:0\"\n{server}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        backend.url()
    )
}

async fn start(backend: &Backend, server: &str) -> banyan::server::Running {
    banyan::server::start(common::config(&config(backend, server)))
        .await
        .unwrap()
}

/// Write raw bytes and read the answer until the connection closes or `wait` passes.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[tokio::test]
async fn uri_headers_and_bodies_over_the_limits_are_refused() {
    let legacy = Backend::start("legacy").await;
    let b = start(
        &legacy,
        "max_uri_bytes = 100\nmax_headers = 20\nmax_header_bytes = 8192\nmax_body = 5000",
    )
    .await;
    let long = format!("/{}", "a".repeat(100));
    assert_eq!(get(b.proxy_addr, &long, &[]).await.status, 414);
    let ok = format!("/{}", "a".repeat(98));
    assert_eq!(get(b.proxy_addr, &ok, &[]).await.status, 200);

    let many: Vec<(String, String)> = (0..25).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let got = raw(
        b.proxy_addr,
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
            many.iter()
                .map(|(k, v)| format!("{k}: {v}\r\n"))
                .collect::<String>()
        )
        .as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status(&got), 431, "{got}");
    assert!(
        got.to_ascii_lowercase()
            .contains("x-banyan-error: headers_too_large"),
        "{got}"
    );
    let got = raw(
        b.proxy_addr,
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "b".repeat(9000)
        )
        .as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status(&got), 431, "{got}");
    assert!(
        got.to_ascii_lowercase()
            .contains("x-banyan-error: headers_too_large"),
        "{got}"
    );

    // The route's own limit (1000) and the server's (5000), declared up front: refused
    // before anything reaches the upstream.
    let before = legacy.count();
    let got = call(b.proxy_addr, "POST", "/upload/a", &[], &"x".repeat(1001)).await;
    assert_eq!(got.status, 413);
    assert_eq!(got.header("x-banyan-error"), Some("body_too_large"));
    let got = call(b.proxy_addr, "POST", "/other", &[], &"x".repeat(5001)).await;
    assert_eq!(got.status, 413);
    assert_eq!(legacy.count(), before);
    let got = call(b.proxy_addr, "POST", "/upload/a", &[], &"x".repeat(1000)).await;
    assert_eq!(got.status, 200);

    // Chunked, with no length declared: cut off as it passes the limit.
    let mut chunked =
        String::from("POST /upload/b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..3 {
        chunked.push_str(&format!("1f4\r\n{}\r\n", "y".repeat(500)));
    }
    chunked.push_str("0\r\n\r\n");
    let got = raw(b.proxy_addr, chunked.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status(&got), 413, "{got}");
    assert!(
        legacy
            .requests()
            .iter()
            .all(|r| r.uri.path() != "/upload/b" || r.body_len <= 1000),
        "the upstream never gets more than the limit"
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let legacy = Backend::start("legacy").await;
    let b = start(
        &legacy,
        "header_timeout = \"500ms\"\nbody_timeout = \"500ms\"\nidle_timeout = \"700ms\"",
    )
    .await;

    // Slow headers (slowloris): the connection closes without a request reaching anyone.
    let mut s = TcpStream::connect(b.proxy_addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection must be closed");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(legacy.count(), 0);

    // A body that stops arriving: 408.
    let mut s = TcpStream::connect(b.proxy_addr).await.unwrap();
    s.write_all(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let answer = String::from_utf8_lossy(&out);
    assert_eq!(status(&answer), 408, "{answer}");

    // An idle keep-alive connection is closed after a request was served.
    let mut s = TcpStream::connect(b.proxy_addr).await.unwrap();
    s.write_all(b"GET /idle HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection closed"
    );
}

#[tokio::test]
async fn header_timeout_bounds_heads_not_idle_keep_alive_connections() {
    let legacy = Backend::start("legacy").await;
    // An idle timeout longer than the test: any close below comes from header_timeout.
    let b = start(&legacy, "header_timeout = \"300ms\"\nidle_timeout = \"1h\"").await;
    let mut buf = vec![0u8; 4096];

    // A keep-alive connection idle for longer than header_timeout still takes requests.
    let mut s = TcpStream::connect(b.proxy_addr).await.unwrap();
    for path in ["/first", "/after-a-pause"] {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let n = s.read(&mut buf).await.unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer:?}");
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    assert_eq!(legacy.count(), 2);

    // A connection that never sends a request, and a head begun after a pause on a
    // kept-alive connection, are closed by header_timeout.
    let mut silent = TcpStream::connect(b.proxy_addr).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "silent client closed"
    );
    s.write_all(b"GET /slow-head HTTP/1.1\r\n").await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "slow head closed");
    assert_eq!(legacy.count(), 2);
}

#[tokio::test]
async fn http2_idle_connections_close_too() {
    let legacy = Backend::start("legacy").await;
    let b = start(&legacy, "idle_timeout = \"500ms\"").await;
    let stream = TcpStream::connect(b.proxy_addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/h2", b.proxy_addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the server ends an idle HTTP/2 connection");
}

/// Raw HTTP/2 frames, to send what no well-behaved client library would.
mod h2raw {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const CANCEL: u32 = 0x8;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
    pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;

    #[derive(Debug)]
    pub struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    impl Frame {
        /// The error code of a RST_STREAM or GOAWAY frame.
        pub fn error_code(&self) -> u32 {
            let at = if self.kind == GOAWAY { 4 } else { 0 };
            u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
        }

        pub fn settings(&self) -> Vec<(u16, u32)> {
            self.payload
                .chunks_exact(6)
                .map(|c| {
                    let id = u16::from_be_bytes([c[0], c[1]]);
                    (id, u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
                })
                .collect()
        }
    }

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend([kind, flags]);
        out.extend(stream.to_be_bytes());
        out.extend(payload);
        out
    }

    /// The client preface and an empty SETTINGS frame.
    pub fn preface() -> Vec<u8> {
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        out
    }

    /// An HPACK integer with an `n`-bit prefix, the byte's other bits being `flags`.
    fn integer(out: &mut Vec<u8>, flags: u8, n: u32, mut value: usize) {
        let max = (1usize << n) - 1;
        if value < max {
            out.push(flags | value as u8);
            return;
        }
        out.push(flags | max as u8);
        value -= max;
        while value >= 128 {
            out.push((value % 128) as u8 | 0x80);
            value /= 128;
        }
        out.push(value as u8);
    }

    /// A header field "never indexed" (no dynamic table state): the name by its static
    /// table index when it has one, else literally.
    pub fn literal(out: &mut Vec<u8>, name: Result<usize, &str>, value: &str) {
        match name {
            Ok(index) => integer(out, 0x10, 4, index),
            Err(name) => {
                out.push(0x10);
                integer(out, 0, 7, name.len());
                out.extend(name.as_bytes());
            }
        }
        integer(out, 0, 7, value.len());
        out.extend(value.as_bytes());
    }

    /// The header block of `GET path` (static table: :method GET, :scheme http).
    pub fn get(path: &str) -> Vec<u8> {
        let mut out = vec![0x82, 0x86];
        literal(&mut out, Ok(4), path);
        literal(&mut out, Ok(1), "localhost");
        out
    }

    /// Every frame the server sends until it closes the connection (or `limit` passes).
    pub async fn read_all(stream: &mut TcpStream, limit: Duration) -> Vec<Frame> {
        read_until(stream, limit, |_| false).await
    }

    /// The frames the server sends until `enough` says so, a GOAWAY, the connection's
    /// end, or `limit`.
    pub async fn read_until(
        stream: &mut TcpStream,
        limit: Duration,
        enough: impl Fn(&[Frame]) -> bool,
    ) -> Vec<Frame> {
        let mut frames = Vec::new();
        let read = async {
            loop {
                let mut head = [0u8; 9];
                if stream.read_exact(&mut head).await.is_err() {
                    return;
                }
                let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                let mut payload = vec![0; len];
                if stream.read_exact(&mut payload).await.is_err() {
                    return;
                }
                let stream_id = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
                let ended = head[3] == GOAWAY;
                frames.push(Frame {
                    kind: head[3],
                    flags: head[4],
                    stream: stream_id,
                    payload,
                });
                if ended || enough(&frames) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(limit, read).await;
        frames
    }

    /// The error code of the GOAWAY that ended the connection.
    pub fn goaway_code(frames: &[Frame]) -> u32 {
        frames
            .iter()
            .find(|f| f.kind == GOAWAY)
            .unwrap_or_else(|| panic!("no GOAWAY in {frames:?}"))
            .error_code()
    }

    /// Send the bytes, ignoring a write the server refuses by closing.
    pub async fn send(stream: &mut TcpStream, bytes: &[u8]) {
        let _ = stream.write_all(bytes).await;
    }
}

/// A plain HTTP/2 GET on a fresh connection, as a well-behaved client sends it.
async fn h2_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{addr}{path}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    sender.send_request(req).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn http2_rapid_reset_ends_the_connection() {
    use h2raw::*;
    let legacy = Backend::start("legacy").await;
    let b = start(&legacy, "").await;
    let mut s = TcpStream::connect(b.proxy_addr).await.unwrap();
    let sent = 1000u32;
    let mut out = preface();
    for i in 0..sent {
        let id = 2 * i + 1;
        out.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &get("/rapid")));
        out.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    send(&mut s, &out).await;
    let frames = read_all(&mut s, Duration::from_secs(10)).await;
    assert_eq!(goaway_code(&frames), ENHANCE_YOUR_CALM);
    assert!(
        legacy.count() < sent as usize / 10,
        "the upstream saw {} of {sent} reset requests",
        legacy.count()
    );
    // Other clients are served.
    assert_eq!(h2_get(b.proxy_addr, "/after").await, 200);
}

#[tokio::test]
async fn http2_continuation_flood_is_refused_without_reaching_the_upstream() {
    use h2raw::*;
    let legacy = Backend::start("legacy").await;
    let b = start(&legacy, "").await;
    let mut s = TcpStream::connect(b.proxy_addr).await.unwrap();
    let mut out = preface();
    out.extend(frame(HEADERS, END_STREAM, 1, &get("/flood")));
    let mut junk = Vec::new();
    literal(&mut junk, Err("x-junk"), &"a".repeat(1000));
    // 1 MB of header list, sixteen times the 64 KiB limit, never ending.
    for _ in 0..1000 {
        out.extend(frame(CONTINUATION, 0, 1, &junk));
    }
    send(&mut s, &out).await;
    let frames = read_all(&mut s, Duration::from_secs(10)).await;
    assert_eq!(goaway_code(&frames), ENHANCE_YOUR_CALM);
    assert_eq!(legacy.count(), 0, "nothing reached the upstream");
    assert_eq!(h2_get(b.proxy_addr, "/after").await, 200);
}

#[tokio::test]
async fn http2_streams_past_max_concurrent_streams_are_refused() {
    use h2raw::*;
    // A slow upstream keeps the first streams open while the others arrive.
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok("slow").delay(Duration::from_millis(1500))
    })
    .await;
    let b = start(&legacy, "max_concurrent_streams = 4").await;
    let mut s = TcpStream::connect(b.proxy_addr).await.unwrap();
    let mut out = preface();
    for id in [1u32, 3, 5, 7, 9, 11] {
        out.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &get("/slow")));
    }
    send(&mut s, &out).await;
    // Until every stream has its answer: two refusals and four responses.
    let frames = read_until(&mut s, Duration::from_secs(10), |frames| {
        frames
            .iter()
            .filter(|f| f.stream != 0 && (f.kind == RST_STREAM || f.kind == HEADERS))
            .count()
            == 6
    })
    .await;
    let settings = frames
        .iter()
        .find(|f| f.kind == SETTINGS && f.flags == 0)
        .expect("the server's SETTINGS");
    assert!(settings
        .settings()
        .contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 4)));
    let refused: Vec<u32> = frames
        .iter()
        .filter(|f| f.kind == RST_STREAM && f.error_code() == REFUSED_STREAM)
        .map(|f| f.stream)
        .collect();
    assert_eq!(refused, [9, 11]);
    // :status 200 is HPACK static entry 8 (0x88).
    let mut answered: Vec<u32> = frames
        .iter()
        .filter(|f| f.kind == HEADERS && f.payload.first() == Some(&0x88))
        .map(|f| f.stream)
        .collect();
    answered.sort();
    assert_eq!(answered, [1, 3, 5, 7]);
    assert_eq!(legacy.count(), 4);
}

/// Past `max_connections` open connections, a new one is closed at once and counted;
/// once one closes, a new one is served.
#[tokio::test]
async fn connections_past_max_connections_are_closed_and_counted() {
    let legacy = Backend::start("legacy").await;
    let b = start(&legacy, "max_connections = 2").await;
    let refused = || async { metric(b.admin_addr, "banyan_connections_refused_total").await };
    let before = refused().await;
    let first = TcpStream::connect(b.proxy_addr).await.unwrap();
    let mut second = TcpStream::connect(b.proxy_addr).await.unwrap();
    // Both are held (a request on one proves the accept loop has taken them).
    second
        .write_all(b"GET /held HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    second.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf[9..12], b"200");
    let mut third = TcpStream::connect(b.proxy_addr).await.unwrap();
    let _ = third
        .write_all(b"GET /third HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "the connection past the cap stayed open");
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert_eq!(refused().await, before + 1.0);
    assert!(!legacy.requests().iter().any(|s| s.uri.path() == "/third"));
    drop(first);
    let served = eventually(Duration::from_secs(5), || async {
        let got = raw(
            b.proxy_addr,
            b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Duration::from_secs(2),
        )
        .await;
        got.starts_with("HTTP/1.1 200")
    })
    .await;
    assert!(served, "a freed slot was not reused");
}
