//! Riding out failing services: retries of idempotent requests on another endpoint,
//! passive outlier detection, a route's circuit breaker to legacy, the upstream timeouts
//! (connect, read, write, pooled idle);
//! each visible in the metrics and the admin API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn idempotent_requests_are_retried_and_a_dead_endpoint_is_ejected() {
    let live = Backend::start("live").await;
    let dead = dead_addr().await;
    let b = banyan(&format!(
        "default = \"pool_r\"\n[upstreams.pool_r]\nendpoints = [\"http://{dead}\", \"{}\"]\n\
         retries = 1\noutlier_detection = {{ consecutive_failures = 2, base_ejection = \"30s\" }}\n",
        live.url()
    ))
    .await;
    for i in 0..6 {
        let got = get(b.proxy_addr, &format!("/r{i}"), &[]).await;
        assert_eq!(
            got.status, 200,
            "request {i} is retried on the live endpoint"
        );
        assert_eq!(got.backend(), Some("live"));
    }
    let retries = metric(
        b.admin_addr,
        "banyan_upstream_retries_total{reason=\"connect_failed\",upstream=\"pool_r\"}",
    )
    .await;
    // Round-robin sends every other request to the dead endpoint until it is ejected
    // after its second failure: exactly two retries, none after.
    assert_eq!(retries, 2.0);
    let endpoint = format!("http://{dead}");
    let ejected = metric(
        b.admin_addr,
        &format!("banyan_upstream_ejected{{endpoint=\"{endpoint}\",upstream=\"pool_r\"}}"),
    )
    .await;
    assert_eq!(ejected, 1.0);
    let api: serde_json::Value =
        serde_json::from_str(&get(b.admin_addr, "/api/upstreams", &[]).await.text()).unwrap();
    let pool = &api["upstreams"][0];
    assert_eq!(pool["name"], "pool_r");
    assert_eq!(pool["endpoints"][0]["endpoint"], endpoint.as_str());
    assert_eq!(pool["endpoints"][0]["ejected"], true);
    assert_eq!(pool["endpoints"][0]["ejections"], 1);
    assert!(
        pool["endpoints"][0]["ejected_for_seconds"]
            .as_f64()
            .unwrap()
            > 20.0
    );
    assert_eq!(pool["endpoints"][1]["ejected"], false);

    // A POST with a body is not idempotent: never sent twice. The dead endpoint is
    // ejected now, so it goes to the live one; counted retries do not move.
    let got = call(b.proxy_addr, "POST", "/order", &[], "x").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        live.requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        1
    );
}

#[tokio::test]
async fn non_idempotent_requests_are_not_retried() {
    let dead = dead_addr().await;
    let live = Backend::start("live").await;
    let b = banyan(&format!(
        "default = \"pool_p\"\n[upstreams.pool_p]\nendpoints = [\"http://{dead}\", \"{}\"]\n\
         retries = 2\noutlier_detection = {{ enabled = false }}\n",
        live.url()
    ))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let got = call(b.proxy_addr, "POST", "/pay", &[], "{}").await;
        statuses.push(got.status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 200, 502, 502],
        "half went to the dead endpoint"
    );
    assert_eq!(live.count(), 2);
}

#[tokio::test]
async fn gateway_errors_eject_an_endpoint_too() {
    let sick = Backend::with_handler("sick", |_| Reply::status(503)).await;
    let well = Backend::start("well").await;
    let b = banyan(&format!(
        "default = \"pool_o\"\n[upstreams.pool_o]\nendpoints = [\"{}\", \"{}\"]\n\
         outlier_detection = {{ consecutive_failures = 3 }}\n",
        sick.url(),
        well.url()
    ))
    .await;
    for i in 0..20 {
        get(b.proxy_addr, &format!("/o{i}"), &[]).await;
    }
    assert_eq!(sick.count(), 3, "ejected after its third 503");
    assert_eq!(well.count(), 17);
}

