//! Capture and replay through real servers on loopback: banyan records a route's
//! traffic, then `banyan replay` (the binary) sends it to a second implementation and
//! gates on what differs; HAR files from a browser-like generator replay too.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An items service: `/api/items/N` answers the item, with the price given; `noisy`
/// adds a fresh id to every answer, as real services do.
fn items(name: &'static str, price: f64, noisy: bool) -> impl Fn(&Seen) -> Reply + Send + Sync {
    let counter = AtomicUsize::new(0);
    move |seen: &Seen| {
        let id: u64 = seen
            .uri
            .path()
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut item =
            json!({"id": id, "name": format!("item {id}"), "price": price, "tags": ["a", "b"]});
        if noisy {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            item["request_id"] = json!(format!(
                "{name}-{n}-{:x}",
                xxhash_rust::xxh3::xxh3_64(&n.to_le_bytes())
            ));
        }
        Reply::ok(item.to_string()).header("content-type", "application/json")
    }
}

fn capture_config(legacy: &Backend, dir: &Path, extra: &str) -> String {
    format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{}"]
[capture]
dir = "{}"
max_file_size = "1MiB"

[[routes]]
name = "items"
match = {{ path = {{ prefix = "/api/items" }} }}
action = "forward"
upstream = "legacy"
capture = {{ percent = 100, methods = ["GET", "POST"] }}
compare = {{ ignore = ["header.x-backend"] }}
{extra}
{}"#,
        legacy.url(),
        dir.display(),
        listeners()
    )
}

fn records_in(dir: &Path) -> Vec<banyan::capture::record::Record> {
    let mut files: Vec<PathBuf> = banyan::capture::writer::capture_files(dir)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| banyan::capture::read::read(p).unwrap())
        .collect()
}

/// Every byte of the capture files, decompressed.
fn capture_text(dir: &Path) -> String {
    use std::io::Read;
    let mut out = String::new();
    for (path, _) in banyan::capture::writer::capture_files(dir) {
        let file = std::fs::File::open(path).unwrap();
        let mut text = String::new();
        // A file being written ends where its last flush did.
        let _ = flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text);
        out.push_str(&text);
    }
    out
}

