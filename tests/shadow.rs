//! Shadow traffic through a real banyan: what reaches the shadow, that the client never
//! notices a hanging shadow, noise against regressions, and what the diff store keeps.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Shadow counts are per process and per route name: each test names its route apart.
fn shadow_config(
    name: &str,
    legacy: &Backend,
    new: &str,
    route_extra: &str,
    store: &std::path::Path,
    shadow_extra: &str,
) -> String {
    format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{}"]
[upstreams.new]
endpoints = ["{new}"]

[shadow]
store = "{}"
max_body = 8388608
{shadow_extra}

[[routes]]
name = "{name}"
match = {{ path = {{ prefix = "/api/" }} }}
action = "shadow"
upstream = "legacy"
{route_extra}
"#,
        legacy.url(),
        store.display()
    )
}

async fn shadow_report(admin: std::net::SocketAddr) -> Value {
    serde_json::from_slice(&get(admin, "/api/shadow", &[]).await.body).unwrap()
}

#[tokio::test]
async fn shadowed_get_and_opted_in_post_reach_the_shadow_intact() {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let dir = tempfile::tempdir().unwrap();
    let route = "shadow = { to = \"new\" }\nshadow_methods = [\"POST\"]\nrewrite = { prefix = \"/v2/\", set_headers = { \"x-route\" = \"items\" } }";
    let text = shadow_config(
        "intact",
        &legacy,
        &new.url(),
        route,
        &dir.path().join("d.sqlite"),
        "",
    );
    let b = banyan::server::start(config(&format!(
        "{text}\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
    )))
    .await
    .unwrap();
    let p = b.proxy_addr;

    let got = get(p, "/api/items/1?x=1", &[("x-a", "1")]).await;
    assert_eq!(got.backend(), Some("legacy"));
    assert_eq!(got.text(), "legacy");
    assert!(eventually(Duration::from_secs(5), || async { new.count() == 1 }).await);
    let (to_legacy, to_new) = (&legacy.requests()[0], &new.requests()[0]);
    assert_eq!(to_new.method, "GET");
    assert_eq!(
        to_new.uri.to_string(),
        "/v2/items/1?x=1",
        "the route's rewrite applies to the shadow"
    );
    assert_eq!(to_new.headers["x-a"], "1");
    assert_eq!(to_new.headers["x-route"], "items");
    assert_eq!(to_new.headers["x-banyan-shadow"], "1");
    assert!(to_legacy.headers.get("x-banyan-shadow").is_none());
    assert_eq!(
        to_new.headers["x-request-id"],
        to_legacy.headers["x-request-id"]
    );

    // A 5 MB POST, opted in: the same bytes reach both sides.
    let body: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let hash = xxhash_rust::xxh3::xxh3_64(&body);
    let c = client();
    let got = send(
        &c,
        "POST",
        &format!("http://{p}/api/orders"),
        &[("content-type", "application/octet-stream")],
        body,
    )
    .await;
    assert_eq!(got.backend(), Some("legacy"));
    assert!(eventually(Duration::from_secs(5), || async { new.count() == 2 }).await);
    let (to_legacy, to_new) = (&legacy.requests()[1], &new.requests()[1]);
    assert_eq!(to_new.method, "POST");
    assert_eq!(to_new.uri.to_string(), "/v2/orders");
    assert_eq!((to_new.body_len, to_new.body_hash), (5 * 1024 * 1024, hash));
    assert_eq!(
        (to_legacy.body_len, to_legacy.body_hash),
        (5 * 1024 * 1024, hash)
    );

    // DELETE is not opted in: never shadowed.
    send(&c, "DELETE", &format!("http://{p}/api/orders/1"), &[], "").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(new.count(), 2);
    let metrics = get(b.admin_addr, "/metrics", &[]).await.text();
    assert!(
        metrics.contains("banyan_shadow_requests_total{outcome=\"match\",route=\"intact\"}")
            || metrics
                .contains("banyan_shadow_requests_total{outcome=\"mismatch\",route=\"intact\"}"),
        "{metrics}"
    );
}

