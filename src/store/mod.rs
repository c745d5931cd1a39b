//! The diff store: mismatch samples, written by one thread in batches from a bounded
//! channel (a full channel drops the sample and counts it: the request path never waits
//! on the disk or the database). Samples are grouped by signature so one bug is one
//! group with N occurrences; retention by count and age. Where the batches go is a
//! [`Sink`]: the embedded SQLite file of a lone instance, or (fleet mode) the fleet's
//! PostgreSQL.

pub mod query;
pub mod ramp_store;
pub mod redact;
pub mod secrets;

use crate::compare::Difference;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Samples waiting for the writer, at most.
const QUEUE: usize = 1024;
/// Rows written per transaction, at most.
const BATCH: usize = 256;

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory of the diff store {path}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the diff store {path}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// One mismatch, redacted, ready to store.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub route: String,
    pub signature: String,
    /// The (field, kind) pairs of the signature, as JSON.
    pub fields: String,
    pub at: f64,
    pub request: serde_json::Value,
    pub primary: serde_json::Value,
    pub shadow: serde_json::Value,
    pub differences: Vec<Difference>,
    pub primary_ms: f64,
    pub shadow_ms: f64,
}

/// How much the store keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub samples: u64,
    pub age: Duration,
}

/// Where a store's samples go, and where readers find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file of this instance.
    File(PathBuf),
    /// The fleet's PostgreSQL, shared by every instance.
    Fleet,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Fleet => f.write_str("postgres (the fleet's diff store)"),
        }
    }
}

/// Where the writer thread puts its batches.
pub trait Sink: Send + 'static {
    /// Write a batch whole, or fail whole.
    fn write(&mut self, batch: &[Sample]) -> Result<(), String>;
    /// Drop what retention no longer keeps.
    fn trim(&mut self, retention: Retention) -> Result<(), String>;
    /// How often `trim` runs.
    fn trim_every(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// The sending side; the writer thread stops when the last one is dropped.
pub struct Store {
    location: Location,
    tx: SyncSender<Sample>,
    health: Arc<Health>,
}

/// What the writer has done: shown in `/api/config/status` and the dashboard.
#[derive(Debug, Default)]
struct Health {
    written: AtomicU64,
    lost: AtomicU64,
    /// The last write error, cleared by the next good write.
    failing: Mutex<Option<String>>,
}

/// The store's health, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub path: String,
    /// `ok`, `failing` (its last write failed) or `unavailable` (it could not be opened).
    pub state: &'static str,
    pub written: u64,
    /// Samples a failed write lost (a full queue's drops are counted per route in
    /// `banyan_shadow_samples_dropped_total`, as these are).
    pub lost: u64,
    pub error: Option<String>,
}

impl HealthReport {
    /// A store that could not be opened.
    pub fn unavailable(path: &Path, error: String) -> Self {
        HealthReport {
            path: path.display().to_string(),
            state: "unavailable",
            written: 0,
            lost: 0,
            error: Some(error),
        }
    }
}

