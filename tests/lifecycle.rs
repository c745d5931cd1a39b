//! Lifecycle of the banyan process: SIGTERM drains in-flight requests (within the drain
//! period), and `banyan run --upgrade` takes the sockets over under load with no request
//! lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn write_config(dir: &std::path::Path, backend: &Backend, server: &str) -> std::path::PathBuf {
    let path = dir.join("banyan.toml");
    std::fs::write(
        &path,
        format!(
            "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n\
             [server]\nlisten = \"127.0.0.1:0\"\n{server}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            backend.url()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let slow =
        Backend::with_handler("slow", |_| Reply::ok("done").delay(Duration::from_secs(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &slow, "drain_period = \"20s\"");
    let mut p = tokio::task::spawn_blocking(move || Process::launch(&path, &[], &[]))
        .await
        .unwrap();
    let proxy = p.proxy_addr;
    let in_flight = tokio::spawn(async move { get(proxy, "/slow", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.signal("TERM");
    let refused = eventually(Duration::from_secs(5), || async move {
        tokio::net::TcpStream::connect(proxy).await.is_err()
    })
    .await;
    assert!(refused, "no new connections once draining");
    let got = in_flight.await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "done");
    let status = tokio::task::spawn_blocking(move || p.wait_exit(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(status.expect("exited").success());
}

#[tokio::test]
async fn the_drain_period_bounds_how_long_shutdown_waits() {
    let stuck = Backend::with_handler("stuck", |_| {
        Reply::ok("late").delay(Duration::from_secs(60))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &stuck, "drain_period = \"300ms\"");
    let mut p = tokio::task::spawn_blocking(move || Process::launch(&path, &[], &[]))
        .await
        .unwrap();
    let proxy = p.proxy_addr;
    let in_flight = tokio::spawn(async move {
        client()
            .get(format!("http://{proxy}/stuck").parse().unwrap())
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.signal("TERM");
    let status = tokio::task::spawn_blocking(move || p.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(status
        .expect("exits long before the upstream answers")
        .success());
    assert!(
        in_flight.await.unwrap().is_err(),
        "cut off at the end of the drain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_under_load_loses_no_request() {
    let legacy = Backend::unrecorded("legacy").await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("upgrade.sock");
    let path = write_config(
        dir.path(),
        &legacy,
        &format!("upgrade_socket = {socket:?}\ndrain_period = \"10s\""),
    );
    let first_path = path.clone();
    let mut old = tokio::task::spawn_blocking(move || Process::launch(&first_path, &[], &[]))
        .await
        .unwrap();
    let proxy = old.proxy_addr;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for worker in 0..8 {
        let (stop, ok, errors) = (stop.clone(), ok.clone(), errors.clone());
        load.push(tokio::spawn(async move {
            let client = client();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let url = format!("http://{proxy}/w{worker}/{i}").parse().unwrap();
                match client.get(url).await {
                    Ok(resp) if resp.status() == 200 => {
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => errors
                        .lock()
                        .unwrap()
                        .push(format!("status {}", resp.status())),
                    Err(e) => errors.lock().unwrap().push(format!("{e:?}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_upgrade = ok.load(Ordering::Relaxed);
    assert!(before_upgrade > 0, "the load runs");

    let new = tokio::task::spawn_blocking(move || Process::launch(&path, &["--upgrade"], &[]))
        .await
        .unwrap();
    assert_eq!(new.proxy_addr, proxy, "the same socket");
    let status = tokio::task::spawn_blocking(move || old.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(status.expect("the old process retires").success());
    let at_exit = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let total = ok.load(Ordering::Relaxed);
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} requests lost: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(
        total > at_exit,
        "the new process serves after the old one exited"
    );
    assert!(socket.exists(), "the new process serves upgrades in turn");
    drop(new);
}

#[tokio::test]
async fn systemd_socket_activation_serves_on_the_passed_sockets() {
    let legacy = Backend::start("legacy").await;
    let (proxy, admin) = (dead_addr().await, dead_addr().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("banyan.toml");
    // The config asks for other ports: the named sockets systemd passes win.
    std::fs::write(
        &path,
        format!(
            "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n\
             [server]\nlisten = \"127.0.0.1:1\"\n[admin]\nlisten = \"127.0.0.1:2\"\n",
            legacy.url()
        ),
    )
    .unwrap();
    // systemd-socket-activate listens, and starts banyan at the first connection with
    // the sockets as fds 3 and 4 (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), as systemd does.
    let mut child = std::process::Command::new("systemd-socket-activate")
        .args(["-l", &proxy.to_string(), "-l", &admin.to_string()])
        .arg("--fdname=proxy:admin")
        .arg(banyan_bin())
        .args(["run", "-c"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate runs (package systemd)");
    let log = collect_lines(child.stderr.take().unwrap());
    let up = eventually(Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(proxy).await.is_ok()
    })
    .await;
    assert!(up, "systemd-socket-activate listens");
    let got = get(proxy, "/activated", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.backend(), Some("legacy"));
    assert_eq!(get(admin, "/healthz", &[]).await.status, 200);
    let _ = child.kill();
    let _ = child.wait();
    let log = log.lock().unwrap();
    assert_eq!(
        log.matches("listening on an inherited socket").count(),
        2,
        "{log}"
    );
}

/// An upgrade keeps the listening sockets it takes over: when the new config asks for
/// another address, it says so instead of keeping the old one without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_to_another_listen_address_says_it_keeps_the_old_one() {
    let legacy = Backend::unrecorded("legacy").await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("upgrade.sock");
    let path = write_config(dir.path(), &legacy, &format!("upgrade_socket = {socket:?}"));
    let first_path = path.clone();
    let mut old = tokio::task::spawn_blocking(move || Process::launch(&first_path, &[], &[]))
        .await
        .unwrap();
    let proxy = old.proxy_addr;
    let elsewhere = dead_addr().await;
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{elsewhere}\""),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let new = tokio::task::spawn_blocking(move || Process::launch(&path, &["--upgrade"], &[]))
        .await
        .unwrap();
    assert_eq!(new.proxy_addr, proxy, "the socket taken over");
    let status = tokio::task::spawn_blocking(move || old.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(status.expect("the old process retires").success());
    let said = new.stderr.lock().unwrap().join("\n");
    assert!(
        said.contains(&format!("asks for {elsewhere}")) && said.contains(&proxy.to_string()),
        "{said}"
    );
    assert_eq!(get(proxy, "/still", &[]).await.status, 200);
}
