//! Hot reload: under load nothing fails and every answer comes from an upstream that was
//! configured while the request ran; invalid configs change nothing, however they arrive;
//! ConfigMap symlink swaps land; history, rollback, dry runs, tokens; no leaks.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::Value;

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

async fn status(admin: std::net::SocketAddr) -> Value {
    serde_json::from_slice(&get(admin, "/api/config/status", &[]).await.body).unwrap()
}

#[tokio::test]
async fn invalid_configs_by_file_signal_and_api_change_nothing_and_are_reported() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let banyan = Process::start(&two_way(&a, &b, "a"));
    let (proxy, admin) = (banyan.proxy_addr, banyan.admin_addr);
    let routed = || async move { get(proxy, "/api/x", &[]).await.backend().map(String::from) };
    assert_eq!(routed().await.as_deref(), Some("a"));
    let bad = with_listeners(&two_way(&a, &b, "nowhere"));
    let bad_line = bad.lines().position(|l| l.contains("nowhere")).unwrap() + 1;

    // By file.
    std::fs::write(&banyan.config_path, &bad).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            status(admin).await["last_error"]["source"] == "file"
        })
        .await
    );
    let s = status(admin).await;
    assert_eq!(s["last_error"]["line"], bad_line);
    assert!(
        s["last_error"]["error"]
            .as_str()
            .unwrap()
            .contains("\"nowhere\", which is not defined"),
        "{s}"
    );
    assert_eq!(s["version"]["number"], 1);
    assert_eq!(routed().await.as_deref(), Some("a"));

    // By SIGHUP (the file is still the bad one).
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &banyan.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        eventually(Duration::from_secs(5), || async {
            status(admin).await["last_error"]["source"] == "signal"
        })
        .await
    );
    assert_eq!(routed().await.as_deref(), Some("a"));

    // By the API.
    let put = call(admin, "PUT", "/api/config", &[], &bad).await;
    assert_eq!(put.status, 422);
    let body: Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(body["line"], bad_line);
    assert!(body["column"].as_u64().unwrap() >= 1);
    assert!(
        body["error"].as_str().unwrap().contains("PUT /api/config:"),
        "{body}"
    );
    assert_eq!(status(admin).await["last_error"]["source"], "api");
    assert_eq!(routed().await.as_deref(), Some("a"));
    let s = status(admin).await;
    assert_eq!(s["reloads"]["rejected"], 3);
    assert_eq!(s["version"]["number"], 1);
    for source in ["file", "signal", "api"] {
        let m = metric(
            admin,
            &format!("banyan_config_reloads_total{{result=\"failure\",source=\"{source}\"}}"),
        )
        .await;
        assert_eq!(m, 1.0, "{source}");
    }

    // A good file is picked up after all that.
    std::fs::write(&banyan.config_path, with_listeners(&two_way(&a, &b, "b"))).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            routed().await.as_deref() == Some("b")
        })
        .await
    );
    assert_eq!(metric(admin, "banyan_config_version").await, 2.0);
    assert_eq!(
        metric(
            admin,
            "banyan_config_reloads_total{result=\"success\",source=\"file\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_applied_within_a_second() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The layout kubelet writes: config.toml -> ..data/config.toml, ..data -> ..<stamp>.
    std::fs::create_dir(root.join("..2026_11_22_v1")).unwrap();
    std::fs::write(
        root.join("..2026_11_22_v1/config.toml"),
        with_listeners(&two_way(&a, &b, "a")),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_22_v1", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.toml", root.join("config.toml")).unwrap();
    let path = root.join("config.toml");
    let running =
        banyan::server::start_with_file(banyan::config::Config::load(&path).unwrap(), Some(path))
            .await
            .unwrap();
    let proxy = running.proxy_addr;
    assert_eq!(get(proxy, "/api/x", &[]).await.backend(), Some("a"));

    std::fs::create_dir(root.join("..2026_11_22_v2")).unwrap();
    std::fs::write(
        root.join("..2026_11_22_v2/config.toml"),
        with_listeners(&two_way(&a, &b, "b")),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_22_v2", root.join("..data_tmp")).unwrap();
    let swapped_at = Instant::now();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    let applied = eventually(Duration::from_secs(1), || async {
        get(proxy, "/api/x", &[]).await.backend() == Some("b")
    })
    .await;
    assert!(applied, "not applied within 1 s of the swap");
    eprintln!("ConfigMap swap applied after {:?}", swapped_at.elapsed());
    let s = status(running.admin_addr).await;
    assert_eq!(s["version"]["source"], "file");
}

#[tokio::test]
async fn history_versions_rollback_dry_run_and_the_token() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let admin_section = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
        token_file.display()
    );
    let cfg = |target: &str| format!("{}\n{admin_section}", two_way(&a, &b, target));
    let running = banyan::server::start(config(&cfg("a"))).await.unwrap();
    let (proxy, admin) = (running.proxy_addr, running.admin_addr);
    let auth = [("authorization", "Bearer s3cret")];

    // Without the token, nothing mutates.
    assert_eq!(
        call(admin, "PUT", "/api/config", &[], &cfg("b"))
            .await
            .status,
        401
    );
    assert_eq!(
        call(
            admin,
            "PUT",
            "/api/config",
            &[("authorization", "Bearer wrong")],
            &cfg("b")
        )
        .await
        .status,
        401
    );
    assert_eq!(
        call(admin, "POST", "/api/config/rollback/1", &[], "")
            .await
            .status,
        401
    );
    assert_eq!(get(proxy, "/api/x", &[]).await.backend(), Some("a"));

    // A dry run needs the token too (it reads the files a config names), says what
    // would change, and changes nothing.
    let anonymous = call(admin, "PUT", "/api/config?dry_run=true", &[], &cfg("b")).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let dry = call(admin, "PUT", "/api/config?dry_run=true", &auth, &cfg("b")).await;
    assert_eq!(dry.status, 200, "{}", dry.text());
    let dry: Value = serde_json::from_slice(&dry.body).unwrap();
    assert_eq!(dry["valid"], true);
    assert_eq!(dry["diff"]["routes"][0]["name"], "x");
    assert_eq!(dry["diff"]["routes"][0]["kind"], "changed");
    assert_eq!(dry["diff"]["routes"][0]["fields"][0]["key"], "upstream");
    assert_eq!(dry["diff"]["routes"][0]["fields"][0]["to"], "\"b\"");
    assert_eq!(get(proxy, "/api/x", &[]).await.backend(), Some("a"));
    let bad = call(admin, "PUT", "/api/config?dry_run=true", &auth, &cfg("zzz")).await;
    assert_eq!(bad.status, 422);

    // Apply two versions, read the history, roll back to the first.
    let put = call(admin, "PUT", "/api/config", &auth, &cfg("b")).await;
    assert_eq!(put.status, 200, "{}", put.text());
    let v2: Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(v2["applied"]["version"], 2);
    let same = call(admin, "PUT", "/api/config", &auth, &cfg("b")).await;
    let same: Value = serde_json::from_slice(&same.body).unwrap();
    assert_eq!(
        same["applied"]["unchanged"], true,
        "the same text is not a new version"
    );
    assert_eq!(get(proxy, "/api/x", &[]).await.backend(), Some("b"));

    let history: Value =
        serde_json::from_slice(&get(admin, "/api/config/history", &[]).await.body).unwrap();
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["number"], 2);
    assert_eq!(versions[0]["source"], "api");
    assert_eq!(versions[1]["source"], "startup");
    assert_eq!(versions[0]["hash"].as_str().unwrap().len(), 32);
    assert!(versions[0]["applied_at"].as_f64().unwrap() > 1.7e9);
    assert_eq!(
        get(admin, "/api/config/versions/1", &[]).await.text(),
        cfg("a")
    );
    assert_eq!(get(admin, "/api/config/versions/9", &[]).await.status, 404);

    let back = call(admin, "POST", "/api/config/rollback/1", &auth, "").await;
    assert_eq!(back.status, 200, "{}", back.text());
    let back: Value = serde_json::from_slice(&back.body).unwrap();
    assert_eq!(back["applied"]["version"], 3);
    assert_eq!(back["diff"]["routes"][0]["fields"][0]["to"], "\"a\"");
    assert_eq!(get(proxy, "/api/x", &[]).await.backend(), Some("a"));
    assert_eq!(get(admin, "/api/config", &[]).await.text(), cfg("a"));
    assert_eq!(
        call(admin, "POST", "/api/config/rollback/77", &auth, "")
            .await
            .status,
        404
    );

    // Started without a file: a reload from disk is refused, and said so.
    let reload = call(admin, "POST", "/api/config/reload", &auth, "").await;
    assert_eq!(reload.status, 422);
    assert!(
        reload.text().contains("without a config file"),
        "{}",
        reload.text()
    );
}