impl Store {
    /// An SQLite store at `path`.
    pub fn open(path: &Path, retention: Retention) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        Store::with_sink(
            Location::File(path.to_path_buf()),
            SqliteSink(conn),
            retention,
        )
        .map_err(|source| StoreError::Dir {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A store whose writer thread hands its batches to `sink`.
    pub fn with_sink(
        location: Location,
        sink: impl Sink,
        retention: Retention,
    ) -> std::io::Result<Store> {
        let (tx, rx) = sync_channel(QUEUE);
        let health = Arc::new(Health::default());
        let writer_health = health.clone();
        std::thread::Builder::new()
            .name("banyan-diff-store".into())
            .spawn(move || write_loop(sink, rx, retention, &writer_health))?;
        Ok(Store {
            location,
            tx,
            health,
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The SQLite file, for a store that has one.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::File(path) => Some(path),
            Location::Fleet => None,
        }
    }

    pub fn health(&self) -> HealthReport {
        let error = self
            .health
            .failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        HealthReport {
            path: self.location.to_string(),
            state: if error.is_some() { "failing" } else { "ok" },
            written: self.health.written.load(Ordering::Relaxed),
            lost: self.health.lost.load(Ordering::Relaxed),
            error,
        }
    }

    /// Write samples at once into the SQLite store at `path`, not through a writer
    /// thread: a replay's, at its end.
    pub fn write_now(path: &Path, samples: &[Sample]) -> Result<(), String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        SqliteSink(conn).write(samples)
    }

    /// Queue a sample; false (and nothing waits) when the queue is full.
    pub fn submit(&self, sample: Sample) -> bool {
        match self.tx.try_send(sample) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS diff_groups (
    signature TEXT PRIMARY KEY,
    route TEXT NOT NULL,
    fields TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS diff_samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signature TEXT NOT NULL,
    route TEXT NOT NULL,
    at REAL NOT NULL,
    request TEXT NOT NULL,
    primary_response TEXT NOT NULL,
    shadow_response TEXT NOT NULL,
    differences TEXT NOT NULL,
    primary_ms REAL NOT NULL,
    shadow_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS diff_samples_signature ON diff_samples (signature);
CREATE INDEX IF NOT EXISTS diff_samples_route_at ON diff_samples (route, at);
";

fn write_loop(mut sink: impl Sink, rx: Receiver<Sample>, retention: Retention, health: &Health) {
    let mut last_trim = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(s) => Some(s),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch: Vec<Sample> = first.into_iter().collect();
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let failing = match sink.write(&batch) {
                Ok(()) => {
                    health
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    None
                }
                Err(e) => {
                    // A store away for an hour is one error in the log, not thousands.
                    let was = health
                        .failing
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    if was.as_deref() != Some(e.as_str()) {
                        tracing::error!(error = %e, samples = batch.len(), "diff store write failed; samples lost (and counted) until it works again");
                    }
                    health.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for s in &batch {
                        crate::metrics::metrics()
                            .shadow_samples_dropped_total
                            .with_label_values(&[s.route.as_str()])
                            .inc();
                    }
                    Some(e)
                }
            };
            let mut state = health.failing.lock().unwrap_or_else(|p| p.into_inner());
            if state.is_some() && failing.is_none() {
                tracing::info!("diff store writes again");
            }
            *state = failing;
        }
        if last_trim.elapsed() > sink.trim_every() {
            last_trim = Instant::now();
            if let Err(e) = sink.trim(retention) {
                tracing::warn!(error = %e, "diff store retention failed");
            }
        }
    }
}

/// The embedded SQLite file of a lone instance.
struct SqliteSink(Connection);

impl Sink for SqliteSink {
    fn write(&mut self, batch: &[Sample]) -> Result<(), String> {
        write_batch(&mut self.0, batch).map_err(|e| e.to_string())
    }

    fn trim(&mut self, retention: Retention) -> Result<(), String> {
        trim(&self.0, retention).map_err(|e| e.to_string())
    }
}

fn write_batch(conn: &mut Connection, batch: &[Sample]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for s in batch {
        let json = |v: &serde_json::Value| v.to_string();
        tx.execute(
            "INSERT INTO diff_samples (signature, route, at, request, primary_response, shadow_response, differences, primary_ms, shadow_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                s.signature,
                s.route,
                s.at,
                json(&s.request),
                json(&s.primary),
                json(&s.shadow),
                serde_json::to_string(&s.differences).unwrap_or_default(),
                s.primary_ms,
                s.shadow_ms
            ],
        )?;
        tx.execute(
            "INSERT INTO diff_groups (signature, route, fields, count, first_seen, last_seen) VALUES (?1, ?2, ?3, 1, ?4, ?4)
             ON CONFLICT (signature) DO UPDATE SET count = count + 1, last_seen = excluded.last_seen",
            params![s.signature, s.route, s.fields, s.at],
        )?;
    }
    tx.commit()
}

fn trim(conn: &Connection, retention: Retention) -> rusqlite::Result<()> {
    let cutoff = crate::clock::now_unix() - retention.age.as_secs_f64();
    conn.execute("DELETE FROM diff_samples WHERE at < ?1", params![cutoff])?;
    conn.execute(
        "DELETE FROM diff_samples WHERE id <= (SELECT id FROM diff_samples ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        params![retention.samples as i64],
    )?;
    conn.execute(
        "DELETE FROM diff_groups WHERE last_seen < ?1",
        params![cutoff],
    )?;
    Ok(())
}
