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

    // The route's own limit (1000) and the server's (5000), declared up front: refused
    // before anything reaches the upstream.
    let before = legacy.count();
    let got = send(
        &client(),
        "POST",
        &format!("http://{}/upload/a", b.proxy_addr),
        &[],
        vec![b'x'; 1001],
    )
    .await;
    assert_eq!(got.status, 413);
    assert_eq!(got.header("x-banyan-error"), Some("body_too_large"));
    let got = send(
        &client(),
        "POST",
        &format!("http://{}/other", b.proxy_addr),
        &[],
        vec![b'x'; 5001],
    )
    .await;
    assert_eq!(got.status, 413);
    assert_eq!(legacy.count(), before);
    let got = send(
        &client(),
        "POST",
        &format!("http://{}/upload/a", b.proxy_addr),
        &[],
        vec![b'x'; 1000],
    )
    .await;
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
