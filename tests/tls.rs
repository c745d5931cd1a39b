//! TLS: the HTTPS listener (certificates by SNI, HTTP/2 by ALPN, re-read on change) and
//! TLS to upstreams (a configured CA, the upstream's host name as SNI, verification on
//! by default, insecure_skip_verify with a warning).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use bytes::Bytes;
use common::certs::{Ca, Leaf};
use common::*;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{client::TlsStream, TlsAcceptor, TlsConnector};

async fn handshake(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    name: ServerName<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

fn presented(tls: &TlsStream<TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn dns(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_string()).unwrap()
}

fn tls_config(legacy: &Backend, certs: &[&Leaf]) -> String {
    let list: Vec<String> = certs
        .iter()
        .map(|l| format!("{{ cert = {:?}, key = {:?} }}", l.cert, l.key))
        .collect();
    format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n\
         [server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{}]\n",
        legacy.url(),
        list.join(", ")
    )
}

#[tokio::test]
async fn https_listener_chooses_certificates_by_sni_and_speaks_h2_by_alpn() {
    let ca = Ca::new();
    let shop = ca.leaf("shop", &["shop.example", "127.0.0.1"]);
    let api = ca.leaf("api", &["api.example", "*.api.example"]);
    let legacy = Backend::start("legacy").await;
    let b = banyan(&tls_config(&legacy, &[&shop, &api])).await;
    let addr = b.tls_addr.expect("an https listener");

    let h1 = ca.client_config(&[b"http/1.1"]);
    let tls = handshake(addr, h1.clone(), dns("shop.example"))
        .await
        .unwrap();
    assert_eq!(presented(&tls), shop.der);
    let tls = handshake(addr, h1.clone(), dns("v2.api.example"))
        .await
        .unwrap();
    assert_eq!(presented(&tls), api.der, "a wildcard name");
    // No SNI at all (an IP address): the first certificate.
    let ip = ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into());
    let tls = handshake(addr, h1.clone(), ip).await.unwrap();
    assert_eq!(presented(&tls), shop.der);
    // A name no certificate covers gets the first, which the client then refuses.
    assert!(handshake(addr, h1.clone(), dns("nope.example"))
        .await
        .is_err());

    // HTTP/1.1 over TLS: the upstream hears it was https.
    let tls = handshake(addr, h1, dns("shop.example")).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/over-tls")
        .header("host", "shop.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = legacy.requests().pop().unwrap();
    assert_eq!(seen.headers["x-forwarded-proto"], "https");

    // HTTP/2 when ALPN agrees on it.
    let tls = handshake(
        addr,
        ca.client_config(&[b"h2", b"http/1.1"]),
        dns("shop.example"),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://shop.example/over-h2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"legacy");
}

/// banyan serving HTTPS with one certificate, for shop.example, and a client that
/// trusts its CA.
struct Shop {
    ca: Ca,
    shop: Leaf,
    legacy: Backend,
    b: banyan::server::Running,
    config: rustls::ClientConfig,
}

impl Shop {
    async fn start() -> Shop {
        let ca = Ca::new();
        let shop = ca.leaf("shop", &["shop.example"]);
        let legacy = Backend::start("legacy").await;
        let b = banyan(&tls_config(&legacy, &[&shop])).await;
        let config = ca.client_config(&[b"http/1.1"]);
        Shop {
            ca,
            shop,
            legacy,
            b,
            config,
        }
    }
}

#[tokio::test]
async fn certificates_are_reread_when_their_files_change() {
    let Shop {
        ca,
        shop,
        legacy: _legacy,
        b,
        config,
    } = Shop::start().await;
    let addr = b.tls_addr.unwrap();
    let tls = handshake(addr, config.clone(), dns("shop.example"))
        .await
        .unwrap();
    assert_eq!(presented(&tls), shop.der);

    // A renewed certificate (new key) replaces the files.
    let renewed = ca.leaf("shop", &["shop.example"]);
    assert_ne!(renewed.der, shop.der);
    let seen = eventually(Duration::from_secs(10), || {
        let config = config.clone();
        let want = renewed.der.clone();
        async move {
            match handshake(addr, config, dns("shop.example")).await {
                Ok(tls) => presented(&tls) == want,
                Err(_) => false,
            }
        }
    })
    .await;
    assert!(seen, "the renewed certificate is served without a restart");

    // A broken file is not taken: the renewed certificate keeps being served.
    std::fs::write(&renewed.key, "not a key").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let tls = handshake(addr, config, dns("shop.example")).await.unwrap();
    assert_eq!(presented(&tls), renewed.der);
}

#[tokio::test]
async fn certificates_are_reread_on_a_config_reload() {
    let Shop {
        ca,
        shop,
        legacy,
        b,
        config,
    } = Shop::start().await;
    let addr = b.tls_addr.unwrap();
    let served = || async {
        let tls = handshake(addr, config.clone(), dns("shop.example"))
            .await
            .unwrap();
        presented(&tls)
    };
    assert_eq!(served().await, shop.der);

    // The renewed certificate arrives under new file names, which no file watcher
    // follows: only the reload that names them reads them, and at once.
    let renewed = ca.leaf("shop-renewed", &["shop.example"]);
    let text = |leaf: &Leaf| format!("{}\n{}", tls_config(&legacy, &[leaf]), listeners());
    let put = call(b.admin_addr, "PUT", "/api/config", &[], &text(&renewed)).await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(served().await, renewed.der);

    // A reload naming a broken certificate is refused where it names it, and the
    // certificate in use keeps being served.
    let broken = Leaf {
        cert: ca.dir.path().join("broken.pem"),
        key: renewed.key.clone(),
        der: Vec::new(),
    };
    std::fs::write(&broken.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let put = call(b.admin_addr, "PUT", "/api/config", &[], &text(&broken)).await;
    assert_eq!(put.status, 422, "{}", put.text());
    let body: serde_json::Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(body["line"], 6, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("broken.pem"),
        "{body}"
    );
    assert_eq!(served().await, renewed.der);
}

/// An HTTPS upstream that records the SNI name of every handshake.
async fn tls_backend(leaf: &Leaf) -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let key = banyan::tls::certified_key(&leaf.cert, &leaf.key).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = names.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                seen.lock()
                    .unwrap()
                    .push(tls.get_ref().1.server_name().map(str::to_string));
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(Bytes::from_static(b"secure")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, names)
}

#[tokio::test]
async fn upstream_tls_is_verified_with_the_configured_ca_and_sni_of_the_host() {
    let ca = Ca::new();
    let items = ca.leaf("items", &["items.internal"]);
    let (addr, names) = tls_backend(&items).await;
    let upstream = |extra: &str| {
        format!(
            "default = \"items\"\n[upstreams.items]\nendpoints = [\"https://{addr}\"]\nhost = \"items.internal\"\n{extra}\n"
        )
    };

    let b = banyan(&upstream(&format!("ca_file = {:?}", ca.pem_path()))).await;
    let got = get(b.proxy_addr, "/secure", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "secure");
    assert_eq!(
        names.lock().unwrap().last().unwrap().as_deref(),
        Some("items.internal")
    );

    // Without the CA the system's roots do not trust it: refused, not served.
    let b = banyan(&upstream("")).await;
    let got = get(b.proxy_addr, "/secure", &[]).await;
    assert_eq!(got.status, 502);

    // insecure_skip_verify connects, and the config says what it costs.
    let text = format!(
        "{}\n{}",
        upstream("insecure_skip_verify = true"),
        listeners()
    );
    let config = common::config(&text);
    let warning = config
        .warnings
        .iter()
        .map(|w| w.with_level("warning"))
        .find(|w| w.contains("insecure_skip_verify"))
        .expect("a warning");
    assert!(warning.contains("test.toml:"), "{warning}");
    let b = banyan::server::start(config).await.unwrap();
    assert_eq!(get(b.proxy_addr, "/secure", &[]).await.status, 200);
}

#[tokio::test]
async fn bad_certificates_are_refused_with_their_place_in_the_file() {
    let ca = Ca::new();
    let shop = ca.leaf("shop", &["shop.example"]);
    let other = ca.leaf("other", &["other.example"]);
    let legacy = Backend::start("legacy").await;
    let mismatched = Leaf {
        cert: shop.cert.clone(),
        key: other.key.clone(),
        der: Vec::new(),
    };
    let missing = Leaf {
        cert: ca.dir.path().join("missing.pem"),
        key: shop.key.clone(),
        der: Vec::new(),
    };
    for (leaf, expected) in [(&mismatched, "does not belong"), (&missing, "missing.pem")] {
        let text = format!("{}\n{}", tls_config(&legacy, &[leaf]), listeners());
        let err = banyan::config::Config::parse(&banyan::config::Source::new("t.toml", text))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("t.toml:6:"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}