#[tokio::test]
async fn the_circuit_breaker_sends_a_failing_route_to_legacy_and_closes_after_probes() {
    let legacy = Backend::start("legacy").await;
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let items = Backend::with_handler("items", move |_| {
        if flag.load(Ordering::Relaxed) {
            Reply::ok("new")
        } else {
            Reply::status(500)
        }
    })
    .await;
    let b = banyan(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n\
         [upstreams.items]\nendpoints = [\"{}\"]\noutlier_detection = {{ enabled = false }}\n\
         [[routes]]\nname = \"items_cb\"\nmatch.path = {{ prefix = \"/items\" }}\naction = \"forward\"\nupstream = \"items\"\n\
         circuit_breaker = {{ error_rate = 0.5, min_requests = 4, window = \"30s\", open_for = \"1s\", probes = 2 }}\n",
        legacy.url(),
        items.url()
    ))
    .await;
    for _ in 0..4 {
        assert_eq!(get(b.proxy_addr, "/items/1", &[]).await.status, 500);
    }
    // Open: the route is served by legacy.
    for _ in 0..5 {
        let got = get(b.proxy_addr, "/items/1", &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.backend(), Some("legacy"));
    }
    assert_eq!(items.count(), 4);
    assert_eq!(
        metric(
            b.admin_addr,
            "banyan_circuit_breaker_state{route=\"items_cb\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            b.admin_addr,
            "banyan_circuit_breaker_diverted_total{route=\"items_cb\"}"
        )
        .await,
        5.0
    );
    let api: serde_json::Value =
        serde_json::from_str(&get(b.admin_addr, "/api/routes", &[]).await.text()).unwrap();
    let cb = &api["routes"][0]["circuit_breaker"];
    assert_eq!(cb["state"], "open");
    assert_eq!(cb["legacy"], "legacy");
    let reason = cb["last_transition"]["reason"].as_str().unwrap();
    assert!(reason.contains("4 of 4"), "{reason}");

    // The new service recovers; after open_for, probes go to it and close the circuit.
    healthy.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        let got = get(b.proxy_addr, "/items/1", &[]).await;
        assert_eq!(got.backend(), Some("items"), "a probe");
    }
    assert_eq!(
        metric(
            b.admin_addr,
            "banyan_circuit_breaker_state{route=\"items_cb\"}"
        )
        .await,
        0.0
    );
    for _ in 0..3 {
        assert_eq!(
            get(b.proxy_addr, "/items/1", &[]).await.backend(),
            Some("items")
        );
    }
    assert_eq!(
        metric(
            b.admin_addr,
            "banyan_circuit_breaker_transitions_total{route=\"items_cb\",to=\"closed\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again() {
    let legacy = Backend::start("legacy").await;
    let items = Backend::with_handler("items", |_| Reply::status(502)).await;
    let b = banyan(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n\
         [upstreams.items]\nendpoints = [\"{}\"]\noutlier_detection = {{ enabled = false }}\n\
         [[routes]]\nname = \"items_reopen\"\nmatch.path = {{ prefix = \"/\" }}\naction = \"forward\"\nupstream = \"items\"\n\
         circuit_breaker = {{ min_requests = 2, open_for = \"300ms\", probes = 1 }}\n",
        legacy.url(),
        items.url()
    ))
    .await;
    for _ in 0..2 {
        get(b.proxy_addr, "/x", &[]).await;
    }
    assert_eq!(get(b.proxy_addr, "/x", &[]).await.backend(), Some("legacy"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(b.proxy_addr, "/x", &[]).await.status, 502, "the probe");
    assert_eq!(get(b.proxy_addr, "/x", &[]).await.backend(), Some("legacy"));
    assert_eq!(items.count(), 3);
}

#[tokio::test]
async fn upstream_timeouts_answer_504_and_count_as_failures() {
    let slow =
        Backend::with_handler("slow", |_| Reply::ok("late").delay(Duration::from_secs(3))).await;
    let b = banyan(&format!(
        "default = \"pool_t\"\n[upstreams.pool_t]\nendpoints = [\"{}\"]\nread_timeout = \"200ms\"\n\
         outlier_detection = {{ consecutive_failures = 2 }}\n",
        slow.url()
    ))
    .await;
    let got = get(b.proxy_addr, "/slow", &[]).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.header("x-banyan-error"), Some("upstream_timeout"));
    get(b.proxy_addr, "/slow", &[]).await;
    let api: serde_json::Value =
        serde_json::from_str(&get(b.admin_addr, "/api/upstreams", &[]).await.text()).unwrap();
    assert_eq!(api["upstreams"][0]["endpoints"][0]["ejected"], true);
    assert_eq!(api["upstreams"][0]["timeouts"]["read"], "200ms");
}

/// An upstream whose accept queue is full: a connection to it never completes, as to a
/// host that drops SYNs.
async fn unanswering_addr() -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the queue with connections nobody accepts; the next SYNs are dropped.
    let mut fillers = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    (listener, fillers)
}

