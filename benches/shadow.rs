//! Client latency with and without a shadow that never answers: the shadow must not be
//! on the client's path. Prints p50 and p99 of each, from one run, in turns.
//!
//!   cargo bench --bench shadow

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::time::{Duration, Instant};

const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 32;

async fn backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Bytes::from(format!("{{\"items\":\"{}\"}}", "x".repeat(1000)));
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        let mut r = http::Response::new(Full::new(body));
                        r.headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// Accepts and never answers.
async fn hanging() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

async fn run(url: String) -> Vec<Duration> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let per_worker = REQUESTS / CONCURRENCY;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    let t = Instant::now();
                    let resp = client
                        .request(http::Request::get(&url).body(Full::default()).unwrap())
                        .await
                        .unwrap();
                    resp.into_body().collect().await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all.sort();
    all
}

fn pct(v: &[Duration], p: f64) -> f64 {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (legacy, dead) = (backend().await, hanging().await);
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "default = \"legacy\"\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[shadow]\nstore = \"{}\"\n\
             [upstreams.legacy]\nendpoints = [\"http://{legacy}\"]\n[upstreams.new]\nendpoints = [\"http://{dead}\"]\n\
             [[routes]]\nname = \"shadowed\"\nmatch = {{ path = {{ prefix = \"/shadowed\" }} }}\naction = \"shadow\"\nshadow = {{ to = \"new\", timeout = \"60s\", max_in_flight = 64 }}\n",
            dir.path().join("d.sqlite").display()
        );
        let config = banyan::config::Config::parse(&banyan::config::Source::new("bench", text)).unwrap();
        let b = banyan::server::start(config).await.unwrap();
        let mut rows = Vec::new();
        for (name, path) in [("no shadow", "/plain"), ("shadow that never answers", "/shadowed"), ("no shadow (again)", "/plain")] {
            let t = Instant::now();
            let lat = run(format!("http://{}{path}", b.proxy_addr)).await;
            let rps = lat.len() as f64 / t.elapsed().as_secs_f64();
            rows.push((name, rps, pct(&lat, 0.5), pct(&lat, 0.99), pct(&lat, 0.999)));
        }
        println!("{REQUESTS} requests, {CONCURRENCY} concurrent, 1 KB JSON, banyan in-process on 2 worker threads");
        println!("| route | requests/s | p50 ms | p99 ms | p99.9 ms |\n| --- | --- | --- | --- | --- |");
        for (name, rps, p50, p99, p999) in rows {
            println!("| {name} | {rps:.0} | {p50:.3} | {p99:.3} | {p999:.3} |");
        }
        let m = banyan::metrics::render();
        for line in m.lines().filter(|l| l.starts_with("banyan_shadow_requests_total") || l.starts_with("banyan_requests_total{route=\"shadowed\",status_class=\"2xx\"") || l.starts_with("banyan_requests_total{route=\"default\",status_class=\"2xx\"")) {
            println!("{line}");
        }
    });
}
