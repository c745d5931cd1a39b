//! Header hygiene, request ids, Host, HTTP/2 downstream and websocket upgrades.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn single(backend: &Backend, upstream_extra: &str) -> String {
    format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n{upstream_extra}\n",
        backend.url()
    )
}

#[tokio::test]
async fn forwarded_headers_request_id_and_hop_by_hop() {
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok("x")
            .header("connection", "x-internal")
            .header("x-internal", "secret")
            .header("keep-alive", "timeout=5")
    })
    .await;
    let b = banyan(&single(&legacy, "")).await;
    let got = get(
        b.proxy_addr,
        "/p",
        &[
            ("host", "shop.example"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9v"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(
        got.headers.get("x-internal").is_none(),
        "named by Connection: removed"
    );
    assert!(got.headers.get("keep-alive").is_none());

    let seen = &legacy.requests()[0];
    let h = &seen.headers;
    assert_eq!(h["host"], "shop.example", "Host passes through");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(
        h["x-forwarded-proto"], "http",
        "not trusted: banyan's own scheme"
    );
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(h["x-end-to-end"], "kept");
    for gone in ["x-hop", "te", "proxy-authorization"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream");
    }
    let id = h["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID is generated: {id}");

    get(b.proxy_addr, "/p", &[("x-request-id", "req-123")]).await;
    assert_eq!(
        legacy.requests()[1].headers["x-request-id"],
        "req-123",
        "kept when sent"
    );
    get(b.proxy_addr, "/p", &[]).await;
    assert_ne!(
        legacy.requests()[2].headers["x-request-id"],
        id,
        "a fresh id per request"
    );
}

#[tokio::test]
async fn an_upstream_host_replaces_the_clients() {
    let legacy = Backend::start("legacy").await;
    let b = banyan(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\nhost = \"monolith.internal\"\n",
        legacy.url()
    ))
    .await;
    get(b.proxy_addr, "/", &[("host", "shop.example")]).await;
    let h = &legacy.requests()[0].headers;
    assert_eq!(h["host"], "monolith.internal");
    assert_eq!(h["x-forwarded-host"], "shop.example");
}

#[tokio::test]
async fn http2_cleartext_clients_are_served_over_http1_upstreams() {
    let legacy = Backend::start("legacy").await;
    let b = banyan(&single(&legacy, "")).await;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let url = format!("http://{}/h2?x=1", b.proxy_addr);
    let got = send(&h2, "GET", &url, &[], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "legacy");
    let seen = &legacy.requests()[0];
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.uri.to_string(), "/h2?x=1");
    assert_eq!(seen.headers["host"], b.proxy_addr.to_string().as_str());
}

/// Send an upgrade request over raw TCP; return the response head.
async fn ask_upgrade(
    proxy: std::net::SocketAddr,
    protocol: &str,
) -> (tokio::net::TcpStream, String) {
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: shop.example\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    (s, String::from_utf8_lossy(&head).to_lowercase())
}

/// A message head, byte by byte (what follows it is the tunnel's).
async fn read_head(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    head
}

async fn echoes_through(s: &mut tokio::net::TcpStream) {
    for msg in [&b"hello"[..], b"through banyan"] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
    }
}

#[tokio::test]
async fn websocket_upgrades_are_tunnelled() {
    let legacy = Backend::start("legacy").await;
    let b = banyan(&single(&legacy, "")).await;
    let (mut s, head) = ask_upgrade(b.proxy_addr, "websocket").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    echoes_through(&mut s).await;
    let seen = &legacy.requests()[0];
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert_eq!(seen.headers["connection"], "upgrade");
}

#[tokio::test]
async fn only_the_upgrades_a_route_allows_are_tunnelled() {
    let legacy = Backend::start("legacy").await;
    let b = banyan(&format!(
        "{}[[routes]]\nname = \"echo\"\nmatch = {{ headers = [{{ name = \"x-echo\", present = true }}] }}\naction = \"forward\"\nupstream = \"legacy\"\nupgrades = [\"echo\"]\n",
        single(&legacy, "")
    ))
    .await;

    // The default route tunnels websocket only: `echo` goes as a plain request, without
    // its upgrade, and the connection ends after it (its framing was not followed).
    let (mut s, head) = ask_upgrade(b.proxy_addr, "echo").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stayed open");
    let seen = legacy.requests();
    assert!(
        !seen[0].headers.contains_key("upgrade"),
        "{:?}",
        seen[0].headers
    );
    assert!(!seen[0].headers.contains_key("connection"));

    // A route that lists it tunnels it.
    let mut s = tokio::net::TcpStream::connect(b.proxy_addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nX-Echo: 1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await;
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    echoes_through(&mut s).await;
}

/// A route that allows CONNECT sends it to its own upstream (addressed to that endpoint,
/// never to the address the client names) and tunnels on a 2xx.
#[tokio::test]
async fn an_allowed_connect_is_tunnelled_to_the_routes_upstream() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let head = read_head(&mut s).await;
        *log.lock().unwrap() = String::from_utf8_lossy(&head).into_owned();
        s.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let b = banyan(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://{upstream}\"]\n\
         [[routes]]\nname = \"tunnel\"\nmatch = {{ methods = [\"CONNECT\"] }}\naction = \"forward\"\nupstream = \"legacy\"\nallow_methods = [\"CONNECT\"]\n"
    ))
    .await;
    let mut s = tokio::net::TcpStream::connect(b.proxy_addr).await.unwrap();
    s.write_all(b"CONNECT internal.example:22 HTTP/1.1\r\nHost: internal.example:22\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    echoes_through(&mut s).await;
    let request = seen.lock().unwrap().clone();
    assert!(
        request.starts_with(&format!("CONNECT {upstream} HTTP/1.1")),
        "the upstream was asked for another address: {request}"
    );
}
