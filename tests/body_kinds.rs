//! Comparison beyond JSON through a real banyan: two services answer XML, SOAP, HTML,
//! plain text, urlencoded and multipart forms in two versions that differ in known
//! places (and in places that are no difference: prefixes, whitespace, comments,
//! attribute order, a multipart boundary, a CSRF token the route ignores). Each stored
//! sample names exactly the known differences, with the right path and kind.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn catalog(second_price: &str, style: u8) -> String {
    if style == 0 {
        format!(
            r#"<?xml version="1.0"?><catalog><book id="b1"><title>Dune</title><price>10.00</price></book><book id="b2"><title>Emma</title><price>{second_price}</price></book></catalog>"#
        )
    } else {
        format!(
            "<catalog>\n  <!-- served by the new catalog -->\n  <book id=\"b1\">\n    <title>Dune</title>\n    <price>10.00</price>\n  </book>\n  <book id=\"b2\">\n    <title>Emma</title>\n    <price>{second_price}</price>\n  </book>\n</catalog>\n"
        )
    }
}

fn soap(prefix: &str, price: &str) -> String {
    format!(
        r#"<{prefix}:Envelope xmlns:{prefix}="http://schemas.xmlsoap.org/soap/envelope/"><{prefix}:Body><m:GetPriceResponse xmlns:m="urn:shop"><m:Price currency="EUR">{price}</m:Price></m:GetPriceResponse></{prefix}:Body></{prefix}:Envelope>"#
    )
}

