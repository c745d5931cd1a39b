//! Hot reload: every trigger (file change, SIGHUP, admin API, rollback) goes through one
//! path: parse, validate, compile a whole new snapshot, swap it in atomically. A config
//! that does not validate changes nothing; in-flight requests finish on the snapshot they
//! started with.

pub mod history;
pub mod watch;

use crate::clock::now_unix;
use crate::config::{Config, ConfigError, Diagnostic, Source};
use crate::metrics;
use crate::snapshot::SharedSnapshot;
use crate::snapshot::Snapshot;
use history::{content_hash, History, Origin, Version};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Why a reload was refused.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// The first error, as one sentence with its place.
    pub error: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Every located error.
    pub errors: Vec<Diagnostic>,
    pub source: Origin,
    pub at: f64,
}

impl Rejection {
    fn new(err: &ConfigError, source: Origin) -> Self {
        let errors = err.diagnostics().to_vec();
        let first = errors.first();
        Rejection {
            error: first.map_or_else(|| err.to_string(), |d| d.with_level("error")),
            line: first.map(|d| d.line),
            column: first.map(|d| d.column),
            errors,
            source,
            at: now_unix(),
        }
    }

    fn other(message: String, source: Origin) -> Self {
        Rejection {
            error: message,
            line: None,
            column: None,
            errors: Vec::new(),
            source,
            at: now_unix(),
        }
    }
}

/// What a successful reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub version: u64,
    pub hash: String,
    /// The text was the running one: nothing was swapped and no version was added.
    pub unchanged: bool,
    /// Findings that did not refuse the config (unreachable routes, listener changes
    /// that need a restart).
    pub warnings: Vec<String>,
}

/// Counts and the last refusal, for `/api/config/status`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub applied: u64,
    pub rejected: u64,
}

#[derive(Default)]
struct State {
    history: History,
    last_error: Option<Rejection>,
    counts: Counts,
    /// The hash of the config file's content when it was last read: a file event
    /// applies the file only when its content changed since, so an event next to it (a
    /// certificate renewal, an editor's swap file) does not undo a version from the API.
    file_hash: Option<String>,
}

/// The one place configs are applied.
pub struct Reloader {
    shared: SharedSnapshot,
    path: Option<PathBuf>,
    state: Mutex<State>,
}

impl Reloader {
    /// Start from the config already live in `shared`.
    pub fn new(shared: SharedSnapshot, path: Option<PathBuf>) -> Self {
        let mut state = State::default();
        let current = shared.load();
        let source = &current.config.source;
        if path.is_some() {
            state.file_hash = Some(content_hash(&source.text));
        }
        state.history.push(
            Arc::from(source.text.as_str()),
            Origin::Startup,
            source.name.clone(),
        );
        let reloader = Reloader {
            shared,
            path,
            state: Mutex::new(state),
        };
        metrics::config_applied(Origin::Startup.label(), 1, 0.0);
        reloader
    }

