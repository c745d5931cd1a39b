//! The admin listener: health, metrics with bounded labels, live route traffic.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::time::Duration;

#[tokio::test]
async fn health_metrics_and_live_route_traffic() {
    let legacy = Backend::start("legacy").await;
    let new = Backend::with_handler("new", |_| Reply::status(500)).await;
    let b = banyan(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n[upstreams.new]\nendpoints = [\"{}\"]\n[[routes]]\nname = \"admin-orders\"\nmatch = {{ path = {{ template = \"/orders/{{id}}\" }} }}\naction = \"forward\"\nupstream = \"new\"\n",
        legacy.url(),
        new.url()
    ))
    .await;
    assert_eq!(get(b.admin_addr, "/healthz", &[]).await.status, 200);
    assert_eq!(get(b.admin_addr, "/readyz", &[]).await.status, 200);
    assert_eq!(get(b.admin_addr, "/nope", &[]).await.status, 404);

    for i in 0..30 {
        get(b.proxy_addr, &format!("/orders/{i}"), &[]).await;
    }
    let metrics = get(b.admin_addr, "/metrics", &[]).await.text();
    assert!(
        metrics.contains("banyan_requests_total{route=\"admin-orders\",status_class=\"5xx\",upstream=\"new\"} 30"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "banyan_request_duration_seconds_count{route=\"admin-orders\",upstream=\"new\"} 30"
    ));
    assert!(
        !metrics.contains("/orders/"),
        "a raw path leaked into a label"
    );

    // The live rate covers the last full second: keep traffic flowing until one has passed.
    let mut routes = serde_json::Value::Null;
    for i in 0..40 {
        get(b.proxy_addr, &format!("/orders/{i}"), &[]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body = get(b.admin_addr, "/api/routes", &[]).await.body;
        routes = serde_json::from_slice(&body).unwrap();
        if routes["routes"][0]["live"]["requests_per_second"].as_f64() > Some(0.0) {
            break;
        }
    }
    let route = &routes["routes"][0];
    assert_eq!(route["name"], "admin-orders");
    assert_eq!(route["action"], "-> new");
    let rps = route["live"]["requests_per_second"].as_f64().unwrap();
    let eps = route["live"]["server_errors_per_second"].as_f64().unwrap();
    assert!(rps > 0.0 && rps <= 60.0, "{routes}");
    assert_eq!(rps, eps, "every request was a 5xx");
    assert_eq!(routes["routes"][1]["name"], "default");
}