#[tokio::test]
async fn connect_and_write_timeouts_answer_504() {
    // Connect: the upstream never completes the handshake.
    let (listener, _fillers) = unanswering_addr().await;
    let b = banyan(&format!(
        "default = \"dark\"\n[upstreams.dark]\nendpoints = [\"http://{}\"]\n\
         connect_timeout = \"300ms\"\nretries = 0\n",
        listener.local_addr().unwrap()
    ))
    .await;
    // The bound only keeps a broken build from hanging the test: without the timeout
    // the connect would wait minutes for the kernel to give up.
    let bound = Duration::from_secs(30);
    let got = tokio::time::timeout(bound, get(b.proxy_addr, "/connect", &[]))
        .await
        .expect("answered by the connect timeout, not the kernel's");
    assert_eq!(got.status, 504, "{}", got.text());
    assert_eq!(got.header("x-banyan-error"), Some("upstream_timeout"));

    // Write: the upstream accepts but never reads, so the request body stops moving
    // once the socket buffers are full.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = stuck.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stuck.accept().await {
            held.push(s);
        }
    });
    let b = banyan(&format!(
        "default = \"stuck\"\n[upstreams.stuck]\nendpoints = [\"http://{addr}\"]\n\
         write_timeout = \"300ms\"\nread_timeout = \"1h\"\nretries = 0\n"
    ))
    .await;
    let body = "x".repeat(64 * 1024 * 1024);
    let got = tokio::time::timeout(bound, call(b.proxy_addr, "POST", "/upload", &[], &body))
        .await
        .expect("answered by the write timeout, not the read timeout");
    assert_eq!(got.status, 504, "{}", got.text());
    assert_eq!(got.header("x-banyan-error"), Some("upstream_timeout"));
    held.abort();
}

#[tokio::test]
async fn idle_pooled_connections_are_closed_after_idle_timeout() {
    // An upstream that counts the connections it accepts and the ones that end.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (a, e) = (accepted.clone(), ended.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let e = e.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"pooled")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                    .await;
                e.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let b = banyan(&format!(
        "default = \"pooled\"\n[upstreams.pooled]\nendpoints = [\"http://{addr}\"]\n\
         idle_timeout = \"300ms\"\n"
    ))
    .await;
    assert_eq!(get(b.proxy_addr, "/one", &[]).await.text(), "pooled");
    assert_eq!(get(b.proxy_addr, "/two", &[]).await.text(), "pooled");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "kept alive between requests"
    );
    let closed = eventually(Duration::from_secs(10), || {
        let ended = ended.clone();
        async move { ended.load(Ordering::SeqCst) == 1 }
    })
    .await;
    assert!(closed, "banyan closes the idle pooled connection");
    assert_eq!(get(b.proxy_addr, "/three", &[]).await.text(), "pooled");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a fresh connection");
}
