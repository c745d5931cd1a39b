//! The dashboard in a real browser: headless Chromium, driven over WebDriver
//! (chromedriver), against banyan in front of the demo backends with generated traffic.
//! Each page is saved as a screenshot under target/.

#![allow(clippy::unwrap_used)]

mod common;
mod grpc_support;
use banyan::demo::{serve, Backend as DemoBackend};
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::TcpListener;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> (Driver, Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (make test installs Debian's chromium-driver)");
    let driver = Driver(driver);
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1400,1000"]
        }
    }))
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        if let Ok(client) = ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            return (driver, client);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot start a browser session on chromedriver");
}

/// The text of the first element matching `css`, waiting for it (the pages refresh
/// themselves, so an element may be replaced under us: try again).
async fn text_of(c: &Client, css: &str) -> String {
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if !t.is_empty() {
                    return t;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no element {css}");
}

/// Open the route page's first sample; the text highlighted at `path`.
async fn open_sample(c: &Client, path: &str) -> String {
    c.find(Locator::Css("#groups-table .sample-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_of(c, &format!(".diff-highlight[data-path=\"{path}\"]")).await
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_routes_verdicts_and_highlighted_samples() {
    let legacy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let catalog = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let text = banyan::demo::DEMO_TOML
        .replace("127.0.0.1:18081", &legacy.local_addr().unwrap().to_string())
        .replace(
            "127.0.0.1:18082",
            &catalog.local_addr().unwrap().to_string(),
        )
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace(
            "./data/banyan-diffs.sqlite",
            &store.path().join("d.sqlite").display().to_string(),
        )
        // A canary with a gated ramp that no request reaches: its gates wait.
        + "\n[[routes]]\nname = \"reviews\"\nmatch = { path = { prefix = \"/api/reviews\" } }\n\
           action = \"migrate\"\nmigration = { stage = \"canary\", new = \"catalog\" }\n\
           ramp = { steps = [10, 100], interval = \"100ms\" }\n";
    tokio::spawn(serve(legacy, DemoBackend::Legacy));
    tokio::spawn(serve(catalog, DemoBackend::Catalog));
    let b = banyan::server::start(config(&text)).await.unwrap();
    let (proxy, admin) = (b.proxy_addr, b.admin_addr);
    for s in 0..200 {
        let cookie = format!("session=s{s}");
        get(proxy, "/api/items/1", &[("cookie", &cookie)]).await;
        get(proxy, "/api/users/7", &[]).await;
        get(proxy, "/api/items", &[]).await;
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            let v: serde_json::Value =
                serde_json::from_slice(&get(admin, "/api/shadow", &[]).await.body).unwrap();
            v["routes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["route"] == "item-detail" && r["compared"].as_u64() >= Some(60))
        })
        .await
    );

    let (_driver, c) = browser().await;
    let base = format!("http://{admin}/");

    // Overview: every route, with a match rate where it shadows.
    c.goto(&base).await.unwrap();
    let rate = text_of(
        &c,
        "#routes-table tr[data-route=\"item-detail\"] .match-rate",
    )
    .await;
    assert!(rate.contains('%'), "{rate}");
    for route in [
        "users",
        "item-detail",
        "products",
        "items-preview",
        "items-list",
        "default",
    ] {
        text_of(&c, &format!("#routes-table tr[data-route=\"{route}\"] td")).await;
    }
    let share = text_of(&c, "#share-new").await;
    assert!(share.ends_with('%') && share != "0.0%", "{share}");
    screenshot(&c, "dashboard-overview").await;

    // Route page: the renamed field is a regression, the per-request time is noise.
    c.goto(&format!("{base}#/route/item-detail")).await.unwrap();
    assert_eq!(
        text_of(&c, "#fields-table tr[data-field=\"$.name\"] .verdict").await,
        "regression"
    );
    assert_eq!(
        text_of(&c, "#fields-table tr[data-field=\"$.served_at\"] .verdict").await,
        "noise"
    );
    text_of(&c, "#groups-table .sample-link").await;
    screenshot(&c, "dashboard-route").await;

    // Sample page: the differing field is highlighted on both sides.
    let highlighted = open_sample(&c, "$.name").await;
    assert!(highlighted.contains("name"), "{highlighted}");
    text_of(&c, "#copy-curl").await;
    // Each side is named by the upstream that answered.
    let mut titles = Vec::new();
    for pane in c.find_all(Locator::Css(".panes h3")).await.unwrap() {
        titles.push(pane.text().await.unwrap());
    }
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert!(titles[0].starts_with("primary: "), "{titles:?}");
    assert!(titles[1].starts_with("shadow: "), "{titles:?}");
    assert_ne!(
        titles[0]["primary: ".len()..].split(' ').next(),
        titles[1]["shadow: ".len()..].split(' ').next()
    );
    screenshot(&c, "dashboard-sample").await;

    // Migration page: the users route is at stage "new", its figures per stage.
    c.goto(&format!("{base}#/migration")).await.unwrap();
    assert_eq!(
        text_of(&c, "section[data-migration=\"users\"] .stage").await,
        "new"
    );
    assert_eq!(
        text_of(&c, "section[data-migration=\"users\"] .percent-new").await,
        "100%"
    );
    let new_stage = text_of(&c, "#stages tr[data-stage=\"new\"]").await;
    assert!(new_stage.starts_with("new 1"), "{new_stage}");
    // The ramped route shows each gate's verdict and what it waits for.
    let reviews = "section[data-migration=\"reviews\"]";
    assert_eq!(
        text_of(
            &c,
            &format!("{reviews} tr[data-gate=\"match_rate\"] .verdict")
        )
        .await,
        "wait"
    );
    let why = text_of(&c, &format!("{reviews} tr[data-gate=\"match_rate\"]")).await;
    assert!(why.contains("0 of 50 comparisons"), "{why}");
    assert!(why.contains("waits for 50 comparisons"), "{why}");
    assert_eq!(
        text_of(&c, &format!("{reviews} tr[data-gate=\"latency\"] .verdict")).await,
        "not applicable"
    );
    screenshot(&c, "dashboard-migration").await;

    // Fleet page: this banyan has no [fleet] table, and says so.
    c.goto(&format!("{base}#/fleet")).await.unwrap();
    let alone = text_of(&c, "#fleet-alone").await;
    assert!(alone.contains("runs alone"), "{alone}");

    // Config page: the running version.
    c.goto(&format!("{base}#/config")).await.unwrap();
    assert_eq!(text_of(&c, "#running-version").await, "1");
    assert_eq!(text_of(&c, "#store-health .state").await, "ok");
    screenshot(&c, "dashboard-config").await;

    // Its rollback button is a same-origin POST, which the cross-site checks let through
    // (a page on another site sending the same POST is refused: tests/admin_security.rs).
    let v2 = format!("{text}\n# version 2\n");
    let put = call(admin, "PUT", "/api/config", &[], &v2).await;
    assert_eq!(put.status, 200, "{}", put.text());
    c.refresh().await.unwrap();
    assert_eq!(text_of(&c, "#running-version").await, "2");
    c.find(Locator::Css("button[data-rollback=\"1\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let status: serde_json::Value =
                serde_json::from_slice(&get(admin, "/api/config/status", &[]).await.body).unwrap();
            status["version"]["number"] == 3
        })
        .await,
        "the dashboard's rollback did not apply"
    );
    // The page shows it at its next refresh.
    let mut shown = String::new();
    for _ in 0..50 {
        shown = text_of(&c, "#running-version").await;
        if shown == "3" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(shown, "3");
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_grpc_sample_shows_its_decoded_messages_with_the_difference_highlighted() {
    let dir = tempfile::tempdir().unwrap();
    let descriptors = grpc_support::descriptor_set(dir.path());
    let legacy = grpc_support::serve(grpc_support::Items::new(100)).await;
    let new = grpc_support::serve(grpc_support::Items::new(101)).await;
    let text = format!(
        "default = \"legacy\"\n\
         [server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [upstreams.legacy]\nendpoints = [\"http://{legacy}\"]\nhttp2 = true\n\
         [upstreams.new]\nendpoints = [\"http://{new}\"]\nhttp2 = true\n\
         [shadow]\nstore = {:?}\n\
         [[routes]]\nname = \"items-grpc\"\n\
         match = {{ grpc = {{ service = \"shop.Items\", method = \"Get\" }} }}\n\
         action = \"shadow\"\nupstream = \"legacy\"\nshadow = {{ to = \"new\" }}\n\
         compare = {{ protobuf = {{ descriptor_set = {:?} }}, ignore = [\"header.x-served-by\"] }}\n",
        dir.path().join("d.sqlite"),
        descriptors,
    );
    let b = banyan::server::start(config(&text)).await.unwrap();
    let mut client = grpc_support::ItemsClient::connect(b.proxy_addr).await;
    for id in 1..=5 {
        let req = grpc_support::GetRequest {
            id,
            ..Default::default()
        };
        client.get(req).await.unwrap();
    }
    let admin = b.admin_addr;
    assert!(
        eventually(Duration::from_secs(10), || async {
            let v: serde_json::Value =
                serde_json::from_slice(&get(admin, "/api/diffs?route=items-grpc", &[]).await.body)
                    .unwrap();
            v["groups"][0]["example_id"].is_i64()
        })
        .await
    );

    let (_driver, c) = browser().await;
    let base = format!("http://{admin}/");
    // The route, its routing described by its calls, and its differing field.
    c.goto(&base).await.unwrap();
    text_of(&c, "#routes-table tr[data-route=\"items-grpc\"] td").await;
    c.goto(&format!("{base}#/route/items-grpc")).await.unwrap();
    text_of(&c, "#fields-table tr[data-field=\"$.price\"]").await;
    // The sample: both answers decoded by field name, the price highlighted.
    let highlighted = open_sample(&c, "$.price").await;
    assert!(highlighted.contains("price"), "{highlighted}");
    let page = c.source().await.unwrap();
    assert!(
        page.contains("item 1") || page.contains("item 5"),
        "no decoded message shown"
    );
    screenshot(&c, "dashboard-grpc-sample").await;
    c.close().await.unwrap();
}

/// Samples of XML, HTML, text and form answers, each rendered by its kind in both panes
/// with the differing part highlighted, and the text's changed lines shown with context.
#[tokio::test]
async fn xml_html_text_and_form_samples_are_rendered_with_their_differences_highlighted() {
    let answer = |new: bool| {
        move |seen: &Seen| {
            let (body, content_type) = match seen.uri.path() {
                "/api/xml" => (
                    format!(
                        "<catalog><book id=\"b1\"><price>10.00</price></book><book id=\"b2\"><price>{}</price></book></catalog>",
                        if new { "7.95" } else { "7.50" }
                    ),
                    "application/xml",
                ),
                "/api/html" => (
                    format!(
                        "<!doctype html><html><body><div id=\"cart\"><span class=\"total\">{}</span></div></body></html>",
                        if new { "10.50" } else { "10.00" }
                    ),
                    "text/html",
                ),
                "/api/form" => (
                    format!("id=7&b={}", if new { 3 } else { 2 }),
                    "application/x-www-form-urlencoded",
                ),
                _ => (
                    format!(
                        "order 17\nstatus: shipped\ncarrier: {}\n",
                        if new { "UPS" } else { "DHL" }
                    ),
                    "text/plain",
                ),
            };
            Reply::ok(body).header("content-type", content_type)
        }
    };
    let legacy = Backend::with_handler("legacy", answer(false)).await;
    let new = Backend::with_handler("new", answer(true)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "default = \"legacy\"\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [upstreams.legacy]\nendpoints = [\"{}\"]\n[upstreams.new]\nendpoints = [\"{}\"]\n\
         [shadow]\nstore = {:?}\n\
         [[routes]]\nname = \"kinds-ui\"\nmatch = {{ path = {{ prefix = \"/api/\" }} }}\n\
         action = \"shadow\"\nupstream = \"legacy\"\nshadow = {{ to = \"new\" }}\n\
         compare = {{ ignore = [\"header.x-backend\"] }}\n",
        legacy.url(),
        new.url(),
        dir.path().join("d.sqlite"),
    );
    let b = banyan::server::start(config(&text)).await.unwrap();
    let paths = ["/api/xml", "/api/html", "/api/form", "/api/text"];
    for path in paths {
        get(b.proxy_addr, path, &[]).await;
    }
    let admin = b.admin_addr;
    let groups = || async {
        let v: serde_json::Value =
            serde_json::from_slice(&get(admin, "/api/diffs?route=kinds-ui", &[]).await.body)
                .unwrap();
        v["groups"].as_array().cloned().unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            groups().await.len() == 4
        })
        .await
    );
    // Each sample by its request path.
    let mut ids = std::collections::HashMap::new();
    for g in groups().await {
        let id = g["example_id"].as_i64().unwrap();
        let s: serde_json::Value =
            serde_json::from_slice(&get(admin, &format!("/api/diffs/{id}"), &[]).await.body)
                .unwrap();
        ids.insert(s["request"]["path"].as_str().unwrap().to_string(), id);
    }

    let (_driver, c) = browser().await;
    let base = format!("http://{admin}/");
    // (path, the highlighted difference, what the primary's pane shows there, the shadow's)
    let cases = [
        ("/api/xml", "/catalog/book[2]/price", "7.50", "7.95"),
        (
            "/api/html",
            "html > body > div#cart > span.total",
            "10.00",
            "10.50",
        ),
        ("/api/form", "$.b", "2", "3"),
    ];
    for (path, field, primary, shadow) in cases {
        c.goto(&format!("{base}#/sample/{}", ids[path]))
            .await
            .unwrap();
        let css = format!(".panes .diff-highlight[data-path=\"{field}\"]");
        text_of(&c, &css).await;
        let panes = c.find_all(Locator::Css(".panes > div")).await.unwrap();
        assert_eq!(panes.len(), 2);
        let mut shown = Vec::new();
        for pane in &panes {
            let mut text = String::new();
            for m in pane.find_all(Locator::Css(&css)).await.unwrap() {
                text.push_str(&m.text().await.unwrap());
            }
            shown.push(text);
        }
        let (a, b) = (&shown[0], &shown[1]);
        assert!(a.contains(primary) && !a.contains(shadow), "{path}: {a}");
        assert!(b.contains(shadow), "{path}: {b}");
        // Rendered as a tree, not one line of source.
        let pane = text_of(&c, ".panes pre.body").await;
        assert!(pane.lines().count() > 2, "{path}: {pane}");
        screenshot(&c, &format!("dashboard-sample-{}", &path[5..])).await;
    }
    c.goto(&format!("{base}#/sample/{}", ids["/api/text"]))
        .await
        .unwrap();
    assert!(text_of(&c, "#line-diff .line-removed")
        .await
        .contains("carrier: DHL"));
    assert!(text_of(&c, "#line-diff .line-added")
        .await
        .contains("carrier: UPS"));
    let hunk = text_of(&c, "#line-diff pre.hunk").await;
    assert!(hunk.contains("status: shipped"), "context lines: {hunk}");
    screenshot(&c, "dashboard-sample-text").await;
    c.close().await.unwrap();
}
