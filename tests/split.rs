//! Sticky splits through a real banyan: the share of 10,000 users, stickiness, and a
//! ramp that never moves a user back.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use futures_util::StreamExt;
use std::collections::HashMap;

fn split_config(legacy: &Backend, new: &Backend, percent: f64, key: &str) -> String {
    format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{}"]
[upstreams.new]
endpoints = ["{}"]

[[routes]]
name = "items"
match = {{ path = {{ prefix = "/items/" }} }}
action = "split"
upstream = "legacy"
split = {{ to = "new", percent = {percent}, key = {key} }}
"#,
        legacy.url(),
        new.url()
    )
}

/// Which backend each of `users` users (by header x-user-id) lands on.
async fn sides(proxy: std::net::SocketAddr, users: usize) -> HashMap<usize, String> {
    let c = client();
    futures_util::stream::iter(0..users)
        .map(|u| {
            let c = c.clone();
            async move {
                let id = format!("user-{u}");
                let url = format!("http://{proxy}/items/1");
                let got = send(&c, "GET", &url, &[("x-user-id", &id)], "").await;
                (u, got.backend().expect("x-backend").to_string())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

#[tokio::test]
async fn ten_thousand_users_split_within_two_points_and_ramp_only_forward() {
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let key = "{ header = \"x-user-id\" }";
    let b = banyan(&split_config(&legacy, &new, 10.0, key)).await;
    let at_10 = sides(b.proxy_addr, 10_000).await;
    let share = at_10.values().filter(|s| *s == "new").count() as f64 / 100.0;
    assert!((share - 10.0).abs() <= 2.0, "10% configured, {share}% seen");

    // Same users again: nobody changes side.
    let again = sides(b.proxy_addr, 10_000).await;
    assert_eq!(again, at_10, "a user changed side without a config change");

    // Ramp to 20%: applied to the running proxy.
    let ramp = format!(
        "{}\n{}",
        split_config(&legacy, &new, 20.0, key),
        listeners()
    );
    b.reloader
        .apply(&ramp, "ramp", banyan::reload::history::Origin::Api)
        .unwrap();
    let at_20 = sides(b.proxy_addr, 10_000).await;
    let share = at_20.values().filter(|s| *s == "new").count() as f64 / 100.0;
    assert!((share - 20.0).abs() <= 2.0, "20% configured, {share}% seen");
    let moved_back = (0..10_000)
        .filter(|u| at_10[u] == "new" && at_20[u] == "legacy")
        .count();
    assert_eq!(moved_back, 0, "users moved from new back to legacy");
    let moved_forward = (0..10_000)
        .filter(|u| at_10[u] == "legacy" && at_20[u] == "new")
        .count();
    assert!(
        moved_forward > 500,
        "only {moved_forward} users moved to new"
    );
}

#[tokio::test]
async fn cookie_query_and_client_ip_keys_are_sticky() {
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    for (key, header, path) in [
        (
            "{ cookie = \"sid\" }",
            Some(("cookie", "sid=abc")),
            "/items/1",
        ),
        ("{ query = \"uid\" }", None, "/items/1?uid=77"),
        ("\"client_ip\"", None, "/items/1"),
    ] {
        let b = banyan(&split_config(&legacy, &new, 50.0, key)).await;
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        let first = get(b.proxy_addr, path, &headers)
            .await
            .backend()
            .map(String::from);
        for _ in 0..20 {
            let again = get(b.proxy_addr, path, &headers).await;
            assert_eq!(again.backend().map(String::from), first, "{key}");
        }
        b.shutdown().await;
    }
}

#[tokio::test]
async fn zero_and_hundred_percent_are_absolute() {
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    for (percent, want) in [(0.0, "legacy"), (100.0, "new")] {
        let b = banyan(&split_config(
            &legacy,
            &new,
            percent,
            "{ header = \"x-user-id\" }",
        ))
        .await;
        let seen = sides(b.proxy_addr, 300).await;
        assert!(seen.values().all(|s| s == want), "{percent}%");
        b.shutdown().await;
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_client_ip_splits_use_forwarded_for() {
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let text = format!(
        "{}\n[server]\nlisten = \"127.0.0.1:0\"\ntrust_forwarded_headers = true\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        split_config(&legacy, &new, 50.0, "\"client_ip\"")
    );
    let b = banyan::server::start(config(&text)).await.unwrap();
    let mut sides = std::collections::HashSet::new();
    for i in 0..200 {
        let xff = format!("10.9.{}.{}, 192.0.2.{}", i / 250, i % 250, i % 250);
        let first = get(b.proxy_addr, "/items/1", &[("x-forwarded-for", &xff)]).await;
        let again = get(b.proxy_addr, "/items/1", &[("x-forwarded-for", &xff)]).await;
        assert_eq!(first.backend(), again.backend(), "{xff}");
        sides.insert(first.backend().unwrap().to_string());
    }
    // All from one TCP peer, yet both sides serve: the forwarded address is the key.
    assert_eq!(sides.len(), 2, "{sides:?}");
}