/// A listener that accepts and never answers; counts what it accepted.
async fn hanging() -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (addr, accepted, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_shadow_changes_nothing_for_the_client() {
    let legacy = Backend::with_handler("legacy", |seen| {
        Reply::ok(format!("{{\"path\":\"{}\"}}", seen.uri.path()))
            .header("content-type", "application/json")
    })
    .await;
    let (hang, accepted, _task) = hanging().await;
    let dir = tempfile::tempdir().unwrap();
    let route = "shadow = { to = \"new\", max_in_flight = 16, timeout = \"60s\" }";
    let banyan = Process::start(&shadow_config(
        "items",
        &legacy,
        &format!("http://{hang}"),
        route,
        &dir.path().join("d.sqlite"),
        "max_in_flight = 32",
    ));
    let direct = format!("http://{}", legacy.addr);
    let proxy = banyan.proxy_addr;
    let c = client();
    let results: Vec<(String, String)> = futures_util::stream::iter(0..1000)
        .map(|i| {
            let c = c.clone();
            let direct = direct.clone();
            async move {
                let path = format!("/api/items/{i}");
                let through = send(&c, "GET", &format!("http://{proxy}{path}"), &[], "").await;
                let plain = send(&c, "GET", &format!("{direct}{path}"), &[], "").await;
                assert_eq!(through.status, 200);
                assert_eq!(through.header("content-type"), plain.header("content-type"));
                (through.text(), plain.text())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(results.len(), 1000);
    assert!(
        results.iter().all(|(a, b)| a == b),
        "a shadowed response differs from the unshadowed one"
    );
    let held = accepted.load(Ordering::SeqCst);
    assert!(
        held <= 16,
        "{held} shadow requests in flight, the limit is 16"
    );
    assert!(held >= 1, "the shadow was never tried");
    let dropped = metric(
        banyan.admin_addr,
        "banyan_shadow_requests_total{outcome=\"dropped\",route=\"items\"}",
    )
    .await;
    assert!(dropped >= (1000 - 16) as f64, "dropped {dropped}");
    let report = shadow_report(banyan.admin_addr).await;
    assert_eq!(report["in_flight"], held);
    let rss = banyan.peak_rss();
    eprintln!(
        "hanging shadow: {held} in flight, {dropped} dropped, peak RSS {} KiB",
        rss / 1024
    );
    assert!(rss < 60 * 1024 * 1024, "peak RSS {} MiB", rss / 1024 / 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_is_told_from_a_regression() {
    fn answer(price_changes: bool) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
        move |_| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            let price = if price_changes && rand::random_range(0..100) < 5 {
                11
            } else {
                10
            };
            let body = serde_json::json!({
                "id": rand::random::<u64>(),
                "time": format!("{}.{:06}", now.as_secs(), now.subsec_micros()),
                "price": price,
                "name": "lamp",
            });
            Reply::ok(body.to_string()).header("content-type", "application/json")
        }
    }
    let legacy = Backend::with_handler("legacy", answer(false)).await;
    let new = Backend::with_handler("new", answer(true)).await;
    let dir = tempfile::tempdir().unwrap();
    let route = "shadow = { to = \"new\", noise = \"secondary\" }";
    let text = shadow_config(
        "noisy",
        &legacy,
        &new.url(),
        route,
        &dir.path().join("d.sqlite"),
        "",
    );
    let b = banyan::server::start(config(&format!(
        "{text}\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
    )))
    .await
    .unwrap();
    let (proxy, admin) = (b.proxy_addr, b.admin_addr);
    let noisy = |report: &Value| {
        report["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == "noisy")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let c = client();
    futures_util::stream::iter(0..2000)
        .for_each_concurrent(16, |i| {
            let c = c.clone();
            async move {
                let got = send(&c, "GET", &format!("http://{proxy}/api/items/{i}"), &[], "").await;
                assert_eq!(got.status, 200);
            }
        })
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            noisy(&shadow_report(admin).await)["compared"].as_u64() >= Some(1990)
        })
        .await,
        "{}",
        shadow_report(admin).await
    );
    let report = shadow_report(admin).await;
    let route = &noisy(&report);
    let field = |name: &str| {
        route["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(field("$.price")["verdict"], "regression", "{report:#}");
    assert!(field("$.price")["noise"].as_u64() == Some(0));
    for noisy in ["$.id", "$.time"] {
        assert_eq!(field(noisy)["verdict"], "noise", "{noisy}: {report:#}");
        assert_eq!(
            field(noisy)["suggested_ignore"],
            format!("compare.ignore = [\"{noisy}\"]")
        );
    }
    assert!(field("$.name").is_null(), "an equal field is not reported");
    let m = metric(
        admin,
        "banyan_shadow_field_diffs_total{field=\"$.price\",kind=\"value\",route=\"noisy\"}",
    )
    .await;
    assert!(m > 40.0 && m < 200.0, "price differed in {m} of 2000");
}

#[tokio::test]
async fn stored_samples_hold_no_credentials() {
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok(r#"{"email":"alice@example.com","total":10}"#)
            .header("content-type", "application/json")
            .header("set-cookie", "session=legacy-cookie-secret")
    })
    .await;
    let new = Backend::with_handler("new", |_| {
        Reply::ok(r#"{"email":"alice@example.com","total":12}"#)
            .header("content-type", "application/json")
            .header("set-cookie", "session=new-cookie-secret")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("diffs.sqlite");
    let route = "shadow = { to = \"new\" }\ncompare = { redact = [\"$.email\"] }";
    let text = shadow_config("secrets", &legacy, &new.url(), route, &db, "");
    let b = banyan::server::start(config(&format!(
        "{text}\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
    )))
    .await
    .unwrap();
    for _ in 0..5 {
        get(
            b.proxy_addr,
            "/api/cart",
            &[
                ("authorization", "Bearer top-secret-token"),
                ("cookie", "sid=cookie-jar-secret"),
            ],
        )
        .await;
    }
    let rows = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let samples: i64 = conn
            .query_row("SELECT count(*) FROM diff_samples", [], |r| r.get(0))
            .unwrap_or(0);
        let groups: Vec<(i64, String)> = conn
            .prepare("SELECT count, fields FROM diff_groups")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .unwrap_or_default();
        (samples, groups)
    };
    assert!(
        eventually(Duration::from_secs(5), || async { rows().0 == 5 }).await,
        "{:?}",
        rows()
    );
    let (_, groups) = rows();
    assert_eq!(groups.len(), 1, "one bug, one group: {groups:?}");
    assert_eq!(groups[0].0, 5);
    assert!(groups[0].1.contains("$.total"), "{groups:?}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let sample: String = conn
        .query_row("SELECT request || primary_response || shadow_response || differences FROM diff_samples LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert!(sample.contains("$.total"), "{sample}");
    drop(conn);
    let mut everything = String::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        everything.push_str(&String::from_utf8_lossy(
            &std::fs::read(entry.unwrap().path()).unwrap(),
        ));
    }
    for secret in [
        "top-secret-token",
        "cookie-jar-secret",
        "legacy-cookie-secret",
        "new-cookie-secret",
        "alice@example.com",
    ] {
        assert!(!everything.contains(secret), "{secret} was stored");
        assert!(!sample.contains(secret), "{secret} was stored");
    }
    assert!(sample.contains("redacted:"), "{sample}");
}

/// Echo backends, as the independent attack used: every credential a request carries
/// comes back in both responses. With no redaction configured, none of them may reach the
/// diff store's files, and the difference in a secret field still counts.
#[tokio::test]
async fn a_corpus_of_secrets_never_reaches_the_store_by_default() {
    fn echo(side: &'static str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
        move |seen: &Seen| {
            let headers: serde_json::Map<String, Value> = seen
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(v.to_str().unwrap_or(""))))
                .collect();
            let body = serde_json::json!({
                "side": side,
                "path": seen.uri.to_string(),
                "headers": headers,
                "body": String::from_utf8_lossy(&seen.body),
                "refresh_token": format!("{side}-refresh-token-7f3a"),
                "profile": { "name": "Ann", "card": "4111 1111 1111 1111" },
                "jwt_echo": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLXNlY3JldA",
            });
            Reply::ok(body.to_string())
                .header("content-type", "application/json")
                .header("set-cookie", format!("session={side}-set-cookie-secret"))
                .header("x-auth-token", format!("{side}-response-header-secret"))
        }
    }
    let legacy = Backend::with_handler("legacy", echo("legacy")).await;
    let new = Backend::with_handler("new", echo("new")).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("diffs.sqlite");
    let route = "shadow = { to = \"new\" }\nshadow_methods = [\"POST\"]";
    let text = shadow_config("secret-corpus", &legacy, &new.url(), route, &db, "");
    let b = banyan::server::start(config(&format!(
        "{text}\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
    )))
    .await
    .unwrap();
    let url = |path: &str| format!("http://{}{path}", b.proxy_addr);
    let c = client();
    type Corpus<'a> = Vec<(&'a str, String, Vec<(&'a str, &'a str)>, &'a str)>;
    let requests: Corpus = vec![
        (
            "POST",
            url("/api/echo"),
            vec![
                ("authorization", "Bearer corpus-bearer-secret-1"),
                ("content-type", "application/json"),
            ],
            r#"{"user":"ann","password":"corpus-password-2","nested":{"api_key":"corpus-apikey-3"}}"#,
        ),
        (
            "GET",
            url("/api/echo?token=corpus-query-token-4&page=2&access_token=corpus-query-at-5"),
            vec![("cookie", "sid=corpus-cookie-6"), ("x-session-id", "corpus-session-7")],
            "",
        ),
        (
            "POST",
            url("/api/login"),
            vec![("content-type", "application/x-www-form-urlencoded")],
            "user=ann&passwd=corpus-form-passwd-8&client_secret=corpus-form-secret-9",
        ),
        (
            "POST",
            url("/api/upload"),
            vec![("content-type", "multipart/form-data; boundary=B0und")],
            "--B0und\r\nContent-Disposition: form-data; name=\"private_key\"\r\n\r\ncorpus-multipart-key-10\r\n--B0und--\r\n",
        ),
        (
            "POST",
            url("/api/note"),
            vec![("content-type", "text/plain"), ("x-api-key", "corpus-apikey-header-11")],
            "call me with Bearer corpus-bearer-in-text-12 or card 5500 0000 0000 0004",
        ),
    ];
    for (method, url, headers, body) in &requests {
        let got = send(&c, method, url, headers, body.to_string()).await;
        assert_eq!(got.status, 200, "{method} {url}");
    }
    let stored = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("SELECT count(*) FROM diff_samples", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_or(0)
    };
    assert!(
        eventually(Duration::from_secs(5), || async { stored() == 5 }).await,
        "{} samples stored",
        stored()
    );
    // Compare first: the secret field differs between the sides, and that is counted.
    let diffs: Value = serde_json::from_slice(
        &get(b.admin_addr, "/api/diffs?route=secret-corpus", &[])
            .await
            .body,
    )
    .unwrap();
    assert!(
        diffs.to_string().contains("$.refresh_token"),
        "the difference in a secret field was hidden: {diffs}"
    );
    let mut everything = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        everything.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let everything = String::from_utf8_lossy(&everything);
    let mut found = Vec::new();
    for secret in [
        "corpus-bearer-secret-1",
        "corpus-password-2",
        "corpus-apikey-3",
        "corpus-query-token-4",
        "corpus-query-at-5",
        "corpus-cookie-6",
        "corpus-session-7",
        "corpus-form-passwd-8",
        "corpus-form-secret-9",
        "corpus-multipart-key-10",
        "corpus-apikey-header-11",
        "corpus-bearer-in-text-12",
        "5500 0000 0000 0004",
        "4111 1111 1111 1111",
        "refresh-token-7f3a",
        "set-cookie-secret",
        "response-header-secret",
        "c2lnbmF0dXJlLXNlY3JldA",
    ] {
        if everything.contains(secret) {
            found.push(secret);
        }
    }
    assert!(found.is_empty(), "stored in the diff store: {found:?}");
    // What is not secret is kept, so the samples stay useful.
    assert!(everything.contains("page=2"));
    assert!(everything.contains("Ann"));
}

#[tokio::test]
async fn split_with_shadow_and_reverse_shadow() {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{}"]
[upstreams.new]
endpoints = ["{}"]
[shadow]
store = "{}"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"

# 30% of users on the new side; the other 70% shadowed to it.
[[routes]]
name = "canary"
match = {{ path = {{ prefix = "/canary/" }} }}
action = "split"
split = {{ to = "new", percent = 30, key = {{ header = "x-user" }} }}
shadow = {{ to = "new" }}

# After cut-over: the new service serves, the monolith is compared against it.
[[routes]]
name = "reverse"
match = {{ path = {{ prefix = "/moved/" }} }}
action = "shadow"
upstream = "new"
shadow = {{ to = "legacy" }}
"#,
        legacy.url(),
        new.url(),
        dir.path().join("d.sqlite").display()
    );
    let b = banyan::server::start(config(&text)).await.unwrap();
    let mut served_by_legacy = 0;
    for u in 0..200 {
        let user = format!("u{u}");
        let got = get(b.proxy_addr, "/canary/x", &[("x-user", &user)]).await;
        if got.backend() == Some("legacy") {
            served_by_legacy += 1;
        }
    }
    assert!((100..180).contains(&served_by_legacy), "{served_by_legacy}");
    let shadowed = || {
        new.requests()
            .iter()
            .filter(|s| s.headers.contains_key("x-banyan-shadow"))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            shadowed() == served_by_legacy
        })
        .await,
        "{} shadowed, {served_by_legacy} served by legacy",
        shadowed()
    );

    let got = get(b.proxy_addr, "/moved/y", &[]).await;
    assert_eq!(got.backend(), Some("new"));
    assert!(
        eventually(Duration::from_secs(5), || async {
            legacy
                .requests()
                .iter()
                .any(|s| s.uri.path() == "/moved/y" && s.headers["x-banyan-shadow"] == "1")
        })
        .await
    );
}

/// A diff store that cannot be opened says why (diffs API and status), and shadows still
/// compare; one whose writes fail counts the samples it loses and says it is failing,
/// until a write succeeds again.
#[tokio::test]
async fn the_diff_store_reports_its_health() {
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok(r#"{"v":1}"#).header("content-type", "application/json")
    })
    .await;
    let new = Backend::with_handler("new", |_| {
        Reply::ok(r#"{"v":2}"#).header("content-type", "application/json")
    })
    .await;
    let listeners = "\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n";
    let route = "shadow = { to = \"new\" }";

    // A directory where the file should be.
    let dir = tempfile::tempdir().unwrap();
    let text = shadow_config("store-broken", &legacy, &new.url(), route, dir.path(), "");
    let b = banyan::server::start(config(&format!("{text}{listeners}")))
        .await
        .unwrap();
    let diffs = get(b.admin_addr, "/api/diffs", &[]).await;
    assert_eq!(diffs.status, 503, "{}", diffs.text());
    assert!(
        diffs.text().contains("could not be opened"),
        "{}",
        diffs.text()
    );
    let status: Value =
        serde_json::from_slice(&get(b.admin_addr, "/api/config/status", &[]).await.body).unwrap();
    assert_eq!(status["store"]["state"], "unavailable", "{status}");
    assert!(
        status["store"]["error"]
            .as_str()
            .unwrap()
            .contains("diff store"),
        "{status}"
    );
    get(b.proxy_addr, "/api/x", &[]).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            metric(
                b.admin_addr,
                "banyan_shadow_requests_total{outcome=\"mismatch\",route=\"store-broken\"}",
            )
            .await
                >= 1.0
        })
        .await,
        "shadows stopped comparing without a store"
    );

    // A store whose writes fail: another connection holds the write lock.
    let db = dir.path().join("locked.sqlite");
    let text = shadow_config("store-locked", &legacy, &new.url(), route, &db, "");
    let b = banyan::server::start(config(&format!("{text}{listeners}")))
        .await
        .unwrap();
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    get(b.proxy_addr, "/api/x", &[]).await;
    let dropped = "banyan_shadow_samples_dropped_total{route=\"store-locked\"}";
    assert!(
        eventually(Duration::from_secs(15), || async {
            metric(b.admin_addr, dropped).await >= 1.0
        })
        .await,
        "a lost sample was not counted"
    );
    let status: Value =
        serde_json::from_slice(&get(b.admin_addr, "/api/config/status", &[]).await.body).unwrap();
    assert_eq!(status["store"]["state"], "failing", "{status}");
    assert!(status["store"]["lost"].as_u64() >= Some(1), "{status}");
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    get(b.proxy_addr, "/api/x", &[]).await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            let status: Value =
                serde_json::from_slice(&get(b.admin_addr, "/api/config/status", &[]).await.body)
                    .unwrap();
            status["store"]["state"] == "ok" && status["store"]["written"].as_u64() >= Some(1)
        })
        .await,
        "the store did not recover"
    );
}

