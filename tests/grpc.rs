//! gRPC through banyan: real tonic servers and clients on loopback, over h2c and TLS
//! (ALPN h2), unary calls and every streaming kind, trailers and metadata, and banyan's
//! own failures arriving as gRPC statuses.

#![allow(clippy::unwrap_used)]

mod common;
mod grpc_support;

use bytes::Bytes;
use common::certs::Ca;
use common::{banyan, dead_addr};
use grpc_support::{GetRequest, Item, Items, ItemsClient};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tonic::Code;

fn forward_to(upstream: SocketAddr) -> String {
    format!(
        "default = \"items\"\n[upstreams.items]\nendpoints = [\"http://{upstream}\"]\nhttp2 = true\n"
    )
}

fn get(id: i64) -> GetRequest {
    GetRequest {
        id,
        ..Default::default()
    }
}

#[tokio::test]
async fn unary_and_every_streaming_kind_pass_through_h2c() {
    let items = Items::new(100);
    let upstream = grpc_support::serve(items.clone()).await;
    // A route of its own: the figures are per process and route name, and `cargo test`
    // runs this file's tests in one process.
    let b = banyan(&format!(
        "{}[[routes]]\nname = \"passthrough\"\nmatch = {{ grpc = {{ service = \"shop.Items\" }} }}\n\
         action = \"forward\"\nupstream = \"items\"\n",
        forward_to(upstream)
    ))
    .await;
    let mut client = ItemsClient::connect(b.proxy_addr).await;

    // Unary: the message, the upstream's metadata (text and binary) and its trailers.
    let resp = client.get(get(7)).await.expect("unary call through banyan");
    assert_eq!(resp.metadata().get("x-served-by").unwrap(), "price-100");
    assert_eq!(
        resp.metadata()
            .get_bin("x-trace-bin")
            .unwrap()
            .to_bytes()
            .unwrap()
            .as_ref(),
        [0, 1, 2, 255]
    );
    assert_eq!(resp.into_inner().price, 700);
    // gRPC servers refuse a call without `te: trailers`: banyan passes it on.
    let seen = items.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.get("te").unwrap(), "trailers");
    assert!(seen.get("x-forwarded-for").is_some());

    // The upstream's own error status travels in the trailers, message and all.
    let status = client
        .get(GetRequest {
            id: 3,
            fail_with: Code::NotFound as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "item 3 failed");

    // Server streaming, client streaming, and a bidirectional call that is interactive
    // end to end (each answer arrives before the next item is sent).
    let listed = client.list(200).await.expect("server streaming");
    assert_eq!(listed.len(), 200);
    assert_eq!(listed[199].price, 20_000);
    let uploaded: Vec<Item> = (1..=50)
        .map(|i| Item {
            price: i,
            ..Default::default()
        })
        .collect();
    let summary = client.upload(uploaded).await.expect("client streaming");
    assert_eq!((summary.count, summary.total), (50, 1275));
    let answers = client
        .chat(&[1, 2, 3, 4])
        .await
        .expect("bidirectional streaming");
    assert_eq!(answers, [2, 4, 6, 8]);

    // Calls are counted by their grpc-status, read from the trailers; a failed call is
    // a 4xx or 5xx to the route's figures though it travelled as HTTP 200.
    let calls = |status: &'static str| {
        let admin = b.admin_addr;
        async move {
            common::metric(
                admin,
                &format!("banyan_grpc_calls_total{{grpc_status=\"{status}\",route=\"passthrough\",upstream=\"items\"}}"),
            )
            .await
        }
    };
    assert!(
        common::eventually(Duration::from_secs(2), || async {
            calls("OK").await == 4.0
        })
        .await,
        "{}",
        calls("OK").await
    );
    assert_eq!(calls("NOT_FOUND").await, 1.0);

    // A message larger than HTTP/2's initial windows: flow control both ways.
    let big = client
        .get(GetRequest {
            id: 1,
            blob_bytes: 3 * 1024 * 1024,
            ..Default::default()
        })
        .await
        .expect("a 3 MiB message");
    assert_eq!(big.into_inner().blob.len(), 3 * 1024 * 1024);
}

#[tokio::test]
async fn grpc_over_tls_with_alpn_h2() {
    let ca = Ca::new();
    let leaf = ca.leaf("shop", &["localhost"]);
    let upstream = grpc_support::serve(Items::new(5)).await;
    let config = format!(
        "{}[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
        forward_to(upstream),
        leaf.cert,
        leaf.key
    );
    let b = banyan(&config).await;
    let tls_addr = b.tls_addr.expect("an HTTPS listener");
    let pem = std::fs::read_to_string(ca.pem_path()).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pem))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{tls_addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection that negotiated h2");
    let mut client = ItemsClient::over(channel);
    assert_eq!(client.get(get(4)).await.unwrap().into_inner().price, 20);
    assert_eq!(client.list(3).await.unwrap().len(), 3);
}

