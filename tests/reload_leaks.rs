//! Nothing leaks across reloads: tasks, file descriptors, threads, memory. Alone in its
//! own test binary, because it measures the whole process.

#![allow(clippy::unwrap_used)]

mod common;
use banyan::reload::history::Origin;
use common::*;
use std::time::Duration;

fn with_listeners(text: &str) -> String {
    format!("{text}\n{}", listeners())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_reloads_leak_no_tasks_descriptors_threads_or_memory() {
    let backends = [
        Backend::unrecorded("a").await,
        Backend::unrecorded("b").await,
    ];
    // Each version moves pool "p" to the other backend, with a health check: every reload
    // builds a new pool and a health task, and must drop the old ones.
    let cfg = |i: usize| {
        with_listeners(&format!(
            "default = \"p\"\n[upstreams.p]\nendpoints = [\"{}\"]\nhealth_check = {{ path = \"/h\", interval = \"50ms\" }}\n",
            backends[i % 2].url()
        ))
    };
    let running = banyan::server::start(config(&cfg(0))).await.unwrap();
    let reloader = running.reloader.clone();
    let measure = || {
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
        let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        (tasks, fds, threads, rss_kib)
    };
    for i in 1..=20 {
        reloader.apply(&cfg(i), "warm-up", Origin::Api).unwrap();
        get(running.proxy_addr, "/", &[]).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut seen = vec![measure()];
    for round in 0..2 {
        for i in 0..1000 {
            let applied = reloader
                .apply(&cfg(21 + round * 1000 + i), "leak test", Origin::Api)
                .unwrap();
            assert!(!applied.unchanged);
            if i % 10 == 0 {
                assert_eq!(get(running.proxy_addr, "/", &[]).await.status, 200);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        seen.push(measure());
    }
    eprintln!(
        "(tasks, fds, threads, rss KiB): start {:?}, after 1000 reloads {:?}, after 2000 {:?}",
        seen[0], seen[1], seen[2]
    );
    let (before, after) = (seen[0], seen[1]);
    assert!(
        after.0 <= before.0 + 4,
        "tasks grew: {before:?} -> {after:?}"
    );
    assert!(
        after.1 <= before.1 + 8,
        "file descriptors grew: {before:?} -> {after:?}"
    );
    assert!(
        after.2 <= before.2 + 2,
        "threads grew: {before:?} -> {after:?}"
    );
    assert!(
        after.3 <= before.3 + 8 * 1024,
        "memory grew by more than 8 MiB: {before:?} -> {after:?}"
    );
    // A leak keeps growing; the allocator settling does not.
    let (mid, end) = (seen[1], seen[2]);
    assert!(
        (end.0, end.1, end.2) <= (mid.0 + 4, mid.1 + 8, mid.2 + 2),
        "{mid:?} -> {end:?}"
    );
    assert!(
        end.3 <= mid.3 + 2 * 1024,
        "memory kept growing over the second 1000 reloads: {mid:?} -> {end:?}"
    );
}
