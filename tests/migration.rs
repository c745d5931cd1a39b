//! Migration control with real backends: a gated ramp takes a new service that agrees
//! with the monolith to 100% by itself, rolls one back as soon as it starts differing,
//! obeys pause, resume, promote and rollback, and keeps its state across a reload and a
//! restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn item(price: u32) -> Reply {
    Reply::ok(format!(
        "{{\"id\": 7, \"name\": \"lamp\", \"price\": {price}}}"
    ))
    .header("content-type", "application/json")
}

/// A migrated route `items` with a ramp (`ramp` is the table's content). The test
/// backends name themselves in `x-backend`, which the comparison is told to ignore.
fn config(
    route: &str,
    legacy: &Backend,
    new: &Backend,
    store: &std::path::Path,
    ramp: &str,
) -> String {
    format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n\
         [upstreams.items]\nendpoints = [\"{}\"]\noutlier_detection = {{ enabled = false }}\n\
         [shadow]\nstore = {:?}\n\
         [[routes]]\nname = \"{route}\"\nmatch.path = {{ prefix = \"/items\" }}\naction = \"migrate\"\n\
         migration = {{ stage = \"canary\", new = \"items\", key = {{ header = \"x-user\" }} }}\n\
         ramp = {{ {ramp} }}\n\
         compare = {{ ignore = [\"header.x-backend\"] }}\n",
        legacy.url(),
        new.url(),
        store.join("diffs.sqlite"),
    )
}

/// Requests from many users, from `tasks` clients at once, until dropped.
fn load_from(proxy: std::net::SocketAddr, tasks: u64) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks)
        .map(|t| {
            tokio::spawn(async move {
                let client = client();
                for i in 0u64.. {
                    let req = http::Request::get(format!("http://{proxy}/items/7"))
                        .header("x-user", format!("user-{t}-{i}"))
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .unwrap();
                    if let Ok(resp) = client.request(req).await {
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                    }
                }
            })
        })
        .collect()
}

/// Enough agreeing comparisons, from `n` users one after another, for the match gate to
/// pass at 0%.
async fn compared(proxy: std::net::SocketAddr, n: u32) {
    for i in 0..n {
        get(proxy, "/items/7", &[("x-user", &format!("first-{i}"))]).await;
    }
}

