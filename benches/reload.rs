//! How long a 2,000-route config takes from trigger to swap: compile alone, the whole
//! apply path (what `PUT /api/config` and SIGHUP run), and a file change seen by the
//! watcher (with its 100 ms debounce). A benchmark, not a test: it prints figures.
//!
//!   cargo bench --bench reload

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod many_routes;

use banyan::config::{Config, Source};
use banyan::reload::history::Origin;
use std::time::{Duration, Instant};

const ROUTES: usize = 2000;
const RUNS: usize = 15;

fn text(variant: usize) -> String {
    many_routes::many_routes(
        ROUTES,
        &[
            ("legacy", "http://127.0.0.1:1"),
            ("items", &format!("http://127.0.0.1:{}", 2 + variant % 2)),
        ],
        "127.0.0.1:0",
        "127.0.0.1:0",
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let compile = (0..RUNS)
            .map(|i| {
                let src = Source::new("bench.toml", text(i));
                let t = Instant::now();
                Config::parse(&src).unwrap();
                t.elapsed()
            })
            .collect();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banyan.toml");
        std::fs::write(&path, text(0)).unwrap();
        let running =
            banyan::server::start_with_file(Config::load(&path).unwrap(), Some(path.clone()))
                .await
                .unwrap();
        let reloader = running.reloader.clone();
        let apply = (1..=RUNS)
            .map(|i| {
                let t = text(i);
                let start = Instant::now();
                reloader.apply(&t, "bench", Origin::Api).unwrap();
                start.elapsed()
            })
            .collect();

        let mut file = Vec::new();
        for i in RUNS + 1..=RUNS + 5 {
            let before = reloader.status().0.unwrap().number;
            let t = text(i);
            let start = Instant::now();
            std::fs::write(&path, &t).unwrap();
            while reloader.status().0.unwrap().number == before {
                tokio::time::sleep(Duration::from_millis(1)).await;
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the file change was not applied"
                );
            }
            file.push(start.elapsed());
        }
        println!(
            "2,000-route config, {} bytes, median of runs:",
            text(0).len()
        );
        println!("| step | time |\n| --- | --- |");
        println!(
            "| parse + validate + compile | {:.1} ms |",
            median(compile).as_secs_f64() * 1e3
        );
        println!(
            "| apply: compile + build snapshot + swap (PUT, SIGHUP) | {:.1} ms |",
            median(apply).as_secs_f64() * 1e3
        );
        println!(
            "| file written -> swapped (watcher, 100 ms debounce) | {:.1} ms |",
            median(file).as_secs_f64() * 1e3
        );
    });
}