/// `banyan replay ARGS...`: its exit code, stdout and stderr.
async fn replay(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(banyan_bin())
        .arg("replay")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Capture 20 GETs and 2 POSTs through banyan, with credentials in headers and the query.
async fn captured(dir: &Path, legacy: &Backend) -> (banyan::server::Running, PathBuf) {
    let config_path = dir.join("banyan.toml");
    let captures = dir.join("captures");
    let text = capture_config(legacy, &captures, "");
    std::fs::write(&config_path, &text).unwrap();
    let b = banyan::server::start(config(&text)).await.unwrap();
    let c = client();
    for i in 0..20 {
        let url = format!(
            "http://{}/api/items/{i}?api_key=k-secret-9876&page=1",
            b.proxy_addr
        );
        let got = send(
            &c,
            "GET",
            &url,
            &[
                ("authorization", "Bearer tok-secret-0123456789abcdef"),
                ("cookie", "session=s3cr3t-cookie"),
            ],
            "",
        )
        .await;
        assert_eq!(got.status, 200);
    }
    for i in 0..2 {
        let url = format!("http://{}/api/items/{i}", b.proxy_addr);
        send(
            &c,
            "POST",
            &url,
            &[("content-type", "application/json")],
            r#"{"qty":1,"password":"hunter2-pw"}"#,
        )
        .await;
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            records_in(&captures).len() == 22
        })
        .await,
        "{} records",
        records_in(&captures).len()
    );
    (b, config_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_gates_the_new_service_on_the_field_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = Backend::with_handler("legacy", items("legacy", 10.0, false)).await;
    let (_b, config_path) = captured(dir.path(), &legacy).await;
    let captures = dir.path().join("captures");

    // What was recorded: the request as the client sent it, the answer it got.
    let records = records_in(&captures);
    let first = records
        .iter()
        .find(|r| r.request.path == "/api/items/0" && r.request.method == "GET")
        .unwrap();
    assert_eq!(first.route.as_deref(), Some("items"));
    assert_eq!(
        first.request.query.as_deref().map(|q| q.contains("page=1")),
        Some(true)
    );
    assert!(
        first.response.body.body.contains("\"price\":10"),
        "{first:?}"
    );
    assert_eq!(first.response.status, 200);
    assert!(first.response.latency_ms > 0.0);
    // No credential reaches the disk: not the header's, the cookie's, the query's or the
    // body's.
    let text = capture_text(&captures);
    for secret in [
        "tok-secret-0123456789abcdef",
        "s3cr3t-cookie",
        "k-secret-9876",
        "hunter2-pw",
    ] {
        assert!(!text.contains(secret), "{secret} in the capture files");
    }
    assert!(text.contains("page=1"), "the rest of the query is kept");

    let config_arg = config_path.to_str().unwrap();
    let dir_arg = captures.to_str().unwrap();
    // A second implementation that changed one field: named in the report, exit 1.
    let changed = Backend::with_handler("new", items("new", 11.0, false)).await;
    let report_json = dir.path().join("report.json");
    let store = dir.path().join("replay.sqlite");
    let (code, stdout, stderr) = replay(&[
        dir_arg,
        "--target",
        &changed.url(),
        "--config",
        config_arg,
        "--report-json",
        report_json.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("`$.price`") && stdout.contains("FAIL"),
        "{stdout}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_json).unwrap()).unwrap();
    let route = &report["routes"][0];
    assert_eq!(route["route"], "items");
    assert_eq!(route["replayed"], 20, "GETs only without --allow-writes");
    let fields: Vec<&str> = route["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["$.price"], "{report}");
    assert_eq!(route["fields"][0]["example"]["recorded"], "10.0");
    assert_eq!(route["fields"][0]["example"]["replayed"], "11.0");
    assert_eq!(changed.count(), 20);
    assert!(changed.requests().iter().all(|r| r.method == "GET"));
    // Redacted credentials are not sent as if they were real ones.
    assert!(changed
        .requests()
        .iter()
        .all(|r| !r.headers.contains_key("authorization")));
    // The run is in the diff store, for the dashboard.
    let conn = rusqlite::Connection::open(&store).unwrap();
    let stored: i64 = conn
        .query_row(
            "SELECT count(*) FROM diff_samples WHERE route = 'items'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 20);
    let request: String = conn
        .query_row("SELECT request FROM diff_samples LIMIT 1", [], |r| r.get(0))
        .unwrap();
    let request: Value = serde_json::from_str(&request).unwrap();
    assert_eq!(
        request["replay"]["target"],
        changed.url(),
        "marked as a replay: {request}"
    );

    // An identical implementation: exit 0.
    let same = Backend::with_handler("new", items("new", 10.0, false)).await;
    let (code, stdout, stderr) =
        replay(&[dir_arg, "--target", &same.url(), "--config", config_arg]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("PASS"), "{stdout}");

    // Writes go only when allowed, with test credentials supplied from the environment.
    let (code, _, stderr) = tokio::process::Command::new(banyan_bin())
        .args([
            "replay",
            dir_arg,
            "--target",
            &same.url(),
            "--config",
            config_arg,
            "--allow-writes",
            "--methods",
            "POST",
        ])
        .args(["--set-header", "Authorization: Bearer $REPLAY_TOKEN"])
        .env("REPLAY_TOKEN", "test-token-1")
        .output()
        .await
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                (),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let posts: Vec<Seen> = same
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].headers["authorization"], "Bearer test-token-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_fields_are_told_from_regressions_with_the_legacy_side() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = Backend::with_handler("legacy", items("legacy", 10.0, true)).await;
    let (_b, config_path) = captured(dir.path(), &legacy).await;
    let captures = dir.path().join("captures");
    let (config_arg, dir_arg) = (config_path.to_str().unwrap(), captures.to_str().unwrap());
    // The new service draws its own request ids, as legacy does each time.
    let new = Backend::with_handler("new", items("new", 10.0, true)).await;
    let (code, stdout, _) =
        replay(&[dir_arg, "--target", &new.url(), "--config", config_arg]).await;
    assert_eq!(
        code, 1,
        "without the legacy side, the id is a regression: {stdout}"
    );
    let report = dir.path().join("noise.json");
    let (code, stdout, stderr) = replay(&[
        dir_arg,
        "--target",
        &new.url(),
        "--config",
        config_arg,
        "--noise",
        &legacy.url(),
        "--report-json",
        report.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let field = &report["routes"][0]["fields"][0];
    assert_eq!(field["field"], "$.request_id");
    assert_eq!(field["verdict"], "noise");
    // A real change beside the noise is still a regression.
    let changed = Backend::with_handler("new", items("new", 12.0, true)).await;
    let (code, stdout, _) = replay(&[
        dir_arg,
        "--target",
        &changed.url(),
        "--config",
        config_arg,
        "--noise",
        &legacy.url(),
    ])
    .await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("| `$.price` | value | 20 | 0 | regression"),
        "{stdout}"
    );
}

/// A HAR file as a browser's developer tools save it (pseudo-headers, timings, pages).
fn browser_har(origin: &str, ids: &[u64]) -> String {
    let entries: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "_initiator": {"type": "script"},
                "pageref": "page_1",
                "startedDateTime": format!("2026-11-20T10:00:{:02}.000Z", i),
                "time": 12.5,
                "request": {
                    "method": "GET",
                    "url": format!("{origin}/api/items/{id}"),
                    "httpVersion": "http/2.0",
                    "headers": [
                        {"name": ":authority", "value": "shop.example.com"},
                        {"name": ":method", "value": "GET"},
                        {"name": "accept", "value": "application/json"},
                        {"name": "user-agent", "value": "Mozilla/5.0 Chrome/156"}
                    ],
                    "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0
                },
                "response": {
                    "status": 200, "statusText": "", "httpVersion": "http/2.0",
                    "headers": [{"name": "content-type", "value": "application/json"}],
                    "cookies": [],
                    "content": {"size": 60, "mimeType": "application/json",
                                "text": json!({"id": id, "name": format!("item {id}"), "price": 10.0, "tags": ["a", "b"]}).to_string()},
                    "redirectURL": "", "headersSize": -1, "bodySize": -1
                },
                "cache": {}, "timings": {"blocked": 0.5, "send": 0.1, "wait": 11, "receive": 0.9}
            })
        })
        .collect();
    json!({"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
                   "pages": [{"startedDateTime": "2026-11-20T10:00:00.000Z", "id": "page_1", "title": "shop", "pageTimings": {}}],
                   "entries": entries}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_har_replays_and_captures_export_as_har() {
    let dir = tempfile::tempdir().unwrap();
    let har = dir.path().join("shop.har");
    std::fs::write(&har, browser_har("https://shop.example.com", &[1, 2, 3, 4])).unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "ignore = [\"header.x-backend\"]\n").unwrap();
    let same = Backend::with_handler("new", items("new", 10.0, false)).await;
    let (code, stdout, stderr) = replay(&[
        har.to_str().unwrap(),
        "--target",
        &same.url(),
        "--rules",
        rules.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(same.count(), 4);
    assert!(same
        .requests()
        .iter()
        .all(|r| !r.headers.contains_key(":authority")));
    let changed = Backend::with_handler("new", items("new", 9.0, false)).await;
    fails_on_price(&har, &changed.url(), &rules).await;

    // A capture exported as HAR replays to the same verdict.
    let legacy = Backend::with_handler("legacy", items("legacy", 10.0, false)).await;
    let (_b, _) = captured(dir.path(), &legacy).await;
    let exported = dir.path().join("export.har");
    let out = tokio::process::Command::new(banyan_bin())
        .args([
            "capture",
            "export",
            "--har",
            dir.path().join("captures").to_str().unwrap(),
            "--output",
            exported.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let har: Value = serde_json::from_slice(&std::fs::read(&exported).unwrap()).unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(har["log"]["entries"].as_array().unwrap().len(), 22);
    assert_eq!(har["log"]["entries"][0]["_route"], "items");
    fails_on_price(&exported, &changed.url(), &rules).await;
}

/// Replaying `file` against `target` with `rules` fails on the changed price.
async fn fails_on_price(file: &Path, target: &str, rules: &Path) {
    let (code, stdout, _) = replay(&[
        file.to_str().unwrap(),
        "--target",
        target,
        "--rules",
        rules.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("`$.price`"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limiter_holds_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let har = dir.path().join("many.har");
    let ids: Vec<u64> = (0..40).collect();
    std::fs::write(&har, browser_har("http://shop.example.com", &ids)).unwrap();
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let handler = items("new", 10.0, false);
    let target = Backend::with_handler("new", move |s| {
        seen.lock().unwrap().push(Instant::now());
        handler(s)
    })
    .await;
    let rate = 40.0;
    let (code, stdout, stderr) = replay(&[
        har.to_str().unwrap(),
        "--target",
        &target.url(),
        "--rate",
        "40",
        "--concurrency",
        "4",
    ])
    .await;
    assert_eq!(
        code, 1,
        "x-backend differs without rules: {stdout}\n{stderr}"
    );
    let times = arrivals.lock().unwrap().clone();
    assert_eq!(times.len(), 40);
    let span = times.last().unwrap().duration_since(times[0]).as_secs_f64();
    let achieved = (times.len() - 1) as f64 / span;
    // Never faster than asked; slower only by what a loaded machine takes.
    let ratio = achieved / rate;
    assert!(
        (0.5..=1.05).contains(&ratio),
        "{achieved:.1}/s for {rate}/s"
    );
}

/// A capture directory that cannot be written (here a file stands where the directory
/// was): every client is answered as before, and the lost records are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_changes_nothing_for_clients() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = Backend::with_handler("legacy", items("legacy", 10.0, false)).await;
    let captures = dir.path().join("captures");
    let b = banyan::server::start(config(&capture_config(&legacy, &captures, "")))
        .await
        .unwrap();
    std::fs::remove_dir_all(&captures).unwrap();
    std::fs::write(&captures, "not a directory").unwrap();
    for i in 0..20 {
        let got = get(b.proxy_addr, &format!("/api/items/{i}"), &[]).await;
        assert_eq!(got.status, 200);
        assert!(got.text().contains(&format!("\"id\":{i}")));
    }
    let admin = b.admin_addr;
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric(
                admin,
                "banyan_capture_dropped_total{reason=\"write_failed\"}",
            )
            .await
                >= 1.0
        })
        .await,
        "lost records are counted"
    );
}
