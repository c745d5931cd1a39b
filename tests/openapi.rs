//! The admin API keeps to its OpenAPI document: schemathesis (an OpenAPI fuzzer, installed
//! by `make test` into target/schemathesis) runs every operation with every check against
//! a running banyan with a token (mutating calls with it, the auth checks without it),
//! and must find nothing.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::PathBuf;
use std::time::Duration;

/// The schemathesis command: `BANYAN_SCHEMATHESIS`, else the one `make test` installs.
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("BANYAN_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let installed =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis/bin/schemathesis");
    assert!(
        installed.exists(),
        "schemathesis is not installed: `make test-deps` installs it into target/schemathesis (or set BANYAN_SCHEMATHESIS)"
    );
    installed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_keeps_to_its_openapi_document() {
    let st = schemathesis();
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok(r#"{"id":1,"price":10}"#).header("content-type", "application/json")
    })
    .await;
    let new = Backend::with_handler("new", |_| {
        Reply::ok(r#"{"id":1,"price":12}"#).header("content-type", "application/json")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "st-token").unwrap();
    let text = format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{}"]
[upstreams.new]
endpoints = ["{}"]
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token_file = {:?}
[shadow]
store = {:?}

[[routes]]
name = "items"
match = {{ path = {{ prefix = "/api/items" }} }}
action = "shadow"
shadow = {{ to = "new" }}

[[routes]]
name = "users"
match = {{ path = {{ prefix = "/api/users" }} }}
action = "migrate"
migration = {{ stage = "canary", new = "new", percent = 10 }}
"#,
        legacy.url(),
        new.url(),
        token.display().to_string(),
        dir.path().join("d.sqlite").display().to_string(),
    );
    let path = dir.path().join("banyan.toml");
    std::fs::write(&path, &text).unwrap();
    let b = banyan::server::start_with_file(config(&text), Some(path))
        .await
        .unwrap();
    for i in 0..20 {
        get(b.proxy_addr, &format!("/api/items/{i}"), &[]).await;
        get(b.proxy_addr, &format!("/api/users/{i}"), &[]).await;
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(b.admin_addr, "/api/diffs", &[])
                .await
                .text()
                .contains("price")
        })
        .await
    );

    let url = format!("http://{}/api/openapi.json", b.admin_addr);
    let config_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemathesis/schemathesis.toml"
    );
    let report = dir.path().join("report");
    let work = dir.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(st)
            // schemathesis keeps a cache in its working directory: not in the repository.
            .current_dir(&work)
            .arg("--no-color")
            .args(["--config-file", config_file])
            .args(["run", &url, "--checks", "all", "--seed", "1"])
            .args(["-H", "Authorization: Bearer st-token"])
            .arg("--report-dir")
            .arg(report)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every operation of the document was tested, none skipped.
    let figure = |label: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {label} in:\n{out}"))
    };
    let selected = figure("Selected:");
    let (selected, of) = selected.split_once('/').unwrap();
    assert_eq!(selected, of, "{out}");
    assert_eq!(figure("Tested:"), of, "{out}");
}