#[tokio::test]
async fn the_environment_token_guards_the_process() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let banyan = Process::start_with_env(&two_way(&a, &b, "a"), &[("BANYAN_ADMIN_TOKEN", "t0k3n")]);
    let admin = banyan.admin_addr;
    let denied = call(admin, "POST", "/api/config/reload", &[], "").await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    let ok = call(
        admin,
        "POST",
        "/api/config/reload",
        &[("authorization", "Bearer t0k3n")],
        "",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        get(admin, "/api/config/status", &[]).await.status,
        200,
        "reading needs no token"
    );
}

#[tokio::test]
async fn check_against_a_running_banyan_prints_the_route_differences() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let running = banyan(&two_way(&a, &b, "a")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("next.toml");
    let next =
        with_listeners(&two_way(&a, &b, "b")).replace("name = \"x\"", "name = \"x\"\n# moved to b");
    let next = format!("{next}\n[[routes]]\nname = \"extra\"\nmatch = {{ path = {{ exact = \"/e\" }} }}\naction = \"forward\"\nupstream = \"b\"\n");
    std::fs::write(&file, next).unwrap();
    let admin_url = format!("http://{}", running.admin_addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(banyan_bin())
            .args([
                "check",
                "-c",
                file.to_str().unwrap(),
                "--against",
                &admin_url,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("difference from the config running at"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  ~ x\n      upstream: \"a\" -> \"b\""),
        "{stdout}"
    );
    assert!(stdout.contains("  + extra (added)"), "{stdout}");
    assert_eq!(
        get(running.proxy_addr, "/api/x", &[]).await.backend(),
        Some("a"),
        "check applies nothing"
    );
}

#[tokio::test]
async fn unchanged_pools_keep_their_health_and_removed_pools_stop_checking() {
    let good = Backend::start("good").await;
    let sick = Backend::with_handler("sick", |seen| {
        if seen.uri.path() == "/health" {
            Reply::status(500)
        } else {
            Reply::ok("sick")
        }
    })
    .await;
    let extra = Backend::start("extra").await;
    let cfg = |route_path: &str, with_extra: bool| {
        let mut text = format!(
            "default = \"pool\"\n[upstreams.pool]\nendpoints = [\"{}\", \"{}\"]\nhealth_check = {{ path = \"/health\", interval = \"50ms\", unhealthy_threshold = 1 }}\n",
            good.url(),
            sick.url()
        );
        if with_extra {
            text.push_str(&format!(
                "[upstreams.extra]\nendpoints = [\"{}\"]\nhealth_check = {{ path = \"/health\", interval = \"20ms\" }}\n",
                extra.url()
            ));
        }
        text.push_str(&format!(
            "[[routes]]\nname = \"r\"\nmatch = {{ path = {{ prefix = \"{route_path}\" }} }}\naction = \"forward\"\nupstream = \"pool\"\n"
        ));
        with_listeners(&text)
    };
    let running = banyan::server::start(config(&cfg("/a", true)))
        .await
        .unwrap();
    let gauge = format!(
        "banyan_upstream_healthy{{endpoint=\"{}\",upstream=\"pool\"}}",
        sick.url()
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            metric(running.admin_addr, &gauge).await == 0.0
        })
        .await
    );

    // A reload that changes a route but not the pool: the pool is the same one, so the
    // sick endpoint is still known to be sick at once (a new pool would start healthy).
    let applied = running
        .reloader
        .apply(
            &cfg("/b", false),
            "test",
            banyan::reload::history::Origin::Api,
        )
        .unwrap();
    assert!(!applied.unchanged);
    for _ in 0..10 {
        let got = get(running.proxy_addr, "/b", &[]).await;
        assert_eq!(
            got.backend(),
            Some("good"),
            "the reused pool kept its health state"
        );
    }
    assert_eq!(metric(running.admin_addr, &gauge).await, 0.0);

    // The removed upstream's health checks stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let checks = extra.count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        extra.count(),
        checks,
        "a removed pool kept checking its endpoints"
    );
}

