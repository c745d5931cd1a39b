//! The command line: `check` and `explain` as a user runs them.

#![allow(clippy::unwrap_used)]

mod common;
use common::banyan_bin;
use std::io::Write;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(banyan_bin())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("banyan runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_configs_pass_check() {
    for file in ["config/banyan.toml", "config/demo.toml"] {
        let (code, stdout, stderr) = run(&["check", "-c", file]);
        assert_eq!(code, 0, "{file}: {stderr}");
        assert!(stdout.contains(&format!("{file}: valid")), "{stdout}");
        assert!(stdout.contains("routes:"), "{stdout}");
        assert!(!stderr.contains("warning"), "{file} has warnings: {stderr}");
    }
}

#[test]
fn check_fails_with_the_line_of_an_unknown_upstream() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://127.0.0.1:1\"]\n\n[[routes]]\nname = \"items\"\naction = \"forward\"\nupstream = \"items-svc\"\n"
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let (code, _, stderr) = run(&["check", "-c", path]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{path}:8:12: error: route \"items\" names upstream \"items-svc\", which is not defined")),
        "{stderr}"
    );
    assert!(stderr.contains("the config was not applied"), "{stderr}");
}

#[test]
fn check_reports_a_missing_file() {
    let (code, _, stderr) = run(&["check", "-c", "/nonexistent/banyan.toml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read config file /nonexistent/banyan.toml"),
        "{stderr}"
    );
}

#[test]
fn explain_names_the_route_the_reasons_and_the_upstream() {
    let (code, stdout, stderr) = run(&[
        "explain",
        "-c",
        "config/banyan.toml",
        "GET",
        "http://shop.example.com/api/items/42",
        "-H",
        "Cookie: session=abc",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("no   route \"items-beta\": header x-beta equals \"1\" is not true"),
        "{stdout}"
    );
    assert!(
        stdout.contains("YES  route \"item-detail\" matches"),
        "{stdout}"
    );
    assert!(
        stdout.contains("split by cookie session = \"abc\": bucket"),
        "{stdout}"
    );
    assert!(stdout.contains("=> upstream"), "{stdout}");

    let (_, stdout, _) = run(&["explain", "-c", "config/banyan.toml", "GET", "/api/users/7"]);
    assert!(
        stdout.contains("YES  route \"user-profile\" matches"),
        "{stdout}"
    );
    assert!(
        stdout.contains("path rewritten to /v1/profiles/7"),
        "{stdout}"
    );
    assert!(stdout.contains("=> upstream users-svc"), "{stdout}");

    let (_, stdout, _) = run(&["explain", "-c", "config/banyan.toml", "POST", "/checkout"]);
    assert!(stdout.contains("no route matches"), "{stdout}");
    assert!(stdout.contains("=> upstream legacy"), "{stdout}");
}

#[test]
fn explain_of_a_client_ip_split_uses_the_given_ip() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://127.0.0.1:1\"]\n[upstreams.new]\nendpoints = [\"http://127.0.0.1:2\"]\n[[routes]]\nname = \"all\"\naction = \"split\"\nsplit = {{ to = \"new\", percent = 50, key = \"client_ip\" }}\n"
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let (_, a, _) = run(&["explain", "-c", path, "GET", "/", "--client-ip", "10.0.0.1"]);
    assert!(a.contains("split by client IP = \"10.0.0.1\""), "{a}");
}

#[test]
fn an_exposed_admin_without_a_token_is_a_warning_for_check_and_refused_by_run() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "default = \"legacy\"\n[admin]\nlisten = \"0.0.0.0:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[upstreams.legacy]\nendpoints = [\"http://127.0.0.1:1\"]\n"
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let (code, stdout, stderr) = run(&["check", "-c", path]);
    assert_eq!(code, 0, "a warning, not an error");
    assert!(
        stderr.contains("warning: admin listens on 0.0.0.0:0 (not loopback) with no token"),
        "{stderr}"
    );
    assert!(stdout.contains("1 warning(s)"), "{stdout}");
    let out = Command::new(banyan_bin())
        .args(["run", "-c", path])
        .env_remove("BANYAN_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure-admin"));
}

#[test]
fn check_warns_when_routes_look_like_access_control_and_paths_are_matched_raw() {
    let config = |server: &str| {
        format!(
            "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://127.0.0.1:1\"]\n[upstreams.ops]\nendpoints = [\"http://127.0.0.1:2\"]\n[server]\nlisten = \"127.0.0.1:0\"\n{server}\n\n[[routes]]\nname = \"admin-only\"\nmatch = {{ path = {{ prefix = \"/api/admin\" }} }}\naction = \"forward\"\nupstream = \"ops\"\n"
        )
    };
    let mut raw = tempfile::NamedTempFile::new().unwrap();
    write!(raw, "{}", config("")).unwrap();
    let (code, stdout, stderr) = run(&["check", "-c", raw.path().to_str().unwrap()]);
    assert_eq!(code, 0, "a warning, not an error");
    assert!(
        stderr.contains("admin-only look like access control"),
        "{stderr}"
    );
    assert!(
        stderr.contains("path_normalization = \"standard\""),
        "{stderr}"
    );
    assert!(stdout.contains("1 warning(s)"), "{stdout}");
    let mut normalized = tempfile::NamedTempFile::new().unwrap();
    write!(
        normalized,
        "{}",
        config("path_normalization = \"standard\"")
    )
    .unwrap();
    let (code, _, stderr) = run(&["check", "-c", normalized.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!stderr.contains("warning"), "{stderr}");
}
