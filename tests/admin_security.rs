//! The admin API against what a web page could make a browser send: cross-site requests
//! (CSRF) and DNS rebinding are refused on mutating calls, and a dry run is no oracle of
//! the files on the machine.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::Value;

fn base(backend: &Backend, admin_extra: &str) -> String {
    format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin_extra}\n",
        backend.url()
    )
}

async fn version(admin: std::net::SocketAddr) -> u64 {
    let got = get(admin, "/api/config/status", &[]).await;
    let v: Value = serde_json::from_slice(&got.body).unwrap();
    v["version"]["number"].as_u64().unwrap()
}

#[tokio::test]
async fn cross_site_and_rebinding_calls_are_refused_without_a_token() {
    let legacy = Backend::start("legacy").await;
    let text = base(&legacy, "allowed_hosts = [\"banyan-admin.internal\"]");
    let b = banyan::server::start(config(&text)).await.unwrap();
    let admin = b.admin_addr;
    let port = admin.port();
    let v2 = format!("{text}\n# v2\n");
    assert_eq!(
        call(admin, "PUT", "/api/config", &[], &v2).await.status,
        200
    );
    assert_eq!(version(admin).await, 2);

    // A form on another site: text/plain, its Origin.
    let evil_origin = call(
        admin,
        "POST",
        "/api/config/rollback/1",
        &[
            ("origin", "http://evil.example"),
            ("content-type", "text/plain"),
        ],
        "",
    )
    .await;
    assert_eq!(evil_origin.status, 403, "{}", evil_origin.text());
    // A page on the attacker's name, resolved to 127.0.0.1 (DNS rebinding): same origin
    // to the browser, so no Origin check helps; the Host gives it away.
    let rebinding_host = format!("evil.example:{port}");
    let rebound = call(
        admin,
        "PUT",
        "/api/config",
        &[("host", &rebinding_host)],
        &format!("{text}\n# v3\n"),
    )
    .await;
    assert_eq!(rebound.status, 403, "{}", rebound.text());
    let fetch_metadata = call(
        admin,
        "POST",
        "/api/config/reload",
        &[("sec-fetch-site", "cross-site")],
        "",
    )
    .await;
    assert_eq!(fetch_metadata.status, 403);
    // Dry runs too: a refused dry run reads no file.
    let dry = call(
        admin,
        "PUT",
        "/api/config?dry_run=true",
        &[("origin", "http://evil.example")],
        &v2,
    )
    .await;
    assert_eq!(dry.status, 403);
    assert_eq!(version(admin).await, 2, "a refused call changed the config");

    // The engineer's own calls: from a shell (no Origin), from the dashboard (same
    // origin), and through a name the config allows.
    let same_origin = format!("http://127.0.0.1:{port}");
    let ok = call(
        admin,
        "POST",
        "/api/config/rollback/1",
        &[("origin", &same_origin), ("sec-fetch-site", "same-origin")],
        "",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let allowed_host = format!("banyan-admin.internal:{port}");
    let named = call(admin, "PUT", "/api/config", &[("host", &allowed_host)], &v2).await;
    assert_eq!(named.status, 200, "{}", named.text());
    assert_eq!(version(admin).await, 4);
    // Reads are not mutating calls: a scraper may name the pod however it likes.
    let metrics = get(admin, "/metrics", &[("host", "banyan-0.banyan.svc:9090")]).await;
    assert_eq!(metrics.status, 200);
}

/// Without a token, a dry run reads no file the config names: the answer is the same for
/// a file that exists, one that does not and one that holds no certificate.
#[tokio::test]
async fn a_dry_run_is_no_file_oracle() {
    let legacy = Backend::start("legacy").await;
    let text = base(&legacy, "");
    let b = banyan::server::start(config(&text)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "root:$6$hash:19000:0:99999:7:::\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let with_cert = |path: &std::path::Path| {
        format!(
            "{text}[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
            path.display().to_string(),
            path.display().to_string()
        )
    };
    let mut answers = Vec::new();
    for path in [&secret, &missing] {
        let got = call(
            b.admin_addr,
            "PUT",
            "/api/config?dry_run=true",
            &[],
            &with_cert(path),
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.text());
        let v: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(v["valid"], true);
        let warnings = v["warnings"].to_string();
        assert!(warnings.contains("were not read"), "{warnings}");
        for tell in ["PEM", "No such file", "root:", "exist"] {
            assert!(!got.text().contains(tell), "{tell} in {}", got.text());
        }
        answers.push(warnings);
    }
    assert_eq!(answers[0], answers[1]);
}

/// With a token set, a dry run needs it, and then reads the files.
#[tokio::test]
async fn a_dry_run_needs_the_token_when_one_is_set() {
    let legacy = Backend::start("legacy").await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0k").unwrap();
    let text = base(
        &legacy,
        &format!("token_file = {:?}", token.display().to_string()),
    );
    let b = banyan::server::start(config(&text)).await.unwrap();
    let missing = dir.path().join("missing.pem").display().to_string();
    let with_cert = format!(
        "{text}[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ cert = {missing:?}, key = {missing:?} }}]\n"
    );
    let anonymous = call(
        b.admin_addr,
        "PUT",
        "/api/config?dry_run=true",
        &[],
        &with_cert,
    )
    .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let authorized = call(
        b.admin_addr,
        "PUT",
        "/api/config?dry_run=true",
        &[("authorization", "Bearer t0k")],
        &with_cert,
    )
    .await;
    assert_eq!(authorized.status, 422, "{}", authorized.text());
    assert!(
        authorized.text().contains("missing.pem"),
        "{}",
        authorized.text()
    );
}

/// A dry run warns of a listener that would not move, as a real PUT does.
#[tokio::test]
async fn a_dry_run_warns_of_a_changed_listen_address() {
    let legacy = Backend::start("legacy").await;
    let text = base(&legacy, "");
    let b = banyan::server::start(config(&text)).await.unwrap();
    let moved = text.replace(
        "[server]\nlisten = \"127.0.0.1:0\"",
        "[server]\nlisten = \"127.0.0.1:1\"",
    );
    assert_ne!(moved, text);
    let got = call(b.admin_addr, "PUT", "/api/config?dry_run=true", &[], &moved).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(
        got.text().contains("server.listen changed"),
        "{}",
        got.text()
    );
}