fn page(token: usize, total: &str, attribute_order: bool) -> String {
    let input = if attribute_order {
        format!(r#"<input value="tok-{token}" name="csrf" type="hidden">"#)
    } else {
        format!(r#"<input type="hidden" name="csrf" value="tok-{token}">"#)
    };
    format!(
        "<!doctype html><html><head><title>Cart</title></head><body><form>{input}</form>\
         <div id=\"cart\"><ul><li>Dune <span class=\"price\">10.00</span></li></ul>\
         <span class=\"total\">{total}</span></div><!-- {token} --></body></html>"
    )
}

fn text(third: &str) -> String {
    format!("order 17\nstatus: shipped\ncarrier: {third}\nweight: 2 kg\n")
}

fn multipart(boundary: &str, title: &str) -> String {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n7\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n--{boundary}--\r\n"
    )
}

/// What each version answers on each path: `new` differs in known places.
fn answer(path: &str, new: bool, token: usize) -> Reply {
    let (body, content_type) = match path {
        "/api/xml" => (
            catalog(if new { "7.95" } else { "7.50" }, u8::from(new)),
            "application/xml".to_string(),
        ),
        "/api/soap" => (
            soap(
                if new { "soapenv" } else { "s" },
                if new { "12.00" } else { "11.00" },
            ),
            "text/xml; charset=utf-8".to_string(),
        ),
        "/api/html" => (
            page(token, if new { "10.50" } else { "10.00" }, new),
            "text/html; charset=utf-8".to_string(),
        ),
        "/api/text" => (
            text(if new { "UPS" } else { "DHL" }),
            "text/plain".to_string(),
        ),
        "/api/form" => (
            if new {
                "id=7&b=3&tag=x&tag=y".to_string()
            } else {
                "tag=x&id=7&b=2&tag=y".to_string()
            },
            "application/x-www-form-urlencoded".to_string(),
        ),
        _ => {
            let boundary = if new { "new-b0undary" } else { "legacy" };
            (
                multipart(boundary, if new { "Dune Messiah" } else { "Dune" }),
                format!("multipart/form-data; boundary={boundary}"),
            )
        }
    };
    Reply::ok(body).header("content-type", content_type)
}

/// (path, the differences its sample must hold: path and kind, nothing else)
const EXPECTED: [(&str, &[(&str, &str)]); 6] = [
    ("/api/xml", &[("/catalog/book[2]/price", "value")]),
    (
        "/api/soap",
        &[("/Envelope/Body/GetPriceResponse/Price", "value")],
    ),
    (
        "/api/html",
        &[("html > body > div#cart > span.total", "value")],
    ),
    ("/api/text", &[("body", "value")]),
    ("/api/form", &[("$.b", "value")]),
    ("/api/multipart", &[("$.title", "value")]),
];

#[tokio::test]
async fn every_body_kind_is_compared_by_its_structure() {
    // Each answer draws a fresh CSRF token, as a real form page does.
    let tokens = Arc::new(AtomicUsize::new(1000));
    let t = tokens.clone();
    let legacy = Backend::with_handler("legacy", move |seen| {
        answer(seen.uri.path(), false, t.fetch_add(1, Ordering::Relaxed))
    })
    .await;
    let t = tokens.clone();
    let new = Backend::with_handler("new", move |seen| {
        answer(seen.uri.path(), true, t.fetch_add(1, Ordering::Relaxed))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"default = "legacy"
[upstreams.legacy]
endpoints = ["{}"]
[upstreams.new]
endpoints = ["{}"]
[shadow]
store = "{}"

[[routes]]
name = "kinds"
match = {{ path = {{ prefix = "/api/" }} }}
action = "shadow"
upstream = "legacy"
shadow = {{ to = "new" }}
compare = {{ ignore = ["header.x-backend", 'input[name="csrf"]@value'] }}
{}"#,
        legacy.url(),
        new.url(),
        dir.path().join("kinds.sqlite").display(),
        listeners()
    );
    let b = banyan::server::start(config(&text)).await.unwrap();
    let admin = b.admin_addr;
    for (path, _) in EXPECTED {
        let got = get(b.proxy_addr, path, &[]).await;
        assert_eq!(got.backend(), Some("legacy"), "{path}");
    }
    let groups = || async {
        let v: Value =
            serde_json::from_slice(&get(admin, "/api/diffs?limit=50", &[]).await.body).unwrap();
        v["groups"].as_array().cloned().unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            groups().await.len() == 6
        })
        .await,
        "six samples: {:?}",
        groups().await
    );
    let mut samples = Vec::new();
    for g in groups().await {
        let id = g["example_id"].as_i64().unwrap();
        let s: Value =
            serde_json::from_slice(&get(admin, &format!("/api/diffs/{id}"), &[]).await.body)
                .unwrap();
        samples.push(s);
    }
    for (path, expected) in EXPECTED {
        let sample = samples
            .iter()
            .find(|s| s["request"]["path"] == path)
            .unwrap_or_else(|| panic!("no sample for {path}"));
        let found: Vec<(String, String)> = sample["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["path"].as_str().unwrap().to_string(),
                    d["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(p, k)| (p.to_string(), k.to_string()))
            .collect();
        assert_eq!(found, want, "{path}: {sample}");
    }
    // The text sample carries its line diff: the changed line with its context.
    let text_sample = samples
        .iter()
        .find(|s| s["request"]["path"] == "/api/text")
        .unwrap();
    let hunks = text_sample["shadow"]["line_diff"].as_array().unwrap();
    assert_eq!(hunks.len(), 1, "{text_sample}");
    let lines: Vec<(String, String)> = serde_json::from_value(hunks[0]["lines"].clone()).unwrap();
    assert!(
        lines.contains(&("-".into(), "carrier: DHL".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("+".into(), "carrier: UPS".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(" ".into(), "status: shipped".into())),
        "{lines:?}"
    );
    assert_eq!(hunks[0]["primary_start"], 1);
    // The SOAP difference shows both values.
    let soap = samples
        .iter()
        .find(|s| s["request"]["path"] == "/api/soap")
        .unwrap();
    assert_eq!(soap["differences"][0]["primary"], "11.00");
    assert_eq!(soap["differences"][0]["shadow"], "12.00");
}
