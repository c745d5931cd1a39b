//! Every admin endpoint against a running banyan: answers, tokens (401), pagination.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

async fn json_of(admin: std::net::SocketAddr, path: &str) -> Value {
    let got = get(admin, path, &[]).await;
    assert_eq!(got.status, 200, "{path}: {}", got.text());
    serde_json::from_slice(&got.body).unwrap()
}

#[tokio::test]
async fn every_endpoint_tokens_and_pagination() {
    let legacy = Backend::with_handler("legacy", |_| {
        Reply::ok(r#"{"a":1,"b":1,"c":1}"#).header("content-type", "application/json")
    })
    .await;
    // The new service differs in a field chosen by the path: one diff group per field.
    let new = Backend::with_handler("new", |seen| {
        let body = match seen.uri.path() {
            "/api/a" => r#"{"a":2,"b":1,"c":1}"#,
            "/api/b" => r#"{"a":1,"b":2,"c":1}"#,
            "/api/c" => r#"{"a":1,"b":1,"c":2}"#,
            _ => r#"{"a":1,"b":1,"c":1}"#,
        };
        Reply::ok(body).header("content-type", "application/json")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t0k").unwrap();
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
token_file = "{}"
[shadow]
store = "{}"

[[routes]]
name = "api-shadow"
match = {{ path = {{ prefix = "/api/" }} }}
action = "shadow"
shadow = {{ to = "new" }}
compare = {{ ignore = ["header.x-backend"] }}
"#,
        legacy.url(),
        new.url(),
        dir.path().join("token").display(),
        dir.path().join("d.sqlite").display()
    );
    let b = banyan::server::start(config(&text)).await.unwrap();
    let (proxy, admin) = (b.proxy_addr, b.admin_addr);
    for path in [
        "/api/a",
        "/api/b",
        "/api/c",
        "/api/a",
        "/api/a",
        "/api/same",
    ] {
        get(proxy, path, &[]).await;
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            json_of(admin, "/api/diffs").await["groups"]
                .as_array()
                .map(Vec::len)
                == Some(3)
        })
        .await
    );

    // Health, metrics, dashboard, OpenAPI.
    assert_eq!(get(admin, "/healthz", &[]).await.text(), "ok\n");
    assert_eq!(get(admin, "/readyz", &[]).await.status, 200);
    assert!(get(admin, "/metrics", &[])
        .await
        .text()
        .contains("banyan_shadow_requests_total"));
    let page = get(admin, "/", &[]).await;
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(
        page.text().contains("<script>") && !page.text().contains("https://"),
        "the dashboard loads nothing from outside"
    );
    let openapi = json_of(admin, "/api/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.0.3");
    for path in [
        "/api/routes",
        "/api/shadow",
        "/api/diffs",
        "/api/diffs/{id}",
        "/api/diffs/clear",
        "/api/config",
        "/api/config/status",
        "/api/config/history",
        "/api/config/versions/{n}",
        "/api/config/reload",
        "/api/config/rollback/{n}",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} is not documented"
        );
    }

    // Routes and shadow figures.
    let routes = json_of(admin, "/api/routes").await;
    let r = &routes["routes"][0];
    assert_eq!(r["name"], "api-shadow");
    assert_eq!(r["kind"], "shadow");
    assert_eq!(r["shadow"]["to"], "new");
    assert_eq!(r["traffic"]["1m"]["legacy"]["requests"], 6);
    assert!(r["traffic"]["15m"]["legacy"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        routes["share_new_15m"], 0.0,
        "a shadow serves nobody from the new side"
    );
    let shadow = json_of(admin, "/api/shadow?window=1m").await;
    let s = &shadow["routes"][0];
    assert_eq!(
        (
            s["comparisons"].as_u64(),
            s["mismatches"].as_u64(),
            s["matches"].as_u64()
        ),
        (Some(6), Some(5), Some(1))
    );
    let (lo, hi) = (
        s["match_rate_ci95"][0].as_f64().unwrap(),
        s["match_rate_ci95"][1].as_f64().unwrap(),
    );
    assert!(lo < 1.0 / 6.0 && 1.0 / 6.0 < hi, "{lo} {hi}");
    assert_eq!(s["sparkline"].as_array().unwrap().len(), 15);
    assert!(s["latency_ms"]["shadow_p50"].as_f64().is_some());
    assert_eq!(get(admin, "/api/shadow?window=3h", &[]).await.status, 400);

    // Diff groups, paginated.
    let page1 = json_of(admin, "/api/diffs?limit=2").await;
    assert_eq!(page1["groups"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let page2 = json_of(admin, &format!("/api/diffs?limit=2&cursor={cursor}")).await;
    assert_eq!(page2["groups"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    let all: Vec<Value> = page1["groups"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["groups"].as_array().unwrap())
        .cloned()
        .collect();
    let a_group = all.iter().find(|g| g["fields"][0][0] == "$.a").unwrap();
    assert_eq!(a_group["count"], 3);
    assert!(a_group["first_seen"].as_f64() <= a_group["last_seen"].as_f64());
    assert_eq!(
        json_of(admin, "/api/diffs?route=nope").await["groups"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // A group's samples, paginated by cursor.
    let sig = a_group["signature"].as_str().unwrap();
    let s1 = json_of(admin, &format!("/api/diffs?signature={sig}&limit=2")).await;
    assert_eq!(s1["samples"].as_array().unwrap().len(), 2);
    let next = s1["next_cursor"].as_str().unwrap();
    let s2 = json_of(
        admin,
        &format!("/api/diffs?signature={sig}&limit=2&cursor={next}"),
    )
    .await;
    assert_eq!(s2["samples"].as_array().unwrap().len(), 1);
    assert!(s2["next_cursor"].is_null());

    // One sample.
    let id = s1["samples"][0]["id"].as_i64().unwrap();
    let sample = json_of(admin, &format!("/api/diffs/{id}")).await;
    assert_eq!(sample["differences"][0]["path"], "$.a");
    assert_eq!(sample["request"]["path"], "/api/a");
    assert_eq!(sample["primary"]["status"], 200);
    assert_eq!(get(admin, "/api/diffs/999999", &[]).await.status, 404);
    assert_eq!(get(admin, "/api/diffs/abc", &[]).await.status, 400);

    // Config reads need no token.
    assert!(get(admin, "/api/config", &[])
        .await
        .text()
        .contains("api-shadow"));
    assert_eq!(
        json_of(admin, "/api/config/status").await["version"]["number"],
        1
    );
    assert_eq!(
        json_of(admin, "/api/config/history").await["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(get(admin, "/api/config/versions/1", &[])
        .await
        .text()
        .contains("api-shadow"));

    // Every mutating call: 401 without the token, served with it.
    let auth = [("authorization", "Bearer t0k")];
    let mutating: [(&str, &str, String); 4] = [
        ("POST", "/api/diffs/clear?route=api-shadow", String::new()),
        ("PUT", "/api/config", text.clone()),
        ("POST", "/api/config/rollback/1", String::new()),
        ("POST", "/api/config/reload", String::new()),
    ];
    for (method, path, body) in &mutating {
        let denied = call(admin, method, path, &[], body).await;
        assert_eq!(denied.status, 401, "{method} {path}");
    }
    let cleared = call(
        admin,
        "POST",
        "/api/diffs/clear?route=api-shadow",
        &auth,
        "",
    )
    .await;
    assert_eq!(cleared.status, 200);
    let cleared: Value = serde_json::from_slice(&cleared.body).unwrap();
    assert_eq!(cleared["deleted_samples"], 5);
    assert_eq!(
        json_of(admin, "/api/diffs").await["groups"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        call(admin, "PUT", "/api/config", &auth, &text).await.status,
        200
    );
    assert_eq!(
        call(admin, "POST", "/api/config/rollback/1", &auth, "")
            .await
            .status,
        200
    );
    assert_eq!(
        call(admin, "POST", "/api/config/reload", &auth, "")
            .await
            .status,
        422,
        "started without a file"
    );
    assert_eq!(get(admin, "/api/nope", &[]).await.status, 404);
}
