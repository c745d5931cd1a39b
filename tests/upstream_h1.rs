//! banyan's own HTTP/1.1 upstream client, against upstreams written byte by byte on real
//! loopback sockets: the wire behaviours hyper used to handle for it. Responses framed
//! every way HTTP/1.1 allows (chunks split anywhere, trailers, read-until-close,
//! HTTP/1.0), connections an upstream closes while idle, and answers no proxy may pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What an upstream does with the n-th request it reads on a connection.
#[derive(Clone, Copy)]
enum Act {
    /// Write these bytes (in pieces of `split` bytes, a moment apart) and keep the
    /// connection.
    Send(&'static [u8], usize),
    /// Write these bytes and close.
    SendAndClose(&'static [u8]),
    /// Read the request and close without a word.
    Close,
}

/// An upstream written by hand: `script(connection, request_on_it)` decides each answer.
struct Raw {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Raw {
    async fn start(script: fn(usize, usize) -> Act) -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, n, script, r.clone()));
            }
        });
        Raw {
            addr,
            connections,
            requests,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    connection: usize,
    script: fn(usize, usize) -> Act,
    log: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    for request in 0.. {
        // A request head (the tests send no bodies but empty ones).
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                buf.drain(..end + 4);
                log.lock().unwrap().push(head);
                break;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        match script(connection, request) {
            Act::Send(bytes, split) => {
                for piece in bytes.chunks(split.max(1)) {
                    if stream.write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Act::SendAndClose(bytes) => {
                let _ = stream.write_all(bytes).await;
                return;
            }
            Act::Close => return,
        }
    }
}

fn config(upstream: &Raw) -> String {
    format!(
        "default = \"raw\"\n[upstreams.raw]\nendpoints = [\"http://{}\"]\nread_timeout = \"2s\"\n",
        upstream.addr
    )
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-kind: chunked\r\n\r\n\
5\r\nhello\r\n7;note=ext\r\n, world\r\n0\r\nx-digest: abc\r\n\r\n";

#[tokio::test]
async fn chunked_responses_split_anywhere_arrive_whole_and_keep_the_connection() {
    let upstream = Raw::start(|_, _| Act::Send(CHUNKED, 3)).await;
    let b = banyan(&config(&upstream)).await;
    for _ in 0..3 {
        let got = get(b.proxy_addr, "/greeting", &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "hello, world");
        assert_eq!(got.header("x-kind"), Some("chunked"));
    }
    assert_eq!(
        upstream.connections(),
        1,
        "one connection carried all three"
    );
}

#[tokio::test]
async fn bodies_read_until_close_and_http_1_0_answers_arrive_whole() {
    let upstream = Raw::start(|_, _| {
        Act::SendAndClose(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")
    })
    .await;
    let b = banyan(&config(&upstream)).await;
    for _ in 0..2 {
        let got = get(b.proxy_addr, "/old", &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "until the end");
    }
    assert_eq!(
        upstream.connections(),
        2,
        "a body that ends at close ends its connection"
    );
}

/// Each connection answers one request, then closes on the next one unanswered: the
/// keep-alive race every pooled client meets.
fn once_then_close(_connection: usize, request: usize) -> Act {
    if request == 0 {
        Act::Send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", 64)
    } else {
        Act::Close
    }
}

#[tokio::test]
async fn a_get_on_a_connection_closed_while_idle_is_sent_again_on_a_new_one() {
    let upstream = Raw::start(once_then_close).await;
    let b = banyan(&config(&upstream)).await;
    for i in 0..4 {
        let got = get(b.proxy_addr, &format!("/item/{i}"), &[]).await;
        assert_eq!(got.status, 200, "request {i}: {}", got.text());
        assert_eq!(got.text(), "ok");
    }
    // Every GET after the first met a stale connection, and was sent again once.
    let seen: Vec<String> = upstream
        .requests()
        .iter()
        .map(|h| h.lines().next().unwrap().to_string())
        .collect();
    for i in 1..4 {
        let line = format!("GET /item/{i} HTTP/1.1");
        assert_eq!(seen.iter().filter(|l| **l == line).count(), 2, "{seen:?}");
    }
}

#[tokio::test]
async fn a_post_is_never_sent_twice_on_a_stale_connection() {
    let upstream = Raw::start(once_then_close).await;
    let b = banyan(&config(&upstream)).await;
    assert_eq!(get(b.proxy_addr, "/warm", &[]).await.status, 200);
    let got = send(
        &client(),
        "POST",
        &format!("http://{}/orders", b.proxy_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 502, "{}", got.text());
    assert_eq!(got.header("x-banyan-error"), Some("upstream_error"));
    let posts = upstream
        .requests()
        .iter()
        .filter(|h| h.starts_with("POST /orders"))
        .count();
    assert_eq!(
        posts, 1,
        "the upstream may have acted on it: not sent again"
    );
}

#[tokio::test]
async fn answers_with_ambiguous_framing_are_a_502_and_never_reach_the_client() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 5x\r\n\r\nhello",
        b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 999999 Weird\r\n\r\n",
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        let b = banyan(&format!(
            "default = \"raw\"\n[upstreams.raw]\nendpoints = [\"http://{addr}\"]\n"
        ))
        .await;
        let got = get(b.proxy_addr, "/", &[]).await;
        assert_eq!(got.status, 502, "{}", String::from_utf8_lossy(answer));
        assert_eq!(got.header("x-banyan-error"), Some("upstream_error"));
    }
}

#[tokio::test]
async fn a_body_that_stops_midway_ends_the_clients_response_not_banyan() {
    let upstream = Raw::start(|_, _| {
        Act::Send(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part",
            64,
        )
    })
    .await;
    let b = banyan(&config(&upstream)).await;
    // The client sees the head, then its body fails when the read timeout passes.
    let resp = client()
        .request(
            http::Request::get(format!("http://{}/slow", b.proxy_addr))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(
        Duration::from_secs(10),
        http_body_util::BodyExt::collect(resp.into_body()),
    )
    .await
    .expect("the body ends within the read timeout");
    assert!(
        body.is_err(),
        "a truncated body is an error, not a short success"
    );
    // banyan still serves.
    let again = Raw::start(|_, _| Act::Send(b"HTTP/1.1 204 No Content\r\n\r\n", 64)).await;
    let c = banyan(&config(&again)).await;
    assert_eq!(get(c.proxy_addr, "/", &[]).await.status, 204);
}
