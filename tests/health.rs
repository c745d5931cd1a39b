//! Round-robin over healthy endpoints; active health checks take a failing endpoint out
//! and bring it back.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn failing_endpoint_is_ejected_and_readmitted() {
    let good = Backend::start("good").await;
    let sick = Arc::new(AtomicBool::new(false));
    let flag = sick.clone();
    let flaky = Backend::with_handler("flaky", move |seen| {
        if seen.uri.path() == "/health" && flag.load(Ordering::SeqCst) {
            Reply::status(500)
        } else {
            Reply::ok("flaky")
        }
    })
    .await;
    let b = banyan(&format!(
        "default = \"pool\"\n[upstreams.pool]\nendpoints = [\"{}\", \"{}\"]\nhealth_check = {{ path = \"/health\", interval = \"100ms\", timeout = \"1s\", healthy_threshold = 2, unhealthy_threshold = 2 }}\n",
        good.url(),
        flaky.url()
    ))
    .await;

    let spread = |n| async move {
        let mut counts = std::collections::HashMap::new();
        for _ in 0..n {
            let got = get(b.proxy_addr, "/x", &[]).await;
            *counts
                .entry(got.backend().unwrap().to_string())
                .or_insert(0) += 1;
        }
        counts
    };
    let both = spread(20).await;
    assert_eq!(
        (both["good"], both["flaky"]),
        (10, 10),
        "round-robin: {both:?}"
    );

    sick.store(true, Ordering::SeqCst);
    let gauge = format!(
        "banyan_upstream_healthy{{endpoint=\"{}\",upstream=\"pool\"}}",
        flaky.url()
    );
    wait_for(|| async { metric(b.admin_addr, &gauge).await == 0.0 }).await;
    let counts = spread(20).await;
    assert_eq!(
        counts.get("flaky"),
        None,
        "an ejected endpoint got traffic: {counts:?}"
    );

    sick.store(false, Ordering::SeqCst);
    wait_for(|| async { metric(b.admin_addr, &gauge).await == 1.0 }).await;
    let counts = spread(20).await;
    assert_eq!(counts.get("flaky"), Some(&10), "readmitted: {counts:?}");
}

#[tokio::test]
async fn when_every_endpoint_fails_its_check_traffic_still_flows() {
    let backend = Backend::with_handler("only", |seen| {
        if seen.uri.path() == "/health" {
            Reply::status(503)
        } else {
            Reply::ok("only")
        }
    })
    .await;
    let b = banyan(&format!(
        "default = \"solo\"\n[upstreams.solo]\nendpoints = [\"{}\"]\nhealth_check = {{ path = \"/health\", interval = \"50ms\", unhealthy_threshold = 1 }}\n",
        backend.url()
    ))
    .await;
    let gauge = format!(
        "banyan_upstream_healthy{{endpoint=\"{}\",upstream=\"solo\"}}",
        backend.url()
    );
    wait_for(|| async { metric(b.admin_addr, &gauge).await == 0.0 }).await;
    let got = get(b.proxy_addr, "/x", &[]).await;
    assert_eq!(
        got.status, 200,
        "panic mode: a failing health check alone does not refuse traffic"
    );
}

async fn wait_for<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 5 s");
}
