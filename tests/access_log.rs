//! The access log: a line per request, checked field by field against the requests sent;
//! query credentials redacted; sampling per route with errors always kept; the combined
//! format; rotation by size and reopening on SIGUSR1.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn config(legacy: &Backend, new: &Backend, dead: std::net::SocketAddr, log: &Path) -> String {
    format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{legacy}"]
[upstreams.new]
endpoints = ["{new}"]
[upstreams.down]
endpoints = ["http://{dead}"]
connect_timeout = "300ms"

[[routes]]
name = "items"
match = {{ path = {{ prefix = "/items" }} }}
action = "split"
upstream = "legacy"
split = {{ to = "new", percent = 100, key = {{ header = "x-user" }} }}

[[routes]]
name = "quiet"
match = {{ path = {{ prefix = "/quiet/" }} }}
action = "forward"
upstream = "legacy"
access_log = {{ percent = 0 }}

[[routes]]
name = "broken"
match = {{ path = {{ prefix = "/broken/" }} }}
action = "forward"
upstream = "down"
access_log = {{ percent = 0 }}

[access_log]
path = "{log}"
"#,
        legacy = legacy.url(),
        new = new.url(),
        log = log.display(),
    )
}

/// The log's lines once it has `n` of them (the writer is asynchronous).
async fn lines(path: &Path, n: usize) -> Vec<String> {
    let read = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(10), || async { read().len() >= n }).await;
    read()
}

