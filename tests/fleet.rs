//! Fleet mode against a real PostgreSQL: three banyan processes on loopback share one
//! database (a fresh one per test). A config put to one instance is served by all three;
//! every instance sees the others' heartbeats; PostgreSQL going away costs no request,
//! and the fleet catches up when it returns.
//!
//! The server is `BANYAN_TEST_POSTGRES` (a URL to its `postgres` database), else
//! postgres://postgres@127.0.0.1:5432/postgres; `make test-deps` installs and starts one
//! when none answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

fn server_url() -> String {
    std::env::var("BANYAN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own for one test, dropped at the end.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create(tag: &str) -> Database {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "banyan_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin_client().await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = server_url();
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("BANYAN_TEST_POSTGRES names no database: {base}"),
        };
        Database { name, url }
    }

    async fn drop_it(self) {
        let admin = admin_client().await;
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

async fn admin_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} does not answer ({e}): `make test-deps` installs and starts one, or set BANYAN_TEST_POSTGRES",
                server_url()
            )
        });
    tokio::spawn(connection);
    client
}

/// The config every instance starts with: `/items` to legacy.
fn config(legacy: &Backend, new: &Backend) -> String {
    format!(
        "default = \"legacy\"\n[fleet]\nheartbeat = \"500ms\"\n\
         [upstreams.legacy]\nendpoints = [\"{}\"]\n[upstreams.new]\nendpoints = [\"{}\"]\n\
         [[routes]]\nname = \"items\"\nmatch.path = {{ prefix = \"/items\" }}\naction = \"forward\"\nupstream = \"legacy\"\n",
        legacy.url(),
        new.url()
    )
}

