//! Request smuggling: malformed requests over raw TCP. Each must get a 400 (or a closed
//! connection), and the upstream, which records every byte it receives, must see
//! nothing of them: no request smuggled through, none in another form than banyan's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that keeps every byte it receives and answers each read with one small
/// response: it parses nothing, so nothing can hide from it.
struct RawRecorder {
    addr: std::net::SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawRecorder {
    async fn start() -> RawRecorder {
        Self::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await
    }

    /// One that answers every read with `reply`.
    async fn answering(reply: &'static [u8]) -> RawRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let log = bytes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                        // Enough for one small request per read, which is all the
                        // control requests send.
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RawRecorder { addr, bytes, task }
    }

    fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.bytes.lock().unwrap())).into_owned()
    }
}

/// banyan with `upstream` as its one (default) upstream.
async fn in_front_of(upstream: &RawRecorder) -> banyan::server::Running {
    banyan(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://{}\"]\n",
        upstream.addr
    ))
    .await
}

/// Send raw bytes, read until the connection closes (or 2 s pass), return what came back.
async fn exchange(proxy: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    // The peer may close before taking everything: that is one of the accepted outcomes.
    let _ = stream.write_all(raw).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The first status line's code, or None for a closed connection with no answer.
fn status_of(answer: &str) -> Option<u16> {
    let line = answer.lines().next()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

const CORPUS: &[(&str, &str)] = &[
    (
        "content-length with transfer-encoding",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "transfer-encoding with content-length after it",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "conflicting content-lengths",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "two values in one content-length",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 40\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "negative content-length",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "content-length with a plus sign",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
    ),
    (
        "transfer-encoding not ending in chunked",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "obfuscated transfer-encoding",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "transfer-encoding on HTTP/1.0",
        "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "bad chunk size",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunk size overflowing 64 bits",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000000005\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunk size with a bare LF",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    ),
    (
        "obs-fold continuation line",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
    ),
    (
        "obs-fold hiding transfer-encoding",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "bare LF line endings",
        "GET / HTTP/1.1\nHost: a\nX-A: b\n\n",
    ),
    (
        "whitespace before the colon",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    ),
    (
        "whitespace before the first header",
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    ),
    (
        "absolute-form with a different Host",
        "GET http://internal.example/admin HTTP/1.1\r\nHost: shop.example\r\n\r\n",
    ),
    ("HTTP/0.9 request", "GET /\r\n\r\n"),
    ("unknown protocol version", "GET / HTTP/2.7\r\nHost: a\r\n\r\n"),
    (
        "overlong request line",
        "GET /LONG HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "overlong header line",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Long: LONG\r\n\r\n",
    ),
    (
        "too many headers",
        "GET / HTTP/1.1\r\nHost: a\r\nMANY\r\n",
    ),
    ("invalid method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("method with a space", "GET /x /y HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("control byte in the path", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("NUL in a header value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"),
    ("no Host on HTTP/1.1", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
    (
        "two Host headers",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ),
    (
        "transfer-encoding gzip, chunked",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "transfer-encoding identity, chunked",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "transfer-encoding chunked, chunked",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    (
        "two transfer-encoding headers",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    ("host that is a list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"),
    ("host with a path", "GET / HTTP/1.1\r\nHost: evil/x\r\n\r\n"),
    ("host with user info", "GET / HTTP/1.1\r\nHost: u@evil\r\n\r\n"),
    (
        "host hiding another behind user info",
        "GET / HTTP/1.1\r\nHost: public.example@internal.example\r\n\r\n",
    ),
    ("host with a port past 65535", "GET / HTTP/1.1\r\nHost: h:99999\r\n\r\n"),
    ("host with a port that is not a number", "GET / HTTP/1.1\r\nHost: h:abc\r\n\r\n"),
    (
        "absolute-form target with user info",
        "GET http://u@evil/x HTTP/1.1\r\nHost: u@evil\r\n\r\n",
    ),
    (
        "CONNECT, which no route allows",
        "CONNECT internal.example:22 HTTP/1.1\r\nHost: internal.example:22\r\n\r\nSSH-2.0-x\r\n",
    ),
    (
        "TRACE, which no route allows",
        "TRACE / HTTP/1.1\r\nHost: a\r\nCookie: session=secret\r\n\r\n",
    ),
    (
        "CR without LF in a header",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rTransfer-Encoding: chunked\r\n\r\n",
    ),
];

/// Fill the placeholders: overlong lines and header counts beyond banyan's limits.
fn expand(raw: &str) -> String {
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    raw.replace("/LONG", &format!("/{}", "a".repeat(20_000)))
        .replace("LONG", &"b".repeat(80_000))
        .replace("MANY\r\n", &format!("{many}\r\n"))
}

#[tokio::test]
async fn malformed_requests_are_refused_and_never_reach_the_upstream() {
    let upstream = RawRecorder::start().await;
    let b = in_front_of(&upstream).await;

    // The recorder sees a well-formed request, so an empty record below means something.
    let control = exchange(
        b.proxy_addr,
        b"GET /control HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&control), Some(200), "{control}");
    assert!(upstream.take().starts_with("GET /control HTTP/1.1\r\n"));

    let mut failures = Vec::new();
    for (name, raw) in CORPUS {
        let answer = exchange(b.proxy_addr, expand(raw).as_bytes()).await;
        let status = status_of(&answer);
        let reached = upstream.take();
        let refused = match status {
            None => answer.is_empty(),
            Some(code) => (400..500).contains(&code),
        };
        let second_answer = answer.matches("HTTP/1.").count() > 1;
        if !refused || !reached.is_empty() || second_answer {
            let first_line = |s: &str| {
                s.lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(80)
                    .collect::<String>()
            };
            failures.push(format!(
                "{name}: answered {:?}, upstream received {:?}",
                first_line(&answer),
                first_line(&reached)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "smuggling corpus:\n{}",
        failures.join("\n")
    );

    // banyan still serves well-formed requests afterwards.
    let after = exchange(
        b.proxy_addr,
        b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&after), Some(200), "{after}");
    assert!(!upstream.take().contains("smuggled"));
}

/// An h2c upgrade is never forwarded: were the backend to switch (this one switches to
/// whatever it is asked), banyan would tunnel raw bytes past its framing reader, and a
/// CL+TE request sent next would reach the backend verbatim.
#[tokio::test]
async fn h2c_upgrades_are_never_forwarded_or_tunnelled() {
    let upstream = RawRecorder::answering(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    let b = in_front_of(&upstream).await;
    let answer = exchange(
        b.proxy_addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n\
          POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    let reached = upstream.take().to_ascii_lowercase();
    assert!(!reached.contains("h2c"), "{reached}");
    assert!(!reached.contains("http2-settings"), "{reached}");
    assert!(!reached.contains("smuggled"), "{reached}");
    assert!(!reached.contains("transfer-encoding"), "{reached}");
    // The backend switched unasked: 502, and the connection ends there.
    assert_eq!(status_of(&answer), Some(502), "{answer}");
    assert!(answer.contains("upstream_unrequested_upgrade"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.").count(), 1, "{answer}");
}

/// A websocket upgrade answered with a switch to another protocol is not tunnelled.
#[tokio::test]
async fn a_switch_to_a_protocol_not_asked_for_is_a_502() {
    let upstream = RawRecorder::answering(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    let b = in_front_of(&upstream).await;
    let answer = exchange(
        b.proxy_addr,
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw bytes",
    )
    .await;
    assert_eq!(status_of(&answer), Some(502), "{answer}");
    assert!(upstream.take().contains("upgrade: websocket"));
}

/// `x-banyan-shadow` tells a backend that a request is a copy: a client cannot forge it,
/// nor any other header banyan owns.
#[tokio::test]
async fn headers_banyan_owns_are_stripped_from_client_requests() {
    let upstream = RawRecorder::start().await;
    let b = in_front_of(&upstream).await;
    let answer = exchange(
        b.proxy_addr,
        b"GET /x HTTP/1.1\r\nHost: a\r\nX-Banyan-Shadow: 1\r\nx-banyan-error: forged\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    let reached = upstream.take().to_ascii_lowercase();
    assert!(reached.starts_with("get /x http/1.1"), "{reached}");
    assert!(!reached.contains("x-banyan-"), "{reached}");
}

/// A route may allow TRACE; CONNECT and TRACE stay refused elsewhere.
#[tokio::test]
async fn trace_is_forwarded_only_where_a_route_allows_it() {
    let upstream = RawRecorder::start().await;
    let b = banyan(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://{}\"]\n\
         [[routes]]\nname = \"debug\"\nmatch = {{ path = {{ prefix = \"/debug/\" }} }}\naction = \"forward\"\nupstream = \"legacy\"\nallow_methods = [\"TRACE\"]\n",
        upstream.addr
    ))
    .await;
    let refused = exchange(
        b.proxy_addr,
        b"TRACE /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&refused), Some(405), "{refused}");
    assert!(refused.contains("method_not_allowed"), "{refused}");
    assert!(upstream.take().is_empty());
    let allowed = exchange(
        b.proxy_addr,
        b"TRACE /debug/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&allowed), Some(200), "{allowed}");
    assert!(upstream.take().starts_with("TRACE /debug/x HTTP/1.1"));
}