#[tokio::test]
async fn every_request_gets_a_line_with_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let legacy = Backend::start("legacy").await;
    let new = Backend::with_handler("new", |_| Reply::ok("0123456789")).await;
    let dead = dead_addr().await;
    let b = banyan(&config(&legacy, &new, dead, &log)).await;
    let c = client();
    let proxy = b.proxy_addr;

    let got = send(
        &c,
        "GET",
        &format!("http://{proxy}/items/1?page=2&token=s3cr3t-value"),
        &[
            ("x-request-id", "req-abc"),
            ("traceparent", TRACEPARENT),
            ("user-agent", "access-test/1.0"),
            ("x-user", "u1"),
        ],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    let posted = send(&c, "POST", &format!("http://{proxy}/items"), &[], "hello").await;
    assert_eq!(posted.status, 200);
    // Sampled out (percent = 0): no line, however many.
    for i in 0..5 {
        assert_eq!(get(proxy, &format!("/quiet/{i}"), &[]).await.status, 200);
    }
    // An error is always written, whatever the share.
    let failed = get(proxy, "/broken/x", &[]).await;
    assert_eq!(failed.status, 502);
    assert_eq!(get(proxy, "/elsewhere", &[]).await.status, 200);

    let lines = lines(&log, 4).await;
    let text = lines.join("\n");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        !text.contains("s3cr3t"),
        "a query credential reached the log: {text}"
    );
    assert!(
        !text.contains("/quiet/"),
        "a sampled-out request was written: {text}"
    );
    let v: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_path = |prefix: &str| {
        v.iter()
            .find(|e| e["path"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no line for {prefix}: {text}"))
    };

    let first = by_path("/items/1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["protocol"], "HTTP/1.1");
    assert!(first["path"]
        .as_str()
        .unwrap()
        .starts_with("/items/1?page=2&token=redacted:"));
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes_out"], 10);
    assert_eq!(first["bytes_in"], 0);
    assert_eq!(first["route"], "items");
    assert_eq!(first["upstream"], "new");
    assert_eq!(first["endpoint"], new.addr.to_string());
    assert_eq!(first["split"], "new");
    assert_eq!(first["retried"], false);
    assert_eq!(first["fallback"], false);
    assert_eq!(first["request_id"], "req-abc");
    assert_eq!(first["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(first["user_agent"], "access-test/1.0");
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(first.get("error").is_none());
    let time = humantime::parse_rfc3339(first["time"].as_str().unwrap()).unwrap();
    assert!(time.elapsed().unwrap() < Duration::from_secs(60));

    let post = v.iter().find(|e| e["method"] == "POST").unwrap();
    assert_eq!(post["bytes_in"], 5);
    // banyan made the request id the upstream saw: the log has the same one.
    let sent_id = new
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.method == "POST")
        .and_then(|s| s.headers.get("x-request-id").cloned())
        .unwrap();
    assert_eq!(post["request_id"], sent_id.to_str().unwrap());

    let broken = by_path("/broken/x");
    assert_eq!(broken["status"], 502);
    assert_eq!(broken["route"], "broken");
    assert_eq!(broken["upstream"], "down");
    assert_eq!(broken["error"], failed.header("x-banyan-error").unwrap());

    let other = by_path("/elsewhere");
    assert!(other.get("route").is_none());
    assert_eq!(other["upstream"], "legacy");
    assert_eq!(other["bytes_out"], "legacy".len());
}

#[tokio::test]
async fn a_line_waits_for_the_end_of_a_streamed_answer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let b = banyan(&config(&legacy, &new, dead_addr().await, &log)).await;
    // The backend streams it (`/download?bytes=N`): the count is of bytes sent.
    let got = get(b.proxy_addr, "/download?bytes=300000", &[]).await;
    assert_eq!(got.body.len(), 300_000);
    let lines = lines(&log, 1).await;
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["bytes_out"], 300_000);
    assert_eq!(v["path"], "/download?bytes=300000");
}

#[test]
fn combined_format_rotation_and_reopen_on_sigusr1() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let legacy = rt.block_on(Backend::start("legacy"));
    let text = format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{}"]
[access_log]
path = "{}"
format = "combined"
max_size = 400
keep = 2
"#,
        legacy.url(),
        log.display()
    );
    let p = Process::start(&text);
    let proxy = p.proxy_addr;
    let get_one = |path: &str| {
        let got = rt.block_on(get(proxy, path, &[("user-agent", "curl/8 \"x\"")]));
        assert_eq!(got.status, 200);
    };
    get_one("/first");
    let first = rt.block_on(lines(&log, 1));
    assert!(
        first[0].starts_with("127.0.0.1 - - ["),
        "not the combined format: {first:?}"
    );
    assert!(
        first[0]
            .contains("] \"GET /first HTTP/1.1\" 200 6 \"-\" \"curl/8 \\x22x\\x22\" duration_ms="),
        "{first:?}"
    );
    assert!(first[0].contains(" upstream=legacy "), "{first:?}");

    // logrotate moves the file away, then signals: banyan writes to a new one.
    let moved = dir.path().join("access.log.moved");
    std::fs::rename(&log, &moved).unwrap();
    let pid = p.child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    // The writer looks at the request within its poll interval.
    std::thread::sleep(Duration::from_millis(500));
    get_one("/second");
    let second = rt.block_on(lines(&log, 1));
    assert!(second[0].contains("GET /second "), "{second:?}");
    let old = std::fs::read_to_string(&moved).unwrap();
    assert!(
        old.contains("GET /first ") && !old.contains("/second"),
        "{old}"
    );

    // Past max_size the file is rotated: access.log.1, then .2; no more than keep.
    for i in 0..12 {
        get_one(&format!("/many/{i}"));
        std::thread::sleep(Duration::from_millis(30));
    }
    let one = dir.path().join("access.log.1");
    let two = dir.path().join("access.log.2");
    let rotated = rt.block_on(eventually(Duration::from_secs(10), || async {
        one.exists() && two.exists()
    }));
    assert!(
        rotated,
        "no rotation: {:?}",
        std::fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>()
    );
    assert!(!dir.path().join("access.log.3").exists());
    let all = || -> String {
        [&log, &one, &two]
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect()
    };
    let last_written = rt.block_on(eventually(Duration::from_secs(10), || async {
        all().contains("GET /many/11 ")
    }));
    assert!(last_written, "{}", all());
    for f in [&log, &one, &two] {
        let size = std::fs::metadata(f).map_or(0, |m| m.len());
        // A file is rotated once past max_size, so it holds at most one batch more.
        assert!(size < 400 + 1024, "{f:?} is {size} bytes");
    }
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_is_written_as_499() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok("late").delay(Duration::from_secs(3))
    })
    .await;
    let new = Backend::start("new").await;
    let b = banyan(&config(&legacy, &new, dead_addr().await, &log)).await;
    let mut stream = tokio::net::TcpStream::connect(b.proxy_addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: shop\r\nx-request-id: gone-1\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    let started = std::time::Instant::now();
    let lines = lines(&log, 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "written when the client left, not when the upstream answered"
    );
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["status"], 499, "{v}");
    assert_eq!(v["incomplete"], true);
    assert_eq!(v["request_id"], "gone-1");
    assert_eq!(v["path"], "/slow");
}
