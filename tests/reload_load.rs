//! 200 reloads under continuous load: nothing fails, and every answer comes from an
//! upstream that was configured while the request ran. Alone in its own test binary, so
//! the load it makes does not slow the timed tests beside it.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use futures_util::future::join_all;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `/api/x` goes to `target`; everything else to `a`.
fn two_way(a: &Backend, b: &Backend, target: &str) -> String {
    format!(
        "default = \"a\"\n[upstreams.a]\nendpoints = [\"{}\"]\n[upstreams.b]\nendpoints = [\"{}\"]\n\n[[routes]]\nname = \"x\"\nmatch = {{ path = {{ prefix = \"/api/x\" }} }}\naction = \"forward\"\nupstream = \"{target}\"\n",
        a.url(),
        b.url()
    )
}

fn with_listeners(text: &str) -> String {
    format!("{text}\n{}", listeners())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_reloads_under_load_fail_nothing_and_route_only_to_configured_upstreams() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let running = banyan(&two_way(&a, &b, "a")).await;
    let (proxy, admin) = (running.proxy_addr, running.admin_addr);
    let started = Instant::now();
    let load_for = Duration::from_millis(10_500);

    // 64 keep-alive clients, each with its own connection, for 10.5 s.
    let clients = (0..64).map(|_| {
        tokio::spawn(async move {
            let c = client();
            let url = format!("http://{proxy}/api/x");
            let mut seen = Vec::new();
            while started.elapsed() < load_for {
                let t0 = Instant::now();
                let resp = c
                    .request(http::Request::get(&url).body(Default::default()).unwrap())
                    .await;
                let outcome = match resp {
                    Ok(r) if r.status() == 200 => {
                        let backend = r.headers()["x-backend"].to_str().unwrap().to_string();
                        http_body_util::BodyExt::collect(r.into_body())
                            .await
                            .map(|_| backend)
                            .map_err(|e| e.to_string())
                    }
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                seen.push((t0, Instant::now(), outcome));
            }
            seen
        })
    });
    let clients: Vec<_> = clients.collect();

    // 200 reloads through the admin API, alternating where /api/x goes.
    let reloads = Arc::new(Mutex::new(Vec::new()));
    for k in 1..=200 {
        let target = if k % 2 == 1 { "b" } else { "a" };
        let t0 = Instant::now();
        let got = call(
            admin,
            "PUT",
            "/api/config",
            &[],
            &with_listeners(&two_way(&a, &b, target)),
        )
        .await;
        assert_eq!(got.status, 200, "reload {k}: {}", got.text());
        reloads.lock().unwrap().push((t0, Instant::now(), target));
        tokio::time::sleep(Duration::from_millis(45)).await;
    }
    let results: Vec<_> = join_all(clients)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    assert!(started.elapsed() >= Duration::from_secs(10));

    // When could each target have been live? From the start of the call that applied it
    // to the end of the call that replaced it.
    let reloads = reloads.lock().unwrap().clone();
    let far = started + Duration::from_secs(3600);
    let mut windows = vec![(started - Duration::from_secs(1), reloads[0].1, "a")];
    for (i, (t0, _, target)) in reloads.iter().enumerate() {
        let end = reloads.get(i + 1).map_or(far, |next| next.1);
        windows.push((*t0, end, target));
    }
    let failures: Vec<_> = results.iter().filter(|(_, _, r)| r.is_err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        results.len(),
        &failures[..failures.len().min(5)]
    );
    let mut counts = std::collections::HashMap::new();
    for (s, e, r) in &results {
        let backend = r.as_ref().unwrap();
        *counts.entry(backend.clone()).or_insert(0) += 1;
        let possible = windows
            .iter()
            .any(|(from, to, target)| *target == backend && *from <= *e && *s <= *to);
        assert!(
            possible,
            "a request answered by {backend} while {backend} was never configured for it"
        );
    }
    eprintln!(
        "{} requests, by backend {counts:?}, 200 reloads, 0 failed",
        results.len()
    );
    assert!(
        counts.get("a").is_some_and(|n| *n > 100) && counts.get("b").is_some_and(|n| *n > 100),
        "{counts:?}"
    );
    let history: Value =
        serde_json::from_slice(&get(admin, "/api/config/history", &[]).await.body).unwrap();
    assert_eq!(history["versions"][0]["number"], 201);
    assert_eq!(history["versions"].as_array().unwrap().len(), 50);
}
