//! banyan's own HTTP/1.1 server path, from raw client sockets: what hyper's server used
//! to do for it. Pipelined requests answered in order, bodies fed as they arrive
//! (split anywhere, chunked or with a length), HTTP/1.0 and keep-alive, HEAD, an answer
//! that comes before the upload ends, and the connections handed to hyper (`Expect`,
//! HTTP/2 with prior knowledge) served to the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(backend: &Backend) -> String {
    format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n\n\
         [[routes]]\nname = \"uploads\"\nmatch.path = {{ prefix = \"/upload\" }}\naction = \"forward\"\nupstream = \"legacy\"\nmax_body = 1000\n",
        backend.url()
    )
}

/// A backend that answers with what it received: method, path and body length.
async fn echo() -> Backend {
    Backend::with_handler("legacy", |seen| {
        Reply::ok(format!(
            "{} {} {}",
            seen.method,
            seen.uri.path(),
            seen.body_len
        ))
        .header("content-type", "text/plain")
    })
    .await
}

/// One response read from a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads responses one after another off one connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        let read = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk));
        match read.await.expect("an answer within 10 s") {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response; `bodiless` for an answer to HEAD.
    async fn answer(&mut self, bodiless: bool) -> Answer {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            assert!(self.fill().await, "closed before a head: {:?}", self.text());
        };
        let head = String::from_utf8(self.buf.drain(..end + 4).collect()).unwrap();
        let mut answer = Answer {
            status: head[9..12].parse().unwrap(),
            head,
            body: String::new(),
        };
        if bodiless || answer.status == 100 {
            return answer;
        }
        let body = if let Some(len) = answer.header("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                assert!(self.fill().await, "closed within a body");
            }
            self.buf.drain(..len).collect()
        } else if answer.header("transfer-encoding") == Some("chunked") {
            self.chunked().await
        } else {
            while self.fill().await {}
            std::mem::take(&mut self.buf)
        };
        answer.body = String::from_utf8(body).unwrap();
        answer
    }

    async fn chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = loop {
                if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                assert!(self.fill().await);
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&self.buf[..line]).unwrap(), 16).unwrap();
            self.buf.drain(..line + 2);
            while self.buf.len() < size + 2 {
                assert!(self.fill().await);
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return body;
            }
        }
    }

    /// The connection was closed by banyan (and nothing more came).
    async fn closed(&mut self) -> bool {
        !self.fill().await && self.buf.is_empty()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let backend = echo().await;
    let b = banyan(&config(&backend)).await;
    let mut c = Conn::open(b.proxy_addr).await;
    c.send(
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
          PUT /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /four HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    for expected in ["GET /one 0", "POST /two 5", "PUT /three 3", "GET /four 0"] {
        let answer = c.answer(false).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, expected));
        assert!(answer.header("date").is_some(), "{}", answer.head);
    }
    assert_eq!(backend.count(), 4);
}

#[tokio::test]
async fn bodies_split_anywhere_arrive_whole_and_keep_the_connection() {
    let backend = echo().await;
    let b = banyan(&config(&backend)).await;
    let mut c = Conn::open(b.proxy_addr).await;
    let body = "x".repeat(300_000);
    let sized = format!(
        "POST /sized HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let chunked = format!(
        "POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{body}\r\n2\r\nyz\r\n0\r\nx-trailer: 1\r\n\r\n",
        body.len()
    );
    for (request, expected) in [
        (&sized, "POST /sized 300000"),
        (&chunked, "POST /chunked 300002"),
    ] {
        // In pieces of odd sizes, a moment apart: heads, sizes and CRLFs cut in two.
        for piece in request.as_bytes().chunks(65_537) {
            for part in piece.chunks(piece.len() / 3 + 1) {
                c.send(part).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let answer = c.answer(false).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, expected));
    }
    let seen = backend.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|s| s.body.iter().all(|b| *b == b'x' || b"yz".contains(b))));
}

