//! Micro-benchmarks of the pure cores: route matching with 10 and 2,000 routes, JSON,
//! XML, HTML and text comparison of 1 KB, 100 KB and 1 MB bodies, compiling a 2,000-route config, and the
//! hostile-input guards every request passes.
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
            call: None,
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

/// The JSON bench's items as another body kind, with the same values changed.
fn typed_bodies(bytes: usize, kind: &str) -> (Response, Response) {
    let item = |i: usize, price: f64| match kind {
        "xml" => format!(
            r#"<item id="{i}"><name>item {i}</name><price>{price}</price><tags><tag>a</tag><tag>b</tag></tags><stock>{}</stock></item>"#,
            i % 7
        ),
        "html" => format!(
            r#"<tr class="item" data-id="{i}"><td>item {i}</td><td class="price">{price}</td><td><em>a</em> <em>b</em></td><td>{}</td></tr>"#,
            i % 7
        ),
        _ => format!("item {i}\tprice {price}\ttags a,b\tstock {}\n", i % 7),
    };
    let (open, close, content_type) = match kind {
        "xml" => (
            "<?xml version=\"1.0\"?><items>",
            "</items>",
            "application/xml",
        ),
        "html" => (
            "<!doctype html><html><head><title>Items</title></head><body><table>",
            "</table></body></html>",
            "text/html",
        ),
        _ => ("", "", "text/plain"),
    };
    let n = (bytes / item(0, 10.5).len()).max(1);
    let render = |changed: bool| {
        let items: String = (0..n)
            .map(|i| item(i, if changed && i % 50 == 0 { 11.5 } else { 10.5 }))
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static(content_type));
        Response {
            status: 200,
            headers,
            body: Bytes::from(format!("{open}{items}{close}")),
            call: None,
        }
    };
    (render(false), render(true))
}

/// XML, HTML and text beside the JSON group: the same items, sizes and changes.
fn markup_comparison(c: &mut Criterion) {
    let rules = Rules::default();
    for kind in ["xml", "html", "text"] {
        let mut group = c.benchmark_group(format!("{kind}_comparison"));
        group.sample_size(20);
        for (label, size) in [("1KB", 1024), ("100KB", 100 * 1024), ("1MB", 1024 * 1024)] {
            let (a, b) = typed_bodies(size, kind);
            group.throughput(criterion::Throughput::Bytes(a.body.len() as u64));
            group.bench_function(label, |bench| {
                bench.iter(|| black_box(compare(&a, &b, &rules)))
            });
        }
        group.finish();
    }
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

/// What the hostile-input guards add to every request: the strict framing reader over a
/// typical browser request head, and the head checks.
fn request_guards(c: &mut Criterion) {
    let head = b"GET /api/items/42?expand=price HTTP/1.1\r\nHost: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n\
Accept: application/json\r\nAccept-Language: en-GB,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\nCookie: session=abc123; theme=dark\r\n\
Connection: keep-alive\r\n\r\n";
    let mut group = c.benchmark_group("request_guards");
    group.bench_function("framing_head_330b", |b| {
        b.iter(|| {
            let mut f = banyan::inbound::framing::Framing::new(64 * 1024, 100);
            f.feed(black_box(head)).unwrap();
        })
    });
    let req = http::Request::get("/api/items/42?expand=price")
        .header("host", "shop.example.com")
        .header("accept", "application/json")
        .header("cookie", "session=abc123; theme=dark")
        .body(())
        .unwrap();
    let (parts, ()) = req.into_parts();
    let limits = banyan::inbound::Limits::default();
    group.bench_function("head_checks", |b| {
        b.iter(|| banyan::inbound::head::check(black_box(&parts), &limits).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    route_matching,
    json_comparison,
    markup_comparison,
    compile_snapshot,
    request_guards
);
criterion_main!(benches);
