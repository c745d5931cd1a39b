//! The Grafana dashboard uses only metric names banyan exports.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use regex::Regex;
use std::collections::BTreeSet;

#[tokio::test]
async fn every_metric_in_the_grafana_dashboard_is_exported() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/grafana/banyan.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    let name = Regex::new(r"banyan_[a-z_]+").unwrap();
    let used: BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| name.find_iter(e).map(|m| m.as_str().to_string()))
        .collect();

    // Run a banyan that exercises every family: a fallback (and a retry) to a dead
    // upstream, a shadow mismatch (whose sample cannot be stored: the store's directory
    // cannot exist), health checks, a circuit breaker, a ramp, a refused request.
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok(r#"{"a":1}"#).header("content-type", "application/json")
    })
    .await;
    let new = Backend::with_handler("new", |_| {
        Reply::ok(r#"{"a":2}"#).header("content-type", "application/json")
    })
    .await;
    let b = banyan(&format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{}"]
health_check = {{ path = "/h", interval = "1s" }}
[upstreams.new]
endpoints = ["{}"]
[upstreams.dead]
endpoints = ["http://{}"]
[shadow]
store = "/dev/null/banyan/d.sqlite"
[[routes]]
name = "g-shadow"
match = {{ path = {{ prefix = "/s" }} }}
action = "shadow"
shadow = {{ to = "new" }}
[[routes]]
name = "g-fallback"
match = {{ path = {{ prefix = "/f" }} }}
action = "forward"
upstream = "dead"
fallback = "legacy"
circuit_breaker = {{ min_requests = 100 }}
max_body = 1
[[routes]]
name = "g-migrate"
match = {{ path = {{ prefix = "/m" }} }}
action = "migrate"
migration = {{ stage = "canary", new = "new" }}
ramp = {{ steps = [10, 100] }}
"#,
        legacy.url(),
        new.url(),
        dead_addr().await
    ))
    .await;
    get(b.proxy_addr, "/s", &[]).await;
    get(b.proxy_addr, "/f", &[]).await;
    let refused = call(b.proxy_addr, "POST", "/f", &[], "xx").await;
    assert_eq!(refused.status, 413);
    // A ramp moves only on evidence (or by hand), and a move is what the moves panel counts.
    let promoted = call(
        b.admin_addr,
        "POST",
        "/api/migration/g-migrate/promote",
        &[],
        "",
    )
    .await;
    assert_eq!(promoted.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let exported = get(b.admin_addr, "/metrics", &[]).await.text();
    let families: BTreeSet<String> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    for metric in &used {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| metric.strip_suffix(s))
            .filter(|base| families.contains(*base))
            .unwrap_or(metric);
        assert!(
            families.contains(family),
            "{metric} is used by the dashboard but not exported; exported: {families:?}"
        );
    }
}