#[tokio::test]
async fn http_1_0_closes_unless_kept_alive_and_head_keeps_the_declared_length() {
    let backend = echo().await;
    let b = banyan(&config(&backend)).await;

    let mut c = Conn::open(b.proxy_addr).await;
    c.send(b"GET /old HTTP/1.0\r\nHost: a\r\n\r\n").await;
    let answer = c.answer(false).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "GET /old 0"));
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(
        c.closed().await,
        "an HTTP/1.0 connection closes after its answer"
    );

    let mut c = Conn::open(b.proxy_addr).await;
    c.send(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let answer = c.answer(false).await;
    assert_eq!(answer.header("connection"), Some("keep-alive"));
    c.send(b"HEAD /b HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let head = c.answer(true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("9"), "{}", head.head);
    // The bodiless answer left the connection's framing intact.
    c.send(b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    let last = c.answer(false).await;
    assert_eq!(last.body, "GET /c 0");
    assert!(c.closed().await);
}

#[tokio::test]
async fn an_answer_before_the_upload_ends_reaches_the_client_and_closes() {
    let backend = echo().await;
    let b = banyan(&config(&backend)).await;
    // Declared over the route's max_body: refused before any of the body is read.
    let mut c = Conn::open(b.proxy_addr).await;
    c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        .await;
    c.send(&[b'z'; 20_000]).await;
    let answer = c.answer(false).await;
    assert_eq!(answer.status, 413, "{}", answer.head);
    assert_eq!(answer.header("connection"), Some("close"));
    // Grown past max_body while streaming (chunked: no length to refuse up front).
    let mut c = Conn::open(b.proxy_addr).await;
    c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    for _ in 0..4 {
        if c.stream.write_all(b"320\r\n").await.is_err() {
            break;
        }
        let _ = c.stream.write_all(&[b'z'; 800]).await;
        let _ = c.stream.write_all(b"\r\n").await;
    }
    let answer = c.answer(false).await;
    assert_eq!(answer.status, 413, "{}", answer.head);
    assert_eq!(backend.count(), 0);
}

#[tokio::test]
async fn a_client_that_stops_within_its_body_fails_only_its_own_request() {
    let backend = echo().await;
    let b = banyan(&config(&backend)).await;
    let mut c = Conn::open(b.proxy_addr).await;
    c.send(b"POST /partial HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nonly-this")
        .await;
    drop(c);
    let mut c = Conn::open(b.proxy_addr).await;
    c.send(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(c.answer(false).await.body, "GET /next 0");
    // Broken chunk framing is a 400 for its request, and the connection closes.
    let mut c = Conn::open(b.proxy_addr).await;
    c.send(b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let answer = c.answer(false).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(c.closed().await);
    assert!(backend
        .requests()
        .iter()
        .all(|s| s.uri.path() != "/smuggled"));
}

#[tokio::test]
async fn expect_continue_and_http2_prior_knowledge_are_served_by_hyper_to_the_end() {
    let backend = echo().await;
    let b = banyan(&config(&backend)).await;
    let mut c = Conn::open(b.proxy_addr).await;
    // A first request on banyan's own path, then one that hands the connection on.
    c.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(c.answer(false).await.body, "GET /first 0");
    c.send(
        b"POST /expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    )
    .await;
    let interim = c.answer(false).await;
    assert_eq!(interim.status, 100, "{}", interim.head);
    c.send(b"data").await;
    assert_eq!(c.answer(false).await.body, "POST /expect 4");
    c.send(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(c.answer(false).await.body, "GET /after 0");

    let stream = TcpStream::connect(b.proxy_addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for path in ["/h2-one", "/h2-two"] {
        let req = http::Request::get(format!("http://{}{path}", b.proxy_addr))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body, format!("GET {path} 0"));
    }
}

/// An upstream that sends its answer's head and first chunk, then waits before the rest.
async fn trickling_upstream(pause: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let first = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst\n\r\n";
                let _ = stream.write_all(first).await;
                tokio::time::sleep(pause).await;
                let _ = stream.write_all(b"5\r\nlast\n\r\n0\r\n\r\n").await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_streamed_answer_reaches_the_client_as_it_comes_over_tls_too() {
    use common::certs::Ca;
    use rustls::pki_types::ServerName;
    let upstream = trickling_upstream(Duration::from_secs(3)).await;
    let ca = Ca::new();
    let shop = ca.leaf("shop", &["shop.example"]);
    let b = banyan(&format!(
        "default = \"events\"\n[upstreams.events]\nendpoints = [\"http://{upstream}\"]\n\
         [server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
        shop.cert, shop.key
    ))
    .await;
    let request = b"GET /events HTTP/1.1\r\nHost: shop.example\r\n\r\n";

    // Plain HTTP/1.1: the head and the first piece arrive before the upstream goes on.
    let mut plain = TcpStream::connect(b.proxy_addr).await.unwrap();
    plain.write_all(request).await.unwrap();
    first_piece_in_time(&mut plain, "plain").await;

    // The same over TLS, where written bytes may wait in the TLS stream until flushed.
    let tcp = TcpStream::connect(b.tls_addr.unwrap()).await.unwrap();
    let mut tls =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(ca.client_config(&[b"http/1.1"])))
            .connect(ServerName::try_from("shop.example").unwrap(), tcp)
            .await
            .unwrap();
    tls.write_all(request).await.unwrap();
    first_piece_in_time(&mut tls, "tls").await;
}

/// The answer's head and first piece arrive within 1.5 s: before the upstream goes on.
async fn first_piece_in_time(stream: &mut (impl AsyncReadExt + Unpin), what: &str) {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_millis(1500), async {
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got);
            if text.starts_with("HTTP/1.1 200") && text.contains("first\n") {
                return;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "{what}: closed early");
            got.extend_from_slice(&chunk[..n]);
        }
    });
    assert!(
        read.await.is_ok(),
        "{what}: {:?}",
        String::from_utf8_lossy(&got)
    );
}