/// `compare.case_insensitive_keys`: two services whose JSON differs only in the case of
/// one object's keys mismatch without the rule and match with it; a real difference
/// under those keys is still found.
#[tokio::test]
async fn case_insensitive_keys_change_the_verdict_as_documented() {
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok(r#"{"headers":{"Content-Type":"json","X-Region":"eu"},"id":7}"#)
            .header("content-type", "application/json")
    })
    .await;
    let new = Backend::with_handler("new", |seen| {
        let region = if seen.uri.path().ends_with("/moved") {
            "us"
        } else {
            "eu"
        };
        Reply::ok(format!(
            r#"{{"headers":{{"content-type":"json","x-region":"{region}"}},"id":7}}"#
        ))
        .header("content-type", "application/json")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = |route: &'static str, extra: &'static str| {
        let text = shadow_config(
            route,
            &legacy,
            &new.url(),
            &format!("shadow = {{ to = \"new\" }}\n{extra}"),
            &dir.path().join(format!("{route}.sqlite")),
            "",
        );
        async move {
            let b = banyan(&text).await;
            for path in ["/api/same", "/api/moved"] {
                assert_eq!(get(b.proxy_addr, path, &[]).await.backend(), Some("legacy"));
            }
            let counted = |o: &str| {
                format!("banyan_shadow_requests_total{{outcome=\"{o}\",route=\"{route}\"}}")
            };
            let admin = b.admin_addr;
            eventually(Duration::from_secs(5), || async {
                metric(admin, &counted("match")).await + metric(admin, &counted("mismatch")).await
                    >= 2.0
            })
            .await;
            let report = shadow_report(admin).await;
            (
                metric(admin, &counted("match")).await,
                metric(admin, &counted("mismatch")).await,
                report.to_string(),
            )
        }
    };
    // The backends name themselves in `x-backend`: not a difference here.
    let (matched, mismatched, _) = outcome(
        "keys-cased",
        "compare = { ignore = [\"header.x-backend\"] }",
    )
    .await;
    assert_eq!(
        (matched, mismatched),
        (0.0, 2.0),
        "without the rule both differ"
    );
    let (matched, mismatched, report) = outcome(
        "keys-folded",
        "compare = { ignore = [\"header.x-backend\"], case_insensitive_keys = [\"$.headers\"] }",
    )
    .await;
    assert_eq!(
        (matched, mismatched),
        (1.0, 1.0),
        "with it, only the real difference"
    );
    assert!(report.contains("$.headers.x-region"), "{report}");
}

/// `compare.allow_extra`: the new service answers with fields legacy does not have; where
/// the route lets it grow that is no difference, elsewhere it is, and a changed field
/// always is.
#[tokio::test]
async fn allow_extra_lets_the_new_service_add_fields_where_allowed() {
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok(r#"{"id":7,"price":10,"meta":{"v":1}}"#)
            .header("content-type", "application/json")
    })
    .await;
    let new = Backend::with_handler("new", |seen| {
        let price = if seen.uri.path().ends_with("/repriced") {
            11
        } else {
            10
        };
        Reply::ok(format!(
            r#"{{"id":7,"price":{price},"currency":"EUR","meta":{{"v":1,"build":"x"}}}}"#
        ))
        .header("content-type", "application/json")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = shadow_config(
        "grown",
        &legacy,
        &new.url(),
        "shadow = { to = \"new\" }\ncompare = { ignore = [\"header.x-backend\"], allow_extra = [\"$\"] }",
        &dir.path().join("grown.sqlite"),
        "",
    );
    let b = banyan(&text).await;
    for path in ["/api/same", "/api/repriced"] {
        assert_eq!(get(b.proxy_addr, path, &[]).await.backend(), Some("legacy"));
    }
    let counted =
        |o: &str| format!("banyan_shadow_requests_total{{outcome=\"{o}\",route=\"grown\"}}");
    let admin = b.admin_addr;
    eventually(Duration::from_secs(5), || async {
        metric(admin, &counted("match")).await + metric(admin, &counted("mismatch")).await >= 2.0
    })
    .await;
    // `currency` is added at the top, which may grow; `meta.build` is added inside meta,
    // which may not: both requests differ in meta.build, the second in price too.
    assert_eq!(metric(admin, &counted("mismatch")).await, 2.0);
    let report = shadow_report(admin).await.to_string();
    assert!(report.contains("$.meta.build"), "{report}");
    assert!(report.contains("$.price"), "{report}");
    assert!(
        !report.contains("$.currency"),
        "an allowed addition was reported: {report}"
    );
}