    pub fn snapshot(&self) -> &SharedSnapshot {
        &self.shared
    }

    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the history half-written: every
        // update is a single push or assignment. Keep serving with what is there.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Re-read the config file and apply it. A file event (`Origin::File`) applies it only
    /// when its content changed since it was last read; SIGHUP and the API's reload
    /// apply it whatever it holds.
    pub fn reload_file(&self, origin: Origin) -> Result<Applied, Rejection> {
        let Some(path) = &self.path else {
            return Err(self.reject(Rejection::other(
                "banyan was started without a config file: nothing to re-read".into(),
                origin,
            )));
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let hash = content_hash(&text);
                {
                    let mut state = self.state();
                    if origin == Origin::File && state.file_hash.as_deref() == Some(&hash) {
                        let running = state.history.current().cloned();
                        return Ok(Applied {
                            version: running.as_ref().map_or(0, |v| v.number),
                            hash: running.map(|v| v.hash).unwrap_or_default(),
                            unchanged: true,
                            warnings: Vec::new(),
                        });
                    }
                    state.file_hash = Some(hash);
                }
                self.apply(&text, &path.display().to_string(), origin)
            }
            Err(e) => Err(self.reject(Rejection::other(
                format!("cannot read config file {}: {e}", path.display()),
                origin,
            ))),
        }
    }

    /// Validate `text` and, if it is valid and differs from the running config, swap it
    /// in. `name` is what errors call the text (a file path, "PUT /api/config").
    pub fn apply(&self, text: &str, name: &str, origin: Origin) -> Result<Applied, Rejection> {
        let started = Instant::now();
        // One reload at a time: two racing reloads must not interleave their swaps.
        let mut state = self.state();
        let hash = content_hash(text);
        if let Some(current) = state.history.current() {
            if current.hash == hash {
                return Ok(Applied {
                    version: current.number,
                    hash,
                    unchanged: true,
                    warnings: Vec::new(),
                });
            }
        }
        let config = match Config::parse(&Source::new(name, text)) {
            Ok(c) => c,
            Err(e) => {
                drop(state);
                return Err(self.reject(Rejection::new(&e, origin)));
            }
        };
        let warnings = self.warnings(&config);
        let current = self.shared.load_full();
        let next = Snapshot::build(config, Some(&current));
        self.shared.store(Arc::new(next));
        drop(current);
        let version = state
            .history
            .push(Arc::from(text), origin, name.to_string())
            .number;
        state.counts.applied += 1;
        drop(state);
        let seconds = started.elapsed().as_secs_f64();
        metrics::config_applied(origin.label(), version, seconds);
        tracing::info!(version, source = origin.label(), %name, seconds, "config applied");
        Ok(Applied {
            version,
            hash,
            unchanged: false,
            warnings,
        })
    }

    /// Apply version `number` of the history again, as a new version.
    pub fn rollback(&self, number: u64) -> Option<Result<Applied, Rejection>> {
        let text = self.state().history.get(number)?.text.clone();
        Some(self.apply(&text, &format!("rollback to version {number}"), Origin::Api))
    }

    fn warnings(&self, config: &Config) -> Vec<String> {
        let out = warnings(config, &self.shared.load().config);
        for w in &out {
            tracing::warn!("{w}");
        }
        out
    }

    fn reject(&self, rejection: Rejection) -> Rejection {
        tracing::error!(source = rejection.source.label(), error = %rejection.error, "config rejected; the running config stays");
        for e in rejection.errors.iter().skip(1) {
            tracing::error!("{}", e.with_level("error"));
        }
        metrics::config_rejected(rejection.source.label());
        let mut state = self.state();
        state.counts.rejected += 1;
        state.last_error = Some(rejection.clone());
        rejection
    }

    /// The running version, the last refusal, and the counts.
    pub fn status(&self) -> (Option<Version>, Option<Rejection>, Counts) {
        let state = self.state();
        (
            state.history.current().cloned(),
            state.last_error.clone(),
            state.counts.clone(),
        )
    }

    /// Whether the running version is the config file's content as last read (None
    /// without a file). False after an API change the file does not hold.
    pub fn file_matches_running(&self) -> Option<bool> {
        self.path.as_ref()?;
        let state = self.state();
        let running = state.history.current().map(|v| v.hash.as_str());
        Some(state.file_hash.is_some() && state.file_hash.as_deref() == running)
    }

    /// Newest first.
    pub fn history(&self) -> Vec<Version> {
        self.state().history.list().cloned().collect()
    }

    pub fn version(&self, number: u64) -> Option<Version> {
        self.state().history.get(number).cloned()
    }
}

/// What applying `config` over `running` would warn of: the config's own findings, and
/// listeners that would not move (they move only on restart).
pub fn warnings(config: &Config, running: &Config) -> Vec<String> {
    let mut out: Vec<String> = config
        .warnings
        .iter()
        .map(|w| w.with_level("warning"))
        .collect();
    if config.server.listen != running.server.listen {
        out.push(format!(
            "server.listen changed to {}: listeners move only on restart; still serving on {}",
            config.server.listen, running.server.listen
        ));
    }
    let tls_listen = |c: &Config| c.server.tls.as_ref().map(|t| t.listen);
    if tls_listen(config) != tls_listen(running) {
        out.push(format!(
            "server.tls.listen changed to {:?}: listeners move only on restart; the HTTPS listener stays as it was ({:?})",
            tls_listen(config),
            tls_listen(running)
        ));
    }
    if config.admin.listen != running.admin.listen {
        out.push(format!(
            "admin.listen changed to {}: listeners move only on restart; still on {}",
            config.admin.listen, running.admin.listen
        ));
    }
    out
}
