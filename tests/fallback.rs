//! Fallback to the monolith when the new service fails, and banyan's own errors when
//! there is nothing to fall back to.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::time::Duration;

/// Metrics are process-wide: each test names its route apart.
fn config_with(
    route_name: &str,
    new_endpoint: &str,
    legacy: &Backend,
    route_extra: &str,
) -> String {
    format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{}"]
[upstreams.new]
endpoints = ["{new_endpoint}"]
connect_timeout = "300ms"
read_timeout = "300ms"

[[routes]]
name = "{route_name}"
match = {{ path = {{ prefix = "/api/" }} }}
action = "forward"
upstream = "new"
{route_extra}
"#,
        legacy.url(),
    )
}

#[tokio::test]
async fn dead_new_service_falls_back_to_legacy_and_is_counted() {
    let legacy = Backend::start("legacy").await;
    let dead = dead_addr().await;
    let b = banyan(&config_with(
        "dead",
        &format!("http://{dead}"),
        &legacy,
        "fallback = \"legacy\"",
    ))
    .await;
    let before = metric(
        b.admin_addr,
        "banyan_fallbacks_total{reason=\"connect_failed\",route=\"dead\"}",
    )
    .await;
    for path in ["/api/a", "/api/b?x=1"] {
        let got = get(b.proxy_addr, path, &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.backend(), Some("legacy"));
    }
    let c = client();
    let put = send(
        &c,
        "PUT",
        &format!("http://{}/api/doc", b.proxy_addr),
        &[],
        "payload",
    )
    .await;
    assert_eq!(
        put.backend(),
        Some("legacy"),
        "PUT is idempotent: falls back"
    );
    let seen = legacy.requests();
    assert_eq!(
        seen.last().unwrap().body.as_ref(),
        b"payload",
        "the buffered body is resent"
    );
    assert_eq!(seen[1].uri.to_string(), "/api/b?x=1");
    let after = metric(
        b.admin_addr,
        "banyan_fallbacks_total{reason=\"connect_failed\",route=\"dead\"}",
    )
    .await;
    assert_eq!(after - before, 3.0);
    let served = metric(
        b.admin_addr,
        "banyan_requests_total{route=\"dead\",status_class=\"2xx\",upstream=\"legacy\"}",
    )
    .await;
    assert_eq!(served, 3.0);
}

#[tokio::test]
async fn gateway_statuses_and_timeouts_fall_back_but_post_does_not() {
    let legacy = Backend::start("legacy").await;
    let new = Backend::with_handler("new", |seen| match seen.uri.path() {
        "/api/503" => Reply::status(503),
        "/api/504" => Reply::status(504),
        "/api/500" => Reply::status(500),
        "/api/slow" => Reply::ok("late").delay(Duration::from_secs(2)),
        _ => Reply::ok("new"),
    })
    .await;
    let b = banyan(&config_with(
        "gateway",
        &new.url(),
        &legacy,
        "fallback = \"legacy\"",
    ))
    .await;
    for (path, want) in [
        ("/api/503", "legacy"),
        ("/api/504", "legacy"),
        ("/api/slow", "legacy"),
        ("/api/500", "new"),
        ("/api/ok", "new"),
    ] {
        let got = get(b.proxy_addr, path, &[]).await;
        assert_eq!(got.backend(), Some(want), "{path}");
    }
    let c = client();
    let post = send(
        &c,
        "POST",
        &format!("http://{}/api/503", b.proxy_addr),
        &[],
        "order",
    )
    .await;
    assert_eq!(
        post.status, 503,
        "a POST is not idempotent: never sent twice"
    );
    assert_eq!(post.backend(), Some("new"));
    assert!(legacy.requests().iter().all(|s| s.method != "POST"));
    let timeouts = metric(
        b.admin_addr,
        "banyan_fallbacks_total{reason=\"timeout\",route=\"gateway\"}",
    )
    .await;
    assert_eq!(timeouts, 1.0);
}

#[tokio::test]
async fn the_fallback_gets_the_original_path_not_the_rewrite() {
    let legacy = Backend::start("legacy").await;
    let dead = dead_addr().await;
    let extra = "fallback = \"legacy\"\nrewrite = { prefix = \"/v2/\", set_headers = { \"x-new\" = \"1\" } }";
    let b = banyan(&config_with(
        "rewrite",
        &format!("http://{dead}"),
        &legacy,
        extra,
    ))
    .await;
    get(b.proxy_addr, "/api/items?id=3", &[]).await;
    let seen = &legacy.requests()[0];
    assert_eq!(seen.uri.to_string(), "/api/items?id=3");
    assert!(seen.headers.get("x-new").is_none());
}

#[tokio::test]
async fn without_fallback_banyan_answers_502_and_504_with_a_cause() {
    let legacy = Backend::start("legacy").await;
    let dead = dead_addr().await;
    let b = banyan(&config_with(
        "nofallback",
        &format!("http://{dead}"),
        &legacy,
        "",
    ))
    .await;
    let got = get(b.proxy_addr, "/api/x", &[]).await;
    assert_eq!(got.status, 502);
    assert_eq!(
        got.header("x-banyan-error"),
        Some("upstream_connect_failed")
    );
    assert!(got.text().contains("new"), "{}", got.text());

    let slow =
        Backend::with_handler("slow", |_| Reply::ok("late").delay(Duration::from_secs(2))).await;
    let b = banyan(&config_with("nofallback2", &slow.url(), &legacy, "")).await;
    let got = get(b.proxy_addr, "/api/x", &[]).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.header("x-banyan-error"), Some("upstream_timeout"));
    assert_eq!(legacy.count(), 0);
}

#[tokio::test]
async fn bodies_larger_than_the_buffer_stream_without_fallback() {
    let legacy = Backend::start("legacy").await;
    let dead = dead_addr().await;
    let text = format!(
        "{}\n[server]\nlisten = \"127.0.0.1:0\"\nfallback_max_body = 16\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        config_with("large", &format!("http://{dead}"), &legacy, "fallback = \"legacy\"")
    );
    let b = banyan::server::start(config(&text)).await.unwrap();
    let c = client();
    let url = format!("http://{}/api/doc", b.proxy_addr);
    let small = send(&c, "PUT", &url, &[], "tiny").await;
    assert_eq!(small.backend(), Some("legacy"));
    let big = send(&c, "PUT", &url, &[], vec![b'x'; 1000]).await;
    assert_eq!(big.status, 502, "too large to buffer: no second attempt");
}
