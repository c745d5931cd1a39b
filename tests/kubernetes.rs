//! deploy/kubernetes holds to Kubernetes' schemas (kubernetes-validate, strict: an
//! unknown field is an error), and the banyan.toml its ConfigMap carries passes banyan's
//! check, with the PostgreSQL URL the Secret would give it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// The Kubernetes version the manifests are written for (preStop `sleep` needs 1.30).
const KUBERNETES: &str = "1.31";

#[test]
fn the_manifests_keep_to_the_kubernetes_schemas() {
    let validator = std::env::var("BANYAN_KUBERNETES_VALIDATE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/kubernetes-validate/bin/kubernetes-validate"
        )
        .into()
    });
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let out = std::process::Command::new(&validator)
        .args(["--strict", "--kubernetes-version", KUBERNETES])
        .args(&files)
        .output()
        .unwrap_or_else(|e| {
            panic!("{validator} runs ({e}): `make test-deps` installs it into target/kubernetes-validate")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
    assert_eq!(text.matches("passed").count(), files.len(), "{text}");
}

#[test]
fn the_configmaps_config_passes_the_check() {
    let yaml = std::fs::read_to_string(dir().join("configmap.yaml")).unwrap();
    // The TOML is the block under `banyan.toml: |`, indented four spaces.
    let start = yaml.find("banyan.toml: |").expect("a banyan.toml key");
    let toml: String = yaml[start..]
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("    ").unwrap_or(l.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(toml.contains("[fleet]"), "{toml}");
    // What the Secret gives the pod (BANYAN_FLEET_POSTGRES) stands in the table here.
    let with_url = toml.replace(
        "[fleet]\n",
        "[fleet]\npostgres = \"postgres://banyan@postgres:5432/banyan?sslmode=require\"\n",
    );
    let source = banyan::config::Source::new("deploy/kubernetes/configmap.yaml", with_url);
    let config =
        banyan::config::Config::parse_without_files(&source).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.fleet.is_some());
}