async fn fleet(admin: SocketAddr) -> Value {
    let got = get(admin, "/api/fleet", &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    serde_json::from_str(&got.text()).unwrap()
}

/// Wait until `admin`'s fleet view lists `n` instances alive.
async fn wait_for_instances(admin: SocketAddr, n: usize) {
    assert!(
        eventually(Duration::from_secs(20), || async move {
            let f = fleet(admin).await;
            f["instances"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["alive"] == true)
                .count()
                == n
        })
        .await,
        "{:#}",
        fleet(admin).await
    );
}

/// The process id of the instance that leads, as `admin`'s fleet view shows it.
async fn leader_pid(admin: SocketAddr) -> Option<i64> {
    fleet(admin).await["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["leader"] == true)
        .and_then(|i| i["pid"].as_i64())
}

fn start(text: &str, url: &str) -> Process {
    Process::start_with_env(text, &[("BANYAN_FLEET_POSTGRES", url)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_put_to_one_instance_is_served_by_all_three() {
    let db = Database::create("config").await;
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let text = config(&legacy, &new);
    let url = db.url.clone();
    let instances: Vec<Process> =
        tokio::task::spawn_blocking(move || (0..3).map(|_| start(&text, &url)).collect())
            .await
            .unwrap();
    let admins: Vec<SocketAddr> = instances.iter().map(|p| p.admin_addr).collect();

    // Each sees the three heartbeats, and all run the same fleet version.
    let first = admins[0];
    wait_for_instances(first, 3).await;
    // Instances that started together may each have published their (equal) config;
    // they settle on the newest version within a heartbeat or two.
    assert!(
        eventually(Duration::from_secs(10), || async move {
            let f = fleet(first).await;
            let version = f["config_version"].as_i64();
            version.is_some()
                && f["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|i| i["config_version"].as_i64() == version)
        })
        .await,
        "{:#}",
        fleet(first).await
    );
    let f = fleet(first).await;
    assert_eq!(f["connected"], true, "{f:#}");
    let version = f["config_version"].as_i64().expect("a fleet version");

    // A change put to the second instance reaches all three.
    let changed = format!(
        "{}\n{}",
        config(&legacy, &new).replace("upstream = \"legacy\"", "upstream = \"new\""),
        listeners()
    );
    let put = call(admins[1], "PUT", "/api/config", &[], &changed).await;
    assert_eq!(put.status, 200, "{}", put.text());
    for p in &instances {
        let proxy = p.proxy_addr;
        assert!(
            eventually(Duration::from_secs(10), || async move {
                get(proxy, "/items/1", &[]).await.backend() == Some("new")
            })
            .await,
            "instance {} still serves the old config: {:#}",
            p.admin_addr,
            fleet(p.admin_addr).await
        );
    }
    let f = fleet(admins[2]).await;
    let newer = f["config_version"].as_i64().unwrap();
    assert!(newer > version, "{f:#}");
    // Each instance's history says where the version came from.
    let status: Value =
        serde_json::from_str(&get(admins[0], "/api/config/status", &[]).await.text()).unwrap();
    assert_eq!(status["source"], "fleet", "{status:#}");
    assert_eq!(
        status["fleet"]["version"].as_i64(),
        Some(newer),
        "{status:#}"
    );
    assert_eq!(status["fleet"]["connected"], true);

    drop(instances);
    db.drop_it().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_one_instance_cannot_apply_is_reported_and_its_config_keeps_serving() {
    let db = Database::create("partial").await;
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    // The version names an admin token file by a relative path: it is there for the
    // first instance (its working directory has it), not for the second.
    let with_file = tempfile::tempdir().unwrap();
    std::fs::write(with_file.path().join("token"), "s3cret-token\n").unwrap();
    let without_file = tempfile::tempdir().unwrap();
    let text = config(&legacy, &new);
    let url = db.url.clone();
    let (dir_a, dir_b) = (
        with_file.path().to_path_buf(),
        without_file.path().to_path_buf(),
    );
    let (a, b) = tokio::task::spawn_blocking(move || {
        let env = [("BANYAN_FLEET_POSTGRES", url.as_str())];
        (
            Process::start_in(&text, &env, Some(&dir_a)),
            Process::start_in(&text, &env, Some(&dir_b)),
        )
    })
    .await
    .unwrap();
    let (admin_a, admin_b) = (a.admin_addr, b.admin_addr);
    wait_for_instances(admin_a, 2).await;
    let before = fleet(admin_b).await["config_version"].as_i64();
    let changed = format!(
        "{}\n{}token_file = \"token\"\n",
        config(&legacy, &new).replace("upstream = \"legacy\"", "upstream = \"new\""),
        listeners()
    );
    let put = call(admin_a, "PUT", "/api/config", &[], &changed).await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(
        get(a.proxy_addr, "/items/1", &[]).await.backend(),
        Some("new")
    );
    // The second instance reports why, keeps serving its config, and says which it runs.
    assert!(
        eventually(Duration::from_secs(10), || async move {
            fleet(admin_b).await["config_error"].is_string()
        })
        .await,
        "{:#}",
        fleet(admin_b).await
    );
    let f = fleet(admin_b).await;
    let error = f["config_error"].as_str().unwrap();
    assert!(error.contains("token"), "{error}");
    assert_eq!(
        f["config_version"].as_i64(),
        before,
        "it still runs the version it had"
    );
    assert_eq!(
        get(b.proxy_addr, "/items/1", &[]).await.backend(),
        Some("legacy")
    );
    // The first instance sees the second's error in the fleet's table (at its next
    // heartbeat).
    assert!(
        eventually(Duration::from_secs(5), || async move {
            fleet(admin_a).await["instances"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| {
                    i["config_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("token"))
                })
        })
        .await,
        "{:#}",
        fleet(admin_a).await
    );
    drop((a, b));
    db.drop_it().await;
}

/// A TCP relay to PostgreSQL that the test can cut and restore.
struct Relay {
    addr: SocketAddr,
    open: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (gate, held) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !gate.load(Ordering::SeqCst) {
                    continue; // dropped: refused as soon as it connects
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                held.lock().unwrap().push(task);
            }
        });
        Relay {
            addr,
            open,
            connections,
        }
    }

    /// Cut every connection, and refuse new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_costs_no_request_and_the_fleet_catches_up() {
    let db = Database::create("outage").await;
    let pg: SocketAddr = {
        let cfg: tokio_postgres::Config = db.url.parse().unwrap();
        let host = match &cfg.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            other => panic!("a TCP PostgreSQL is needed: {other:?}"),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let found = tokio::net::lookup_host((host.as_str(), port))
            .await
            .unwrap()
            .next()
            .unwrap();
        found
    };
    let relay = Relay::start(pg).await;
    let through_relay = {
        let cfg: tokio_postgres::Config = db.url.parse().unwrap();
        format!(
            "postgres://{}@{}/{}",
            cfg.get_user().unwrap_or("postgres"),
            relay.addr,
            cfg.get_dbname().unwrap()
        )
    };
    let store = tempfile::tempdir().unwrap();
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    // And a route that shadows, whose samples and figures must flow again afterwards.
    let text = format!(
        "{}[[routes]]\nname = \"shadowed\"\nmatch.path = {{ prefix = \"/shadowed\" }}\n\
         action = \"forward\"\nupstream = \"legacy\"\nshadow = {{ to = \"new\" }}\n\
         [shadow]\nstore = {:?}\n",
        config(&legacy, &new),
        store.path().join("diffs.sqlite")
    );
    // The change made after the outage keeps the shadowing route.
    let changed = format!(
        "{}\n{}",
        text.replacen("upstream = \"legacy\"", "upstream = \"new\"", 1),
        listeners()
    );
    let (a, b) = tokio::task::spawn_blocking(move || {
        (start(&text, &through_relay), start(&text, &through_relay))
    })
    .await
    .unwrap();
    let (admin_a, admin_b) = (a.admin_addr, b.admin_addr);
    wait_for_instances(admin_a, 2).await;

    // PostgreSQL away: every request is still served, and the instances say why.
    relay.cut();
    let proxy = a.proxy_addr;
    let mut failed = 0;
    for i in 0..200 {
        let got = get(
            if i % 2 == 0 { proxy } else { b.proxy_addr },
            "/items/1",
            &[],
        )
        .await;
        if got.status != 200 {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..20 {
        if get(proxy, "/shadowed/1", &[]).await.status != 200 {
            failed += 1;
        }
    }
    assert_eq!(failed, 0, "requests failed while PostgreSQL was away");
    assert!(
        eventually(Duration::from_secs(10), || async move {
            fleet(admin_a).await["connected"] == false
        })
        .await
    );
    assert_eq!(
        get(admin_a, "/readyz", &[]).await.status,
        200,
        "still ready"
    );

    // Back: the link returns, and a change made afterwards reaches the other instance.
    relay.restore();
    assert!(
        eventually(Duration::from_secs(20), || async move {
            fleet(admin_a).await["connected"] == true && fleet(admin_b).await["connected"] == true
        })
        .await,
        "{:#}",
        fleet(admin_a).await
    );
    assert_eq!(
        call(admin_a, "PUT", "/api/config", &[], &changed)
            .await
            .status,
        200
    );
    let proxy_b = b.proxy_addr;
    assert!(
        eventually(Duration::from_secs(10), || async move {
            get(proxy_b, "/items/1", &[]).await.backend() == Some("new")
        })
        .await,
        "{:#}",
        fleet(admin_b).await
    );
    // Samples and figures flow again: what A compared during the outage and after it is
    // in the fleet's figures B shows, and the samples kept after it in the fleet's store.
    for _ in 0..20 {
        assert_eq!(get(proxy, "/shadowed/1", &[]).await.status, 200);
    }
    let shadowed = |s: &Value| {
        s["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == "shadowed")
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert!(
        eventually(Duration::from_secs(20), || async move {
            let s: Value =
                serde_json::from_str(&get(admin_b, "/api/shadow", &[]).await.text()).unwrap();
            s["scope"] == "fleet" && shadowed(&s)["compared"] == 40
        })
        .await,
        "{}",
        get(admin_b, "/api/shadow", &[]).await.text()
    );
    assert!(
        eventually(Duration::from_secs(20), || async move {
            let d: Value =
                serde_json::from_str(&get(admin_b, "/api/diffs?route=shadowed", &[]).await.text())
                    .unwrap();
            d["groups"][0]["count"].as_i64().unwrap_or(0) >= 20
        })
        .await,
        "{}",
        get(admin_b, "/api/diffs?route=shadowed", &[]).await.text()
    );
    drop((a, b));
    db.drop_it().await;
}

/// A canary with a ramp on `/items`, gates that a few hundred requests can prove.
fn ramp_config(legacy: &Backend, new: &Backend, store: &std::path::Path) -> String {
    format!(
        "default = \"legacy\"\n[fleet]\nheartbeat = \"300ms\"\n[shadow]\nstore = {:?}\n\
         [upstreams.legacy]\nendpoints = [\"{}\"]\n[upstreams.new]\nendpoints = [\"{}\"]\n\
         [[routes]]\nname = \"items\"\nmatch.path = {{ prefix = \"/items\" }}\naction = \"migrate\"\n\
         migration = {{ stage = \"canary\", new = \"new\", key = {{ header = \"x-user\" }} }}\n\
         ramp = {{ steps = [10, 50, 100], min_time = \"1s\", interval = \"200ms\", min_requests = 20, \
         min_comparisons = 30, max_error_margin = 0.1, latency_quantile = \"p50\", max_latency_factor = 50.0 }}\n\
         compare = {{ ignore = [\"header.x-backend\"] }}\n",
        store.join("diffs.sqlite"),
        legacy.url(),
        new.url()
    )
}

fn kinds(m: &Value) -> Vec<String> {
    m["routes"][0]["ramp"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{} {}", e["kind"].as_str().unwrap(), e["to_percent"]))
        .collect()
}

/// Requests from many users through one proxy until dropped.
fn traffic(proxy: SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for i in 0u64.. {
            get(proxy, "/items/7", &[("x-user", &format!("user-{i}"))]).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ramp_for_the_fleet_judged_on_every_instances_traffic() {
    let db = Database::create("ramp").await;
    let legacy = Backend::with_handler("legacy", |_| Reply::ok("{\"id\": 7}")).await;
    let new = Backend::with_handler("new", |_| Reply::ok("{\"id\": 7}")).await;
    let dir = tempfile::tempdir().unwrap();
    let text = ramp_config(&legacy, &new, dir.path());
    let url = db.url.clone();
    let mut instances: Vec<Process> =
        tokio::task::spawn_blocking(move || (0..3).map(|_| start(&text, &url)).collect())
            .await
            .unwrap();
    let admins: Vec<SocketAddr> = instances.iter().map(|p| p.admin_addr).collect();

    // Traffic through the first instance only; the leader, whichever it is, judges the
    // fleet's figures, and all three stand at the same step.
    let load = traffic(instances[0].proxy_addr);
    let all = admins.clone();
    assert!(
        eventually(Duration::from_secs(30), || {
            let all = all.clone();
            async move {
                let mut at = Vec::new();
                for a in &all {
                    at.push(percent(*a).await);
                }
                at.iter().all(|p| *p == 10.0)
            }
        })
        .await,
        "{:#}",
        migration(admins[2]).await
    );

    // A pause on the third instance holds the fleet.
    let paused = call(admins[2], "POST", "/api/migration/items/pause", &[], "").await;
    assert_eq!(paused.status, 200, "{}", paused.text());
    for a in &admins {
        let a = *a;
        assert!(
            eventually(Duration::from_secs(10), || async move {
                migration(a).await["routes"][0]["ramp"]["paused"] == true
            })
            .await
        );
    }
    // At one step, a keyed user gets the same side through each instance.
    for u in 0..40 {
        let user = format!("sticky-{u}");
        let mut sides = Vec::new();
        for p in &instances {
            sides.push(
                get(p.proxy_addr, "/items/7", &[("x-user", &user)])
                    .await
                    .backend()
                    .map(str::to_string),
            );
        }
        assert!(sides.windows(2).all(|w| w[0] == w[1]), "{user}: {sides:?}");
    }
    // The fleet view shows the step each instance applied, and none lags a version.
    let first = admins[0];
    assert!(
        eventually(Duration::from_secs(10), || async move {
            let f = fleet(first).await;
            let alive: Vec<&Value> = f["instances"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["alive"] == true)
                .collect();
            alive.len() == 3
                && alive
                    .iter()
                    .all(|i| i["ramps"]["items"] == 10.0 && i["versions_behind"] == 0)
        })
        .await,
        "{:#}",
        fleet(first).await
    );

    // Resume; then the leader dies, another takes over, and the ramp finishes with no
    // move made twice.
    assert_eq!(
        call(admins[1], "POST", "/api/migration/items/resume", &[], "")
            .await
            .status,
        200
    );
    let leader = leader_pid(admins[0]).await.expect("a leader");
    let index = instances
        .iter()
        .position(|p| i64::from(p.child.id()) == leader)
        .expect("the leader is one of ours");
    let mut dead = instances.remove(index);
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let load = if index == 0 {
        load.abort();
        traffic(instances[0].proxy_addr)
    } else {
        load
    };
    let survivors: Vec<SocketAddr> = instances.iter().map(|p| p.admin_addr).collect();
    let (a, b) = (survivors[0], survivors[1]);
    assert!(
        eventually(Duration::from_secs(60), || async move {
            percent(a).await == 100.0 && percent(b).await == 100.0
        })
        .await,
        "{:#}\n{:#}\n{:#}",
        migration(a).await["routes"][0]["percent_new"],
        migration(b).await,
        fleet(b).await
    );
    load.abort();
    let m = migration(a).await;
    assert_eq!(
        kinds(&m),
        [
            "advance 10.0",
            "pause 10.0",
            "resume 10.0",
            "advance 50.0",
            "advance 100.0"
        ],
        "{m:#}"
    );
    assert_eq!(kinds(&m), kinds(&migration(b).await));
    let f = fleet(a).await;
    assert_eq!(
        f["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["leader"] == true)
            .count(),
        1,
        "{f:#}"
    );
    drop(instances);
    db.drop_it().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_rolls_back_on_traffic_it_never_saw() {
    let db = Database::create("rollback").await;
    let legacy = Backend::with_handler("legacy", |_| Reply::ok("{\"price\": 10}")).await;
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = broken.clone();
    let new = Backend::with_handler("new", move |_| {
        Reply::ok(if flag.load(Ordering::Relaxed) {
            "{\"price\": 11}"
        } else {
            "{\"price\": 10}"
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = ramp_config(&legacy, &new, dir.path());
    let url = db.url.clone();
    let instances: Vec<Process> =
        tokio::task::spawn_blocking(move || (0..3).map(|_| start(&text, &url)).collect())
            .await
            .unwrap();
    let first = instances[0].admin_addr;
    // Who leads; the traffic goes through another instance only.
    let mut found = None;
    for _ in 0..100 {
        found = leader_pid(first).await;
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader_pid = found.expect("an instance leads");
    let leader = instances
        .iter()
        .find(|p| i64::from(p.child.id()) == leader_pid)
        .unwrap();
    let other = instances
        .iter()
        .find(|p| i64::from(p.child.id()) != leader_pid)
        .unwrap();
    let load = traffic(other.proxy_addr);
    let leader_admin = leader.admin_addr;
    assert!(
        eventually(Duration::from_secs(30), || async move {
            percent(leader_admin).await == 10.0
        })
        .await,
        "{:#}",
        migration(leader_admin).await
    );
    broken.store(true, Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(30), || async move {
            kinds(&migration(leader_admin).await)
                .iter()
                .any(|k| k.starts_with("rollback"))
        })
        .await,
        "{:#}",
        migration(leader_admin).await
    );
    load.abort();
    let m = migration(leader_admin).await;
    let events = m["routes"][0]["ramp"]["events"].as_array().unwrap().clone();
    let rollback = events.iter().find(|e| e["kind"] == "rollback").unwrap();
    let reason = rollback["reason"].as_str().unwrap();
    assert!(reason.contains("$.price"), "{reason}");
    // The leader judged figures it never served: its own proxy saw no request.
    let routes: Value =
        serde_json::from_str(&get(leader_admin, "/api/routes", &[]).await.text()).unwrap();
    let served: u64 = routes["routes"][0]["traffic"]["15m"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| f["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(served, 0, "{routes:#}");
    // It exports the fleet's figures it judged, and that it leads.
    assert_eq!(metric(leader_admin, "banyan_fleet_leader").await, 1.0);
    assert_eq!(metric(other.admin_addr, "banyan_fleet_leader").await, 0.0);
    assert!(
        metric(
            leader_admin,
            "banyan_fleet_ramp_figures{figure=\"compared\",route=\"items\"}"
        )
        .await
            > 0.0
    );
    // And every instance stands where the leader put it.
    for p in &instances {
        let a = p.admin_addr;
        assert!(
            eventually(Duration::from_secs(10), || async move {
                migration(a).await["routes"][0]["ramp"]["paused"] == true
            })
            .await
        );
    }
    drop(instances);
    db.drop_it().await;
}

/// A route in its shadow stage: legacy serves, the new service gets a copy that differs
/// from legacy's answer in `$.price`.
fn shadow_stage_config(legacy: &Backend, new: &Backend, store: &std::path::Path) -> String {
    format!(
        "default = \"legacy\"\n[fleet]\nheartbeat = \"300ms\"\n[shadow]\nstore = {:?}\nmin_samples = 50\n\
         [upstreams.legacy]\nendpoints = [\"{}\"]\n[upstreams.new]\nendpoints = [\"{}\"]\n\
         [[routes]]\nname = \"items\"\nmatch.path = {{ prefix = \"/items\" }}\naction = \"migrate\"\n\
         migration = {{ stage = \"shadow\", new = \"new\" }}\n\
         compare = {{ ignore = [\"header.x-backend\"] }}\n",
        store.join("diffs.sqlite"),
        legacy.url(),
        new.url()
    )
}

async fn json_at(admin: SocketAddr, path: &str) -> Value {
    let got = get(admin, path, &[]).await;
    assert_eq!(got.status, 200, "{path}: {}", got.text());
    serde_json::from_str(&got.text()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_shows_the_fleets_diffs_verdicts_and_readiness() {
    let db = Database::create("diffs").await;
    let legacy = Backend::with_handler("legacy", |_| Reply::ok("{\"id\": 7, \"price\": 10}")).await;
    let new = Backend::with_handler("new", |_| Reply::ok("{\"id\": 7, \"price\": 12}")).await;
    let dir = tempfile::tempdir().unwrap();
    let text = shadow_stage_config(&legacy, &new, dir.path());
    let url = db.url.clone();
    let instances: Vec<Process> =
        tokio::task::spawn_blocking(move || (0..3).map(|_| start(&text, &url)).collect())
            .await
            .unwrap();
    let (a, b, c) = (&instances[0], &instances[1], &instances[2]);
    wait_for_instances(a.admin_addr, 3).await;
    let a_name = fleet(a.admin_addr).await["instance"]
        .as_str()
        .unwrap()
        .to_string();

    // All the traffic through one instance.
    for i in 0..120 {
        let got = get(a.proxy_addr, &format!("/items/{i}"), &[]).await;
        assert_eq!(got.backend(), Some("legacy"));
    }

    // Another instance shows the fleet's comparisons and the regression's verdict.
    let admin_b = b.admin_addr;
    assert!(
        eventually(Duration::from_secs(20), || async move {
            let s = json_at(admin_b, "/api/shadow").await;
            // The totals and the minute windows arrive by separate flushes: wait for both.
            s["scope"] == "fleet"
                && s["routes"][0]["compared"].as_u64() == Some(120)
                && s["routes"][0]["comparisons"].as_u64() == Some(120)
        })
        .await,
        "{:#}",
        json_at(admin_b, "/api/shadow").await
    );
    let shadow = json_at(admin_b, "/api/shadow").await;
    let route = &shadow["routes"][0];
    assert_eq!(route["total_mismatches"], 120, "{shadow:#}");
    assert_eq!(
        route["comparisons"], 120,
        "the window counts the fleet's: {shadow:#}"
    );
    let price = route["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "$.price")
        .unwrap_or_else(|| panic!("{shadow:#}"));
    assert_eq!(price["verdict"], "regression", "{shadow:#}");
    // B itself served nothing: what it shows came from A through PostgreSQL.
    let b_local: Value =
        serde_json::from_str(&get(admin_b, "/api/routes", &[]).await.text()).unwrap();
    assert_eq!(
        b_local["routes"][0]["traffic"]["15m"]["legacy"]["requests"], 0,
        "{b_local:#}"
    );

    // The samples A kept are in the fleet's store, and C reads them.
    let admin_c = c.admin_addr;
    assert!(
        eventually(Duration::from_secs(20), || async move {
            let d = json_at(admin_c, "/api/diffs?route=items").await;
            d["groups"][0]["count"].as_i64() == Some(120)
        })
        .await,
        "{:#}",
        json_at(admin_c, "/api/diffs?route=items").await
    );
    let groups = json_at(admin_c, "/api/diffs?route=items").await;
    assert_eq!(
        groups["groups"].as_array().unwrap().len(),
        1,
        "one bug, one group: {groups:#}"
    );
    let group = &groups["groups"][0];
    let signature = group["signature"].as_str().unwrap();
    let page = json_at(
        admin_c,
        &format!("/api/diffs?signature={signature}&limit=50"),
    )
    .await;
    assert_eq!(page["samples"].as_array().unwrap().len(), 50);
    let next = page["next_cursor"].as_str().expect("a second page");
    let rest = json_at(
        admin_c,
        &format!("/api/diffs?signature={signature}&limit=50&cursor={next}"),
    )
    .await;
    let rest_next = rest["next_cursor"].as_str().expect("a third page");
    let last = json_at(
        admin_c,
        &format!("/api/diffs?signature={signature}&limit=50&cursor={rest_next}"),
    )
    .await;
    assert_eq!(last["samples"].as_array().unwrap().len(), 20, "{last:#}");
    assert!(last["next_cursor"].is_null());
    assert_eq!(rest["samples"].as_array().unwrap().len(), 50, "{rest:#}");
    let sample = json_at(admin_c, &format!("/api/diffs/{}", group["example_id"])).await;
    assert_eq!(sample["instance"], a_name.as_str(), "{sample:#}");
    assert_eq!(sample["differences"][0]["path"], "$.price", "{sample:#}");
    assert_eq!(sample["request"]["method"], "GET");
    // The fleet mode store is PostgreSQL: the SQLite file the config names is never made.
    assert!(!dir.path().join("diffs.sqlite").exists());
    let status = json_at(admin_c, "/api/config/status").await;
    assert!(
        status["store"]["path"]
            .as_str()
            .unwrap()
            .starts_with("postgres"),
        "{status:#}"
    );

    // The readiness report of a third instance: the fleet's regression, with A's sample.
    let report = json_at(admin_c, "/api/migration/report").await;
    assert_eq!(report["scope"], "fleet");
    let r = &report["routes"][0];
    assert_eq!(r["compared"], 120, "{report:#}");
    assert_eq!(r["ready"], false, "{report:#}");
    assert_eq!(r["regressions"][0]["field"], "$.price", "{report:#}");
    assert!(r["regressions"][0]["example_id"].is_i64(), "{report:#}");

    // Clearing on one instance clears the fleet's samples.
    assert_eq!(
        call(admin_c, "POST", "/api/diffs/clear?route=items", &[], "")
            .await
            .status,
        200
    );
    let after = json_at(a.admin_addr, "/api/diffs?route=items").await;
    assert_eq!(after["groups"].as_array().unwrap().len(), 0, "{after:#}");
    drop(instances);
    db.drop_it().await;
}

#[tokio::test]
async fn a_banyan_without_a_fleet_table_says_it_runs_alone() {
    let legacy = Backend::start("legacy").await;
    let b = banyan(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n",
        legacy.url()
    ))
    .await;
    let got = get(b.admin_addr, "/api/fleet", &[]).await;
    assert_eq!(got.status, 404);
    assert!(got.text().contains("runs alone"), "{}", got.text());
}
