//! Fleet mode: the instances of a fleet share their state through PostgreSQL, an engine
//! operators already run, replicate and back up; no protocol of banyan's own. With a
//! `[fleet]` table, each instance:
//!
//! - migrates the schema at start (`schema.rs`), safely when several start at once;
//! - writes a heartbeat row (its config version and any config it could not apply);
//! - publishes a config applied locally (file change, SIGHUP, the admin API) as a new
//!   version, and applies the newest version another instance published, within about a
//!   second (LISTEN/NOTIFY, polling as the fallback);
//! - flushes its ramped routes' figures, and takes each ramp's state from the fleet; the
//!   one instance that holds the leader lock judges the ramps on the fleet's sums
//!   (`ramps.rs`);
//! - flushes its shadow figures (`figures.rs`) and writes its mismatch samples to the
//!   fleet's diff store (`diffs.rs`), so any instance shows the fleet's diffs and
//!   verdicts.
//!
//! PostgreSQL is never on the request path: when it is away, traffic flows on the last
//! config, and the loop reconnects and catches up when it returns.

pub mod db;
pub mod diffs;
pub mod figures;
pub mod ramps;
pub mod schema;
mod sync;

use crate::config::FleetSettings;
use crate::reload::Reloader;
use db::FleetError;
use deadpool_postgres::Pool;
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard};

/// The NOTIFY channel of new config versions.
pub const CONFIG_CHANNEL: &str = "banyan_config";

/// A running fleet membership.
pub struct Fleet {
    pub instance: String,
    pub settings: FleetSettings,
    pool: Pool,
    state: Mutex<FleetState>,
    /// This instance holds the leader lock: it judges the ramps.
    leader: std::sync::atomic::AtomicBool,
    /// The revision of each ramp's fleet state (route, fingerprint) this instance last saw.
    revisions: Mutex<std::collections::HashMap<(String, String), i64>>,
}

/// What this instance knows of its link to the fleet.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetState {
    /// PostgreSQL answered the last time the loop asked.
    pub connected: bool,
    /// The last failure to reach or use PostgreSQL.
    pub last_error: Option<String>,
    /// The fleet's config version this instance runs (None: none yet).
    pub config_version: Option<i64>,
    /// Why the newest fleet version could not be applied here, if it could not.
    pub config_error: Option<String>,
    /// The local history's newest version already published (or adopted).
    #[serde(skip)]
    pub published_local: u64,
    /// The newest fleet version this instance tried, applied or not.
    #[serde(skip)]
    pub seen_version: Option<i64>,
}

/// One instance as the fleet's table shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct InstanceRow {
    pub instance: String,
    pub pid: i32,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_seconds: f64,
    /// Its heartbeat is within three heartbeat periods.
    pub alive: bool,
    pub config_version: Option<i64>,
    pub config_hash: Option<String>,
    pub config_error: Option<String>,
    /// It held the leader lock at its last heartbeat (and is alive).
    pub leader: bool,
    /// The percent of traffic each gated ramp sends to the new side on it, by route.
    pub ramps: std::collections::BTreeMap<String, f64>,
    /// Fleet config versions newer than the one it runs (0: it runs the newest).
    pub versions_behind: Option<i64>,
}

/// This instance's name when the config gives none: host name and process id.
fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "banyan".into());
    format!("{host}-{}", std::process::id())
}

impl Fleet {
    fn lock(&self) -> MutexGuard<'_, FleetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> FleetState {
        self.lock().clone()
    }

    fn revisions(&self) -> MutexGuard<'_, std::collections::HashMap<(String, String), i64>> {
        self.revisions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The instances that ever sent a heartbeat, newest first.
    pub async fn instances(&self) -> Result<Vec<InstanceRow>, FleetError> {
        let client = self.pool.get().await?;
        let alive_within = self.settings.heartbeat.as_secs_f64() * 3.0;
        let rows = client
            .query(
                "SELECT instance, pid, extract(epoch FROM now() - heartbeat_at)::float8,
                        config_version, config_hash, config_error, leader, ramps,
                        (SELECT count(*) FROM banyan_config_versions v
                         WHERE v.number > coalesce(i.config_version, 0))
                 FROM banyan_instances i ORDER BY heartbeat_at DESC, instance",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let age: f64 = r.get(2);
                InstanceRow {
                    instance: r.get(0),
                    pid: r.get(1),
                    heartbeat_age_seconds: age,
                    alive: age <= alive_within,
                    config_version: r.get(3),
                    config_hash: r.get(4),
                    config_error: r.get(5),
                    leader: r.get::<_, bool>(6) && age <= alive_within,
                    ramps: serde_json::from_str(r.get(7)).unwrap_or_default(),
                    versions_behind: r.get::<_, Option<i64>>(3).map(|_| r.get::<_, i64>(8)),
                }
            })
            .collect())
    }
}

impl Fleet {
    /// A member of the fleet `settings` name: its pool is built, nothing connects yet.
    /// Fails only on a settings error; PostgreSQL being away is the loop's business.
    pub fn new(settings: FleetSettings) -> Result<Arc<Fleet>, FleetError> {
        let Some(url) = &settings.postgres else {
            return Err(FleetError::Missing);
        };
        Ok(Arc::new(Fleet {
            instance: settings.instance.clone().unwrap_or_else(default_instance),
            pool: db::pool(url)?,
            settings,
            state: Mutex::new(FleetState::default()),
            leader: std::sync::atomic::AtomicBool::new(false),
            revisions: Mutex::default(),
        }))
    }
}

/// Join the fleet: start the loop that keeps this instance in step with it.
pub fn start(fleet: &Arc<Fleet>, reloader: Arc<Reloader>) {
    if let Some(url) = fleet.settings.postgres.clone() {
        tokio::spawn(sync::run(fleet.clone(), reloader, url));
    }
}
