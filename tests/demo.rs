//! The demo: its backends behind banyan with config/demo.toml, reached as the config says.

#![allow(clippy::unwrap_used)]

mod common;
use banyan::demo::{serve, Backend as DemoBackend};
use common::*;
use std::time::Duration;
use tokio::net::TcpListener;

#[tokio::test]
async fn demo_traffic_reaches_both_backends_as_configured() {
    let legacy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let catalog = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml"))
        .unwrap()
        .replace("127.0.0.1:18081", &legacy.local_addr().unwrap().to_string())
        .replace(
            "127.0.0.1:18082",
            &catalog.local_addr().unwrap().to_string(),
        )
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0");
    assert_eq!(
        text,
        banyan::demo::DEMO_TOML
            .replace("127.0.0.1:18081", &legacy.local_addr().unwrap().to_string())
            .replace(
                "127.0.0.1:18082",
                &catalog.local_addr().unwrap().to_string()
            )
            .replace("127.0.0.1:8080", "127.0.0.1:0")
            .replace("127.0.0.1:9090", "127.0.0.1:0"),
        "the built-in demo config is config/demo.toml"
    );
    let store = tempfile::tempdir().unwrap();
    let text = text
        .replace(
            "./data/banyan-diffs.sqlite",
            &store.path().join("d.sqlite").display().to_string(),
        )
        .replace(
            "./data/captures",
            &store.path().join("captures").display().to_string(),
        );
    tokio::spawn(serve(legacy, DemoBackend::Legacy));
    tokio::spawn(serve(catalog, DemoBackend::Catalog));
    let b = banyan::server::start(config(&text)).await.unwrap();
    let p = b.proxy_addr;
    let side = |got: &Got| got.header("x-demo-backend").unwrap_or("none").to_string();

    let users = get(p, "/api/users/7", &[]).await;
    assert_eq!(side(&users), "catalog");
    let product = get(p, "/api/products/2", &[]).await;
    assert_eq!(side(&product), "catalog");
    assert!(
        product.text().contains("\"title\":\"Oak table\""),
        "{}",
        product.text()
    );
    let search = get(p, "/api/search?q=lamp", &[]).await;
    assert_eq!(side(&search), "legacy");
    assert!(search.text().contains("Desk lamp"));
    assert_eq!(
        side(&get(p, "/api/items", &[("x-preview", "1")]).await),
        "catalog"
    );
    assert_eq!(side(&get(p, "/api/items", &[]).await), "legacy");

    // The 50% split by session: both sides serve some sessions, each session one side.
    let mut sides = std::collections::HashSet::new();
    for s in 0..40 {
        let cookie = format!("session=s{s}");
        let first = side(&get(p, "/api/items/1", &[("cookie", &cookie)]).await);
        let again = side(&get(p, "/api/items/1", &[("cookie", &cookie)]).await);
        assert_eq!(first, again, "session s{s} changed side");
        sides.insert(first);
    }
    assert_eq!(sides.len(), 2, "{sides:?}");

    // The sessions served by the monolith are shadowed to the new service: its real
    // differences are regressions, the per-request fields noise.
    for s in 0..240 {
        get(p, "/api/items/1", &[("cookie", &format!("session=t{s}"))]).await;
    }
    let report = || async {
        let body = get(b.admin_addr, "/api/shadow", &[]).await.body;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == "item-detail")
            .cloned()
            .unwrap()
    };
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            report().await["compared"].as_u64() >= Some(60)
        })
        .await
    );
    let route = report().await;
    let verdict = |field: &str| {
        route["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == field)
            .map(|f| f["verdict"].clone())
    };
    for regression in ["$.name", "$.title", "$.price", "$.tags", "$.generated_at"] {
        assert_eq!(
            verdict(regression),
            Some("regression".into()),
            "{regression}: {route:#}"
        );
    }
    for noise in ["$.trace_id", "$.served_at"] {
        assert_eq!(verdict(noise), Some("noise".into()), "{noise}: {route:#}");
    }
}