/// A version applied through the API survives file events that do not change the file
/// (a certificate renewed beside the config, an editor's swap file); the status says
/// where the running version came from; a change to the file itself still applies.
#[tokio::test]
async fn an_api_version_survives_unrelated_file_events() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let banyan = Process::start(&two_way(&a, &b, "a"));
    let (proxy, admin) = (banyan.proxy_addr, banyan.admin_addr);
    let routed = || async move { get(proxy, "/api/x", &[]).await.backend().map(String::from) };
    let s = status(admin).await;
    assert_eq!(s["file_matches_running"], true, "{s}");

    let api_version = with_listeners(&two_way(&a, &b, "b"));
    let put = call(admin, "PUT", "/api/config", &[], &api_version).await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(routed().await.as_deref(), Some("b"));
    let s = status(admin).await;
    assert_eq!(s["source"], "api", "{s}");
    assert_eq!(s["file_matches_running"], false, "{s}");
    assert!(s["note"].as_str().unwrap().contains("came from api"), "{s}");

    // Unrelated events in the config's directory: a new file, a rewritten neighbour, the
    // config file touched with its content unchanged.
    let dir = banyan.config_path.parent().unwrap().to_path_buf();
    std::fs::write(dir.join("tls.pem"), "renewed").unwrap();
    std::fs::write(dir.join(".banyan.toml.swp"), "x").unwrap();
    let same = std::fs::read(&banyan.config_path).unwrap();
    std::fs::write(&banyan.config_path, same).unwrap();
    // The watcher reads within its debounce (100 ms, at most 500 ms in a burst).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        routed().await.as_deref(),
        Some("b"),
        "a file event undid the API's version"
    );
    let s = status(admin).await;
    assert_eq!(s["version"]["number"], 2, "{s}");
    assert_eq!(s["version"]["source"], "api", "{s}");

    // A real change to the file applies.
    let file_version = format!("{}\n# edited\n", with_listeners(&two_way(&a, &b, "a")));
    std::fs::write(&banyan.config_path, file_version).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            routed().await.as_deref() == Some("a")
        })
        .await
    );
    let s = status(admin).await;
    assert_eq!(s["source"], "file", "{s}");
    assert_eq!(s["file_matches_running"], true, "{s}");
}
