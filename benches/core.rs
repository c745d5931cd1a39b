//! Micro-benchmarks of the pure cores: route matching with 10 and 2,000 routes, JSON
//! comparison of 1 KB, 100 KB and 1 MB bodies, and compiling a 2,000-route config.
//!
//!   cargo bench --bench core

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod many_routes;

use banyan::compare::{compare, Response, Rules};
use banyan::config::{Config, Source};
use banyan::routing::RequestView;
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderValue, Method};

fn config(routes: usize) -> String {
    many_routes::many_routes(
        routes,
        &[
            ("legacy", "http://127.0.0.1:1"),
            ("items", "http://127.0.0.1:2"),
        ],
        "127.0.0.1:0",
        "127.0.0.1:0",
    )
}

fn route_matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_matching");
    for n in [10, 2000] {
        let cfg = Config::parse(&Source::new("bench", config(n))).unwrap();
        let uri: http::Uri = "/bench/last/42?x=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("shop.example.com"));
        headers.insert("cookie", HeaderValue::from_static("session=abc"));
        let method = Method::GET;
        group.bench_with_input(BenchmarkId::new("last_route", n), &n, |b, _| {
            b.iter(|| {
                let view = RequestView::new(&method, &uri, &headers, [10, 0, 0, 1].into());
                black_box(cfg.routes.decide(black_box(&view)))
            })
        });
        let miss: http::Uri = "/nothing/here".parse().unwrap();
        group.bench_with_input(BenchmarkId::new("no_match", n), &n, |b, _| {
            b.iter(|| {
                let view = RequestView::new(&method, &miss, &headers, [10, 0, 0, 1].into());
                black_box(cfg.routes.decide(black_box(&view)))
            })
        });
    }
    group.finish();
}

/// A JSON body of about `bytes`, and the same with a few values changed.
fn bodies(bytes: usize) -> (Response, Response) {
    let item = |i: usize, price: f64| {
        format!(
            r#"{{"id":{i},"name":"item {i}","price":{price},"tags":["a","b"],"stock":{}}}"#,
            i % 7
        )
    };
    let n = (bytes / 70).max(1);
    let a: Vec<String> = (0..n).map(|i| item(i, 10.5)).collect();
    let b: Vec<String> = (0..n)
        .map(|i| item(i, if i % 50 == 0 { 11.5 } else { 10.5 }))
        .collect();
    let response = |items: Vec<String>| {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Response {
            status: 200,
            headers,
            body: Bytes::from(format!(r#"{{"items":[{}]}}"#, items.join(","))),
        }
    };
    (response(a), response(b))
}

fn json_comparison(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_comparison");
    let rules = Rules::default();
    for (label, size) in [("1KB", 1024), ("100KB", 100 * 1024), ("1MB", 1024 * 1024)] {
        let (a, b) = bodies(size);
        group.throughput(criterion::Throughput::Bytes(a.body.len() as u64));
        group.bench_function(label, |bench| {
            bench.iter(|| black_box(compare(&a, &b, &rules)))
        });
    }
    group.finish();
}

fn compile_snapshot(c: &mut Criterion) {
    let text = config(2000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("2000_routes", |b| {
        b.iter(|| black_box(Config::parse(&Source::new("bench", text.as_str())).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, route_matching, json_comparison, compile_snapshot);
criterion_main!(benches);