/// Requests from many users until dropped.
fn load(proxy: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = client();
        for i in 0u64.. {
            let req = http::Request::get(format!("http://{proxy}/items/7"))
                .header("x-user", format!("user-{i}"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            if let Ok(resp) = client.request(req).await {
                let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

fn events(m: &Value) -> Vec<Value> {
    m["routes"][0]["ramp"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agreeing_service_is_ramped_to_100_percent_by_the_gates() {
    let legacy = Backend::with_handler("legacy", |_| item(10)).await;
    let new = Backend::with_handler("items", |_| item(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let b = banyan(&config(
        "items_ramp",
        &legacy,
        &new,
        dir.path(),
        "steps = [10, 50, 100], min_time = \"300ms\", min_requests = 3, interval = \"100ms\", \
         min_comparisons = 5, min_match_rate = 0.5, max_error_margin = 0.05, \
         latency_quantile = \"p50\", max_latency_factor = 50.0",
    ))
    .await;
    let traffic = load(b.proxy_addr);
    let admin = b.admin_addr;
    let done = eventually(Duration::from_secs(30), || async move {
        percent(admin).await == 100.0
    })
    .await;
    traffic.abort();
    let m = migration(admin).await;
    assert!(done, "ramped to 100%: {m:#}");
    let moves: Vec<(String, f64)> = events(&m)
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["to_percent"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("advance".into(), 10.0),
            ("advance".into(), 50.0),
            ("advance".into(), 100.0)
        ]
    );
    assert!(events(&m)[2]["reason"]
        .as_str()
        .unwrap()
        .contains("gates held"));
    assert_eq!(m["routes"][0]["stage"], "canary");
    let canary = &m["summary"]["stages"][2];
    assert_eq!(
        (&canary["stage"], &canary["routes"]),
        (&"canary".into(), &1.into())
    );
    assert!(new.count() > 0);
    assert_eq!(
        metric(admin, "banyan_migration_percent{route=\"items_ramp\"}").await,
        100.0
    );
    assert_eq!(
        metric(
            admin,
            "banyan_migration_moves_total{kind=\"advance\",route=\"items_ramp\"}"
        )
        .await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_starts_differing_is_rolled_back_and_the_reason_names_the_field() {
    let legacy = Backend::with_handler("legacy", |_| item(10)).await;
    let broken = Arc::new(AtomicBool::new(false));
    let flag = broken.clone();
    let new = Backend::with_handler("items", move |_| {
        item(if flag.load(Ordering::Relaxed) { 11 } else { 10 })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let b = banyan(&config(
        "items_rollback",
        &legacy,
        &new,
        dir.path(),
        "steps = [5, 25, 50, 100], min_time = \"1s\", min_requests = 2, interval = \"100ms\", \
         min_comparisons = 10, min_match_rate = 0.9, max_error_margin = 0.05, \
         latency_quantile = \"p50\", max_latency_factor = 50.0",
    ))
    .await;
    let traffic = load(b.proxy_addr);
    let admin = b.admin_addr;
    let at_25 = eventually(Duration::from_secs(30), || async move {
        percent(admin).await == 25.0
    })
    .await;
    assert!(at_25, "{:#}", migration(admin).await);
    // The new service now gets the price wrong.
    broken.store(true, Ordering::Relaxed);
    let rolled_back = eventually(Duration::from_secs(20), || async move {
        events(&migration(admin).await)
            .iter()
            .any(|e| e["kind"] == "rollback")
    })
    .await;
    traffic.abort();
    let m = migration(admin).await;
    assert!(rolled_back, "{m:#}");
    let evs = events(&m);
    let rollback = evs.iter().find(|e| e["kind"] == "rollback").unwrap();
    // At the first evaluation that had its comparisons: straight from 25%, not later.
    assert_eq!(rollback["from_percent"], 25.0, "{m:#}");
    assert_eq!(rollback["to_percent"], 5.0);
    let reason = rollback["reason"].as_str().unwrap();
    assert!(reason.contains("$.price"), "{reason}");
    assert!(reason.contains("match rate"), "{reason}");
    assert!(reason.contains("below 90.0%"), "{reason}");
    assert_eq!(
        m["routes"][0]["ramp"]["paused"], true,
        "a rollback pauses the ramp"
    );
    assert!(percent(admin).await <= 5.0);
    assert!(
        metric(
            admin,
            "banyan_migration_moves_total{kind=\"rollback\",route=\"items_rollback\"}"
        )
        .await
            >= 1.0
    );
}

/// The judgement of the route's gates as the API shows it.
fn judgement(m: &Value) -> Vec<Value> {
    m["routes"][0]["ramp"]["judgement"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_server_on_both_sides_ramps_to_100_percent_with_default_gates() {
    // A service cannot be worse than itself: legacy and new are one server, a little slow
    // so that its latency is its own and not the machine's.
    let server = Backend::with_handler("same", |_| item(10).delay(Duration::from_millis(5))).await;
    let dir = tempfile::tempdir().unwrap();
    let b = banyan(&config(
        "items_same",
        &server,
        &server,
        dir.path(),
        "steps = [10, 50, 100], min_time = \"1s\", interval = \"200ms\"",
    ))
    .await;
    let traffic = load_from(b.proxy_addr, 24);
    let admin = b.admin_addr;
    let done = eventually(Duration::from_secs(120), || async move {
        percent(admin).await == 100.0
    })
    .await;
    traffic.iter().for_each(|t| t.abort());
    let m = migration(admin).await;
    assert!(done, "ramped to 100%: {m:#}");
    let kinds: Vec<String> = events(&m)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["advance", "advance", "advance"], "{m:#}");
    // The step to 100% was taken on all three gates' evidence.
    let last = events(&m)[2]["reason"].as_str().unwrap().to_string();
    assert!(last.contains("shadow match rate"), "{last}");
    assert!(last.contains("within 1.00 points"), "{last}");
    assert!(last.contains("new p99"), "{last}");
    assert_eq!(m["routes"][0]["ramp"]["gates"]["latency_quantile"], "p99");
    assert_eq!(m["routes"][0]["ramp"]["gates"]["latency_min_samples"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_side_three_times_slower_is_rolled_back_by_the_latency_test() {
    let legacy =
        Backend::with_handler("legacy", |_| item(10).delay(Duration::from_millis(5))).await;
    let new = Backend::with_handler("items", |_| item(10).delay(Duration::from_millis(15))).await;
    let dir = tempfile::tempdir().unwrap();
    let b = banyan(&config(
        "items_slow",
        &legacy,
        &new,
        dir.path(),
        // p90: a quantile that a busy test machine's own hiccups do not reach.
        "steps = [10, 50, 100], min_time = \"1s\", interval = \"200ms\", latency_quantile = \"p90\"",
    ))
    .await;
    let traffic = load_from(b.proxy_addr, 8);
    let admin = b.admin_addr;
    let rolled_back = eventually(Duration::from_secs(120), || async move {
        events(&migration(admin).await)
            .iter()
            .any(|e| e["kind"] == "rollback")
    })
    .await;
    traffic.iter().for_each(|t| t.abort());
    let m = migration(admin).await;
    assert!(rolled_back, "{m:#}");
    let rollback = events(&m)
        .into_iter()
        .find(|e| e["kind"] == "rollback")
        .unwrap();
    assert_eq!(rollback["from_percent"], 10.0, "{m:#}");
    assert_eq!(rollback["to_percent"], 0.0);
    let reason = rollback["reason"].as_str().unwrap();
    assert!(reason.contains("new p90"), "{reason}");
    assert!(reason.contains("over 1.50x legacy's"), "{reason}");
    assert!(reason.contains("beyond chance"), "{reason}");
    assert_eq!(m["routes"][0]["ramp"]["paused"], true);
}

#[tokio::test]
async fn a_route_that_gets_no_traffic_stays_at_0_percent() {
    let legacy = Backend::with_handler("legacy", |_| item(10)).await;
    let new = Backend::with_handler("items", |_| item(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let b = banyan(&config(
        "items_idle",
        &legacy,
        &new,
        dir.path(),
        "steps = [10, 50, 100], min_time = \"1ms\", interval = \"50ms\"",
    ))
    .await;
    let admin = b.admin_addr;
    // Many judgements, none with evidence.
    let judged = eventually(Duration::from_secs(10), || async move {
        !judgement(&migration(admin).await).is_empty()
    })
    .await;
    assert!(judged);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = migration(admin).await;
    assert_eq!(m["routes"][0]["percent_new"], 0.0, "{m:#}");
    assert!(events(&m).is_empty(), "{m:#}");
    let holding = m["routes"][0]["ramp"]["holding"].as_str().unwrap();
    assert!(holding.contains("0 of 50 comparisons"), "{holding}");
    // Every gate says what it waits for, or why it does not apply at 0%.
    let gates = judgement(&m);
    assert_eq!(gates.len(), 3, "{m:#}");
    assert_eq!(gates[0]["gate"], "match_rate");
    assert_eq!(gates[0]["verdict"], "wait");
    assert_eq!(gates[0]["waiting_for"], "50 comparisons");
    assert_eq!(gates[1]["verdict"], "not_applicable");
    assert_eq!(gates[2]["verdict"], "not_applicable");
}

#[tokio::test]
async fn a_canary_compares_every_request_whichever_side_serves_it() {
    let legacy = Backend::with_handler("legacy", |_| item(10)).await;
    let new = Backend::with_handler("items", |_| item(11)).await;
    let dir = tempfile::tempdir().unwrap();
    let b = banyan(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n\
         [upstreams.items]\nendpoints = [\"{}\"]\n[shadow]\nstore = {:?}\n\
         [[routes]]\nname = \"items_both_ways\"\nmatch.path = {{ prefix = \"/items\" }}\n\
         action = \"migrate\"\n\
         migration = {{ stage = \"canary\", new = \"items\", percent = 50, key = {{ header = \"x-user\" }} }}\n\
         compare = {{ ignore = [\"header.x-backend\"] }}\n",
        legacy.url(),
        new.url(),
        dir.path().join("diffs.sqlite"),
    ))
    .await;
    let admin = b.admin_addr;
    let route: Value = serde_json::from_str(&get(admin, "/api/routes", &[]).await.text()).unwrap();
    let shadow = &route["routes"][0]["shadow"];
    assert_eq!(
        (&shadow["to"], &shadow["back"]),
        (&"items".into(), &"legacy".into())
    );

    let users = 40;
    let mut by_new = 0;
    for i in 0..users {
        let got = get(
            b.proxy_addr,
            "/items/7",
            &[("x-user", &format!("user-{i}"))],
        )
        .await;
        assert_eq!(got.status, 200);
        by_new += usize::from(got.backend() == Some("items"));
    }
    assert!(by_new > 0 && by_new < users, "{by_new} of {users} on new");
    // Each side got a copy of exactly what the other served.
    let copies = |b: &Backend| {
        b.requests()
            .iter()
            .filter(|r| r.headers.contains_key("x-banyan-shadow"))
            .count()
    };
    let copied = eventually(Duration::from_secs(10), || async {
        copies(&legacy) == by_new && copies(&new) == users - by_new
    })
    .await;
    assert!(
        copied,
        "legacy got {} copies, new {}; new served {by_new}",
        copies(&legacy),
        copies(&new)
    );
    let compared = eventually(Duration::from_secs(10), || async move {
        let shadow: Value =
            serde_json::from_str(&get(admin, "/api/shadow", &[]).await.text()).unwrap();
        shadow["routes"][0]["mismatches"].as_u64() == Some(users as u64)
    })
    .await;
    assert!(compared, "every request compared");

    // The samples say which side answered the client.
    let mut primaries = std::collections::BTreeSet::new();
    let stored = eventually(Duration::from_secs(10), || async {
        let diffs: Value =
            serde_json::from_str(&get(admin, "/api/diffs", &[]).await.text()).unwrap();
        diffs["groups"][0]["count"].as_u64() == Some(users as u64)
    })
    .await;
    assert!(stored, "every mismatch stored");
    let diffs: Value = serde_json::from_str(&get(admin, "/api/diffs", &[]).await.text()).unwrap();
    let signature = diffs["groups"][0]["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let group: Value = serde_json::from_str(
        &get(
            admin,
            &format!("/api/diffs?signature={signature}&limit=100"),
            &[],
        )
        .await
        .text(),
    )
    .unwrap();
    for s in group["samples"].as_array().unwrap() {
        let id = s["id"].as_i64().unwrap();
        let sample: Value =
            serde_json::from_str(&get(admin, &format!("/api/diffs/{id}"), &[]).await.text())
                .unwrap();
        let (primary, copy) = (
            &sample["primary"]["upstream"],
            &sample["shadow"]["upstream"],
        );
        assert_ne!(primary, copy, "{sample:#}");
        primaries.insert(primary.as_str().unwrap().to_string());
    }
    assert_eq!(
        primaries.into_iter().collect::<Vec<_>>(),
        ["items", "legacy"]
    );
}

#[tokio::test]
async fn pause_resume_promote_and_rollback_through_the_api() {
    let legacy = Backend::with_handler("legacy", |_| item(10)).await;
    let new = Backend::with_handler("items", |_| item(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let b = banyan(&config(
        "items_control",
        &legacy,
        &new,
        dir.path(),
        "steps = [10, 50, 100], min_time = \"1h\", interval = \"100ms\"",
    ))
    .await;
    let admin = b.admin_addr;
    // The first step, like every step, needs its evidence: at 0%, agreeing comparisons.
    compared(b.proxy_addr, 100).await;
    assert!(
        eventually(Duration::from_secs(10), || async move {
            percent(admin).await == 10.0
        })
        .await
    );
    let post = |path: &'static str| async move { call(admin, "POST", path, &[], "").await };
    assert_eq!(post("/api/migration/items_control/pause").await.status, 200);
    assert_eq!(
        post("/api/migration/items_control/pause").await.status,
        409,
        "already paused"
    );
    let got = post("/api/migration/items_control/promote").await;
    assert_eq!(got.status, 200);
    let answer: Value = serde_json::from_str(&got.text()).unwrap();
    assert_eq!(answer["event"]["to_percent"], 50.0);
    assert_eq!(percent(admin).await, 50.0);
    assert_eq!(
        post("/api/migration/items_control/rollback").await.status,
        200
    );
    assert_eq!(percent(admin).await, 10.0);
    assert_eq!(
        post("/api/migration/items_control/resume").await.status,
        200
    );
    assert_eq!(migration(admin).await["routes"][0]["ramp"]["paused"], false);
    assert_eq!(post("/api/migration/nope/pause").await.status, 404);
    assert_eq!(
        post("/api/migration/items_control/launch").await.status,
        404
    );
    let kinds: Vec<String> = events(&migration(admin).await)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["advance", "pause", "promote", "manual_rollback", "resume"]
    );

    // The requests follow the ramp: at 10%, about a tenth of users are served by the new
    // service (the rest are served by legacy and copied to it, so count answers).
    for i in 0..400 {
        get(b.proxy_addr, "/items/7", &[("x-user", &format!("u{i}"))]).await;
    }
    let to_new = metric(
        admin,
        "banyan_requests_total{route=\"items_control\",status_class=\"2xx\",upstream=\"items\"}",
    )
    .await;
    assert!((15.0..=70.0).contains(&to_new), "{to_new} of 400 at 10%");

    // The same from the command line, against the running banyan.
    let admin_url = format!("http://{admin}");
    let cli = move |args: Vec<String>| {
        let out = std::process::Command::new(banyan_bin())
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking({
        let a = args(&["migrate", "items_control", "pause", "--admin", &admin_url]);
        move || cli(a)
    })
    .await
    .unwrap();
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("items_control: pause 10.0% -> 10.0% (paused)"),
        "{stdout}"
    );
    let (ok, _, stderr) = tokio::task::spawn_blocking({
        let a = args(&["migrate", "items_control", "pause", "--admin", &admin_url]);
        move || cli(a)
    })
    .await
    .unwrap();
    assert!(!ok && stderr.contains("409"), "{stderr}");
    let (ok, stdout, _) = tokio::task::spawn_blocking({
        let a = args(&["report", "--admin", &admin_url, "--format", "json"]);
        move || cli(a)
    })
    .await
    .unwrap();
    assert!(ok);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["routes"][0]["route"], "items_control");
    assert_eq!(report["routes"][0]["ready"], false);

    // The report says where the route stands.
    let report = get(admin, "/api/migration/report?format=markdown", &[])
        .await
        .text();
    assert!(
        report.contains("| items_control | canary | 10.0%"),
        "{report}"
    );
    assert!(
        report.contains("no: the canary serves 10%, not 100%"),
        "{report}"
    );
}

#[tokio::test]
async fn the_ramp_survives_a_reload_of_an_unchanged_route_and_a_restart() {
    let legacy = Backend::with_handler("legacy", |_| item(10)).await;
    let new = Backend::with_handler("items", |_| item(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        "items_restart",
        &legacy,
        &new,
        dir.path(),
        "steps = [10, 50, 100], min_time = \"1h\", interval = \"100ms\"",
    );
    let path = dir.path().join("banyan.toml");
    std::fs::write(&path, format!("{text}\n{}", listeners())).unwrap();
    let launch_path = path.clone();
    let mut first = tokio::task::spawn_blocking(move || Process::launch(&launch_path, &[], &[]))
        .await
        .unwrap();
    let admin = first.admin_addr;
    compared(first.proxy_addr, 100).await;
    assert!(
        eventually(Duration::from_secs(10), || async move {
            percent(admin).await == 10.0
        })
        .await
    );
    assert_eq!(
        call(
            admin,
            "POST",
            "/api/migration/items_restart/promote",
            &[],
            ""
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(admin, "POST", "/api/migration/items_restart/pause", &[], "")
            .await
            .status,
        200
    );

    // A reload that leaves the route as it is keeps the ramp where it stands.
    std::fs::write(&path, format!("# edited\n{text}\n{}", listeners())).unwrap();
    assert_eq!(
        call(admin, "POST", "/api/config/reload", &[], "")
            .await
            .status,
        200
    );
    assert_eq!(percent(admin).await, 50.0);

    first.signal("TERM");
    let status = tokio::task::spawn_blocking(move || first.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(status.unwrap().success());
    let second = tokio::task::spawn_blocking(move || Process::launch(&path, &[], &[]))
        .await
        .unwrap();
    let m = migration(second.admin_addr).await;
    assert_eq!(m["routes"][0]["percent_new"], 50.0, "{m:#}");
    assert_eq!(m["routes"][0]["ramp"]["paused"], true);
    let evs = events(&m);
    let kinds: Vec<&str> = evs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["advance", "promote", "pause"]);
}

#[test]
fn a_migrated_route_takes_the_shadow_settings_but_not_where_copies_go() {
    let text = "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://127.0.0.1:1\"]\n\
        [upstreams.items]\nendpoints = [\"http://127.0.0.1:2\"]\n\
        [[routes]]\nname = \"m\"\naction = \"migrate\"\nmigration = { stage = \"shadow\", new = \"items\" }\n\
        shadow = { percent = 20, max_in_flight = 8, noise = \"secondary\" }\n";
    let config = common::config(text);
    let shadow = config
        .features(banyan::ids::RouteId::new(0))
        .shadow
        .as_ref()
        .unwrap();
    assert_eq!(shadow.to, config.upstream_id("items").unwrap());
    assert_eq!(shadow.threshold, 2000);
    assert_eq!(shadow.max_in_flight, 8);
    assert!(shadow.noise);
}