#[tokio::test]
async fn banyans_own_failures_are_grpc_statuses() {
    let dead = dead_addr().await;
    let live = grpc_support::serve(Items::new(1)).await;
    let b = banyan(&format!(
        "{}[upstreams.live]\nendpoints = [\"http://{live}\"]\nhttp2 = true\n\
         [[routes]]\nname = \"small\"\nmatch = {{ path = {{ prefix = \"/shop.Items/Upload\" }} }}\n\
         action = \"forward\"\nupstream = \"live\"\nmax_body = 64\n",
        forward_to(dead)
    ))
    .await;
    let mut client = ItemsClient::connect(b.proxy_addr).await;

    let status = client.get(get(1)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("could not connect to the upstream items"),
        "{status:?}"
    );
    assert_eq!(
        status.metadata().get("x-banyan-error").unwrap(),
        "upstream_connect_failed"
    );

    // Over the route's body limit: RESOURCE_EXHAUSTED, not an HTTP 413.
    let items: Vec<Item> = (0..10)
        .map(|i| Item {
            name: "x".repeat(40),
            price: i,
            ..Default::default()
        })
        .collect();
    let status = client.upload(items).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("larger than this route takes"),
        "{status:?}"
    );
}

#[tokio::test]
async fn grpc_timeout_is_the_upstream_deadline() {
    let upstream = grpc_support::serve(Items::new(1)).await;
    let b = banyan(&forward_to(upstream)).await;

    // A raw HTTP/2 call: tonic's client would enforce the deadline itself and never let
    // banyan's answer through. The upstream takes 5 s; the caller gives 300 ms.
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let call = |timeout: &'static str, delay_ms: u32| {
        let body = grpc_support::frame(&GetRequest {
            id: 2,
            delay_ms,
            ..Default::default()
        });
        http::Request::post(format!("http://{}/shop.Items/Get", b.proxy_addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", timeout)
            .body(Full::new(body))
            .unwrap()
    };
    let started = Instant::now();
    let resp = client.request(call("300m", 5_000)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["grpc-status"], "4", "{h:?}");
    assert_eq!(h["x-banyan-error"], "grpc_deadline_exceeded");
    assert!(
        h["grpc-message"].to_str().unwrap().contains("grpc-timeout"),
        "{h:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "banyan waited for the upstream"
    );

    // Within its deadline, a call is served as usual, its status in the trailers.
    let resp = client.request(call("5S", 0)).await.unwrap();
    let (parts, body) = resp.into_parts();
    assert!(parts.headers.get("grpc-status").is_none());
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert!(collected.to_bytes().len() > 5);
}

#[tokio::test]
async fn routes_match_grpc_service_and_method_and_fall_back_only_when_idempotent() {
    let legacy = grpc_support::serve(Items::new(1)).await;
    let new = grpc_support::serve(Items::new(2)).await;
    let dead = dead_addr().await;
    let b = banyan(&format!(
        "default = \"legacy\"\n\
         [upstreams.legacy]\nendpoints = [\"http://{legacy}\"]\nhttp2 = true\n\
         [upstreams.new]\nendpoints = [\"http://{new}\"]\nhttp2 = true\n\
         [upstreams.broken]\nendpoints = [\"http://{dead}\"]\nhttp2 = true\n\
         [[routes]]\nname = \"get\"\n\
         match = {{ grpc = {{ service = \"shop.Items\", method = \"Get\", idempotent = true }} }}\n\
         action = \"forward\"\nupstream = \"broken\"\nfallback = \"legacy\"\n\
         [[routes]]\nname = \"upload\"\n\
         match = {{ grpc = {{ service = \"shop.Items\", method = \"Upload\" }} }}\n\
         action = \"forward\"\nupstream = \"broken\"\nfallback = \"legacy\"\n\
         [[routes]]\nname = \"items\"\nmatch = {{ grpc = {{ service = \"shop.Items\" }} }}\n\
         action = \"forward\"\nupstream = \"new\"\n"
    ))
    .await;
    let mut client = ItemsClient::connect(b.proxy_addr).await;

    // The admin API describes the routes by their calls.
    let routes = common::get(b.admin_addr, "/api/routes", &[]).await.text();
    assert!(
        routes.contains("grpc shop.Items/Get (idempotent)"),
        "{routes}"
    );
    assert!(routes.contains("grpc shop.Items/*"), "{routes}");

    // The rest of the service goes to the new implementation (prices doubled).
    let listed = client.list(3).await.unwrap();
    assert_eq!(
        listed.iter().map(|i| i.price).collect::<Vec<_>>(),
        [2, 4, 6]
    );

    // Get is declared idempotent: its call went to the dead service, then to legacy.
    let item = client.get(get(5)).await.expect("served by the fallback");
    assert_eq!(item.into_inner().price, 5);
    let fallbacks = common::metric(
        b.admin_addr,
        "banyan_fallbacks_total{reason=\"connect_failed\",route=\"get\"}",
    )
    .await;
    assert_eq!(fallbacks, 1.0);

    // Upload is not: a gRPC call is a POST, never sent twice unless declared so.
    let status = client
        .upload(vec![Item {
            price: 1,
            ..Default::default()
        }])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let unavailable = common::metric(
        b.admin_addr,
        "banyan_grpc_calls_total{grpc_status=\"UNAVAILABLE\",route=\"upload\",upstream=\"broken\"}",
    )
    .await;
    assert_eq!(
        unavailable, 1.0,
        "banyan's own answer is counted by its status"
    );
    let errors = common::metric(
        b.admin_addr,
        "banyan_requests_total{route=\"upload\",status_class=\"5xx\",upstream=\"broken\"}",
    )
    .await;
    assert_eq!(errors, 1.0, "and as the 5xx it equals");

    // The same path without a gRPC content type is no gRPC call: the default serves it.
    let got = common::send(
        &common::client(),
        "POST",
        &format!("http://{}/shop.Items/Get", b.proxy_addr),
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_ne!(
        got.header("x-banyan-error"),
        Some("upstream_connect_failed")
    );
}

#[tokio::test]
async fn a_shadowed_unary_call_is_compared_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let descriptors = grpc_support::descriptor_set(dir.path());
    // Two implementations that differ in one field: price.
    let legacy = Items::new(100);
    let legacy_addr = grpc_support::serve(legacy.clone()).await;
    let new = Items::new(101);
    let new_addr = grpc_support::serve(new.clone()).await;
    let b = banyan(&format!(
        "default = \"legacy\"\n\
         [upstreams.legacy]\nendpoints = [\"http://{legacy_addr}\"]\nhttp2 = true\n\
         [upstreams.new]\nendpoints = [\"http://{new_addr}\"]\nhttp2 = true\n\
         [shadow]\nstore = {:?}\n\
         [[routes]]\nname = \"grpc-get\"\n\
         match = {{ grpc = {{ service = \"shop.Items\" }} }}\n\
         action = \"shadow\"\nupstream = \"legacy\"\nshadow = {{ to = \"new\" }}\n\
         shadow_methods = [\"POST\"]\n\
         compare = {{ protobuf = {{ descriptor_set = {:?} }}, ignore = [\"header.x-served-by\"] }}\n",
        dir.path().join("diffs.sqlite"),
        descriptors,
    ))
    .await;
    let mut client = ItemsClient::connect(b.proxy_addr).await;

    // Every call of the service is shadowed (shadow_methods), answered by legacy.
    let item = client.get(get(3)).await.unwrap().into_inner();
    assert_eq!(item.price, 300);
    let report = || async {
        serde_json::from_slice::<serde_json::Value>(
            &common::get(b.admin_addr, "/api/diffs?route=grpc-get", &[])
                .await
                .body,
        )
        .unwrap()
    };
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            report().await["groups"][0]["example_id"].is_i64()
        })
        .await,
        "no sample stored: {}",
        report().await
    );
    let id = report().await["groups"][0]["example_id"].as_i64().unwrap();
    let sample: serde_json::Value = serde_json::from_slice(
        &common::get(b.admin_addr, &format!("/api/diffs/{id}"), &[])
            .await
            .body,
    )
    .unwrap();
    let differences = sample["differences"].as_array().unwrap();
    let fields: Vec<&str> = differences
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["$.price"], "{sample:#}");
    assert_eq!(differences[0]["primary"], "300");
    assert_eq!(differences[0]["shadow"], "303");
    // The sample shows the decoded messages, by field name.
    let body = |side: &str| -> serde_json::Value {
        serde_json::from_str(sample[side]["body"].as_str().unwrap()).unwrap()
    };
    assert_eq!(body("primary")["name"], "item 3", "{sample:#}");
    assert_eq!(body("shadow")["price"], 303);
    let request: serde_json::Value =
        serde_json::from_str(sample["request"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        request,
        serde_json::json!({ "id": 3 }),
        "the request decoded too"
    );

    // A streaming call (so says the descriptor set) passes through, counted, uncopied.
    assert_eq!(client.list(2).await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = |items: &Items| items.seen.lock().unwrap().len();
    assert_eq!(
        (calls(&legacy), calls(&new)),
        (2, 1),
        "List reached the shadow"
    );
    let skipped = common::metric(
        b.admin_addr,
        "banyan_shadow_requests_total{outcome=\"skipped\",route=\"grpc-get\"}",
    )
    .await;
    assert_eq!(skipped, 1.0);
}

#[tokio::test]
async fn methods_without_side_effects_in_the_descriptor_set_are_shadowed() {
    let dir = tempfile::tempdir().unwrap();
    let descriptors = grpc_support::descriptor_set(dir.path());
    let legacy = Items::new(1);
    let legacy_addr = grpc_support::serve(legacy.clone()).await;
    let new = Items::new(1);
    let new_addr = grpc_support::serve(new.clone()).await;
    let b = banyan(&format!(
        "default = \"legacy\"\n\
         [upstreams.legacy]\nendpoints = [\"http://{legacy_addr}\"]\nhttp2 = true\n\
         [upstreams.new]\nendpoints = [\"http://{new_addr}\"]\nhttp2 = true\n\
         [[routes]]\nname = \"grpc-described\"\n\
         match = {{ grpc = {{ service = \"shop.Items\" }} }}\n\
         action = \"shadow\"\nupstream = \"legacy\"\nshadow = {{ to = \"new\" }}\n\
         compare = {{ protobuf = {{ descriptor_set = {:?} }} }}\n",
        descriptors,
    ))
    .await;
    let mut client = ItemsClient::connect(b.proxy_addr).await;
    let calls = |items: &Items| items.seen.lock().unwrap().len();
    // Get is NO_SIDE_EFFECTS: copied though it is a POST, and the answers match.
    client.get(get(1)).await.unwrap();
    assert!(common::eventually(Duration::from_secs(5), || async { calls(&new) == 1 }).await);
    // Upload says nothing: a write, never sent twice.
    client.upload(vec![Item::default()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((calls(&legacy), calls(&new)), (2, 1));
    let matched = common::metric(
        b.admin_addr,
        "banyan_shadow_requests_total{outcome=\"match\",route=\"grpc-described\"}",
    )
    .await;
    assert_eq!(matched, 1.0, "the two implementations agree on Get");
}

#[test]
fn a_bad_descriptor_set_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_set = dir.path().join("shop.proto");
    std::fs::write(&not_a_set, grpc_support::PROTO).unwrap();
    for (file, phrase) in [
        (not_a_set.clone(), "is not a descriptor set"),
        (dir.path().join("missing.binpb"), "cannot read"),
    ] {
        let text = format!(
            "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://127.0.0.1:1\"]\nhttp2 = true\n\
             [upstreams.new]\nendpoints = [\"http://127.0.0.1:2\"]\nhttp2 = true\n\
             [[routes]]\nname = \"g\"\nmatch = {{ grpc = {{ service = \"shop.Items\" }} }}\n\
             action = \"shadow\"\nupstream = \"legacy\"\nshadow = {{ to = \"new\" }}\n\
             compare = {{ protobuf = {{ descriptor_set = {file:?} }} }}\n"
        );
        let err = banyan::config::Config::parse(&banyan::config::Source::new("g.toml", text))
            .expect_err("refused")
            .to_string();
        assert!(err.contains(phrase) && err.contains("g.toml:14:"), "{err}");
    }
}

#[tokio::test]
async fn a_grpc_route_splits_sticky_by_metadata() {
    let legacy = grpc_support::serve(Items::new(1)).await;
    let new = grpc_support::serve(Items::new(2)).await;
    let b = banyan(&format!(
        "default = \"legacy\"\n\
         [upstreams.legacy]\nendpoints = [\"http://{legacy}\"]\nhttp2 = true\n\
         [upstreams.new]\nendpoints = [\"http://{new}\"]\nhttp2 = true\n\
         [[routes]]\nname = \"grpc-split\"\nmatch = {{ grpc = {{ service = \"shop.Items\" }} }}\n\
         action = \"split\"\nupstream = \"legacy\"\n\
         split = {{ to = \"new\", percent = 50, key = {{ header = \"x-user-id\" }} }}\n"
    ))
    .await;
    let mut client = ItemsClient::connect(b.proxy_addr).await;
    // Each user's calls all go to one side; across users, both sides serve.
    let mut sides = std::collections::BTreeSet::new();
    for user in 0..40 {
        let mut prices = Vec::new();
        for _ in 0..3 {
            let mut req = tonic::Request::new(get(1));
            req.metadata_mut()
                .insert("x-user-id", format!("user-{user}").parse().unwrap());
            prices.push(client.get(req).await.unwrap().into_inner().price);
        }
        assert!(
            prices.windows(2).all(|w| w[0] == w[1]),
            "user {user} moved: {prices:?}"
        );
        sides.insert(prices[0]);
    }
    assert_eq!(
        sides.into_iter().collect::<Vec<_>>(),
        [1, 2],
        "both sides serve"
    );
}