/// `banyan demo` handles SIGHUP as `run` does: it reloads its file, and does not exit.
#[test]
fn the_demo_reloads_on_sighup_instead_of_exiting() {
    use std::io::BufRead;
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.toml");
    let text = banyan::demo::DEMO_TOML
        .replace("127.0.0.1:18081", &free())
        .replace("127.0.0.1:18082", &free())
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace(
            "./data/banyan-diffs.sqlite",
            &dir.path().join("d.sqlite").display().to_string(),
        );
    std::fs::write(&path, &text).unwrap();
    let mut child = std::process::Command::new(banyan_bin())
        .args(["demo", "-c"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut admin = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("admin:") {
            admin = Some(
                rest.trim()
                    .trim_start_matches("http://")
                    .trim_end_matches("/metrics")
                    .to_string(),
            );
            break;
        }
    }
    let admin: std::net::SocketAddr = admin
        .expect("the demo prints its admin address")
        .parse()
        .unwrap();
    let log = collect_lines(child.stderr.take().unwrap());
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reloaded = rt.block_on(eventually(Duration::from_secs(5), || {
        let log = log.clone();
        async move { log.lock().unwrap().contains("SIGHUP") }
    }));
    assert!(reloaded, "no reload was logged: {}", log.lock().unwrap());
    assert!(
        child.try_wait().unwrap().is_none(),
        "the demo exited on SIGHUP"
    );
    let status = rt.block_on(get(admin, "/healthz", &[]));
    assert_eq!(status.status, 200);
    let _ = child.kill();
    let _ = child.wait();
}

/// The README's round trip: the demo records its item list, and `banyan replay` sends the
/// recording to the new catalog service with the demo's rules. The report names the
/// renamed field as a regression and, with the monolith as the noise side, the trace id
/// and serving time as noise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_capture_replays_against_the_new_catalog_service() {
    let legacy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let catalog = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (legacy_addr, catalog_addr) = (legacy.local_addr().unwrap(), catalog.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let captures = dir.path().join("captures");
    let text = banyan::demo::DEMO_TOML
        .replace("127.0.0.1:18081", &legacy_addr.to_string())
        .replace("127.0.0.1:18082", &catalog_addr.to_string())
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace(
            "./data/banyan-diffs.sqlite",
            &dir.path().join("d.sqlite").display().to_string(),
        )
        .replace("./data/captures", &captures.display().to_string());
    let config_path = dir.path().join("demo.toml");
    std::fs::write(&config_path, &text).unwrap();
    tokio::spawn(serve(legacy, DemoBackend::Legacy));
    tokio::spawn(serve(catalog, DemoBackend::Catalog));
    let b = banyan::server::start(config(&text)).await.unwrap();
    for _ in 0..10 {
        assert_eq!(get(b.proxy_addr, "/api/items", &[]).await.status, 200);
    }
    let recorded = || {
        banyan::capture::writer::capture_files(&captures)
            .iter()
            .map(|(p, _)| banyan::capture::read::read(p).unwrap().len())
            .sum::<usize>()
    };
    assert!(eventually(Duration::from_secs(10), || async { recorded() == 10 }).await);
    let report = dir.path().join("report.json");
    let out = tokio::process::Command::new(banyan_bin())
        .arg("replay")
        .arg(&captures)
        .args(["--target", &format!("http://{catalog_addr}")])
        .arg("-c")
        .arg(&config_path)
        .args(["--noise", &format!("http://{legacy_addr}")])
        .arg("--report-json")
        .arg(&report)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let route = &report["routes"][0];
    assert_eq!(route["route"], "items-list");
    assert_eq!(route["replayed"], 10);
    let verdict = |field: &str| {
        route["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == field)
            .map(|f| f["verdict"].as_str().unwrap().to_string())
    };
    assert_eq!(
        verdict("$.items[*].trace_id").as_deref(),
        Some("noise"),
        "{stdout}"
    );
    assert_eq!(
        verdict("$.items[*].name").as_deref(),
        Some("regression"),
        "{stdout}"
    );
    assert!(
        route["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["verdict"] == "regression"),
        "{stdout}"
    );
}
