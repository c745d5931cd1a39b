//! Reload triggers outside the admin API: the config file (or a certificate) changing
//! on disk, and SIGHUP.
//!
//! The file's directory is watched, not the file: editors replace a file by rename, and a
//! Kubernetes ConfigMap mount swaps a `..data` symlink, so the file's own inode is the
//! wrong thing to follow. Any event in the directory starts a short quiet period; then the
//! file is read again, and applied only if its content changed.

use super::history::Origin;
use super::Reloader;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long the directory must be quiet before the file is read.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// A burst longer than this is read anyway, so a change lands within a second.
const MAX_WAIT: Duration = Duration::from_millis(500);

/// A running file watch; dropping it stops watching.
pub struct FileWatch {
    _watcher: RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watch the reloader's config file. Needs a tokio runtime.
pub fn watch_file(reloader: Arc<Reloader>) -> notify::Result<Option<FileWatch>> {
    let Some(path) = reloader.path().cloned() else {
        return Ok(None);
    };
    tracing::info!(file = %path.display(), "watching the config file");
    watch_paths(&[path], move || {
        let _ = reloader.reload_file(Origin::File);
    })
    .map(Some)
}

/// Call `on_change` (on a blocking thread) after any burst of changes in the
/// directories of `paths`. Needs a tokio runtime.
pub fn watch_paths(
    paths: &[PathBuf],
    on_change: impl Fn() + Send + Sync + 'static,
) -> notify::Result<FileWatch> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })?;
    let mut dirs: Vec<PathBuf> = paths
        .iter()
        .map(|p| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(FileWatch {
        _watcher: watcher,
        task: tokio::spawn(debounce(rx, Arc::new(on_change))),
    })
}

async fn debounce(mut events: mpsc::UnboundedReceiver<()>, on_change: Arc<dyn Fn() + Send + Sync>) {
    while events.recv().await.is_some() {
        let burst_started = tokio::time::Instant::now();
        loop {
            match tokio::time::timeout(DEBOUNCE, events.recv()).await {
                Ok(Some(())) if burst_started.elapsed() < MAX_WAIT => continue,
                Ok(None) => return,
                _ => break,
            }
        }
        // Reading and compiling is blocking work: off the async workers.
        let f = on_change.clone();
        let _ = tokio::task::spawn_blocking(move || f()).await;
    }
}

/// Reload from the file on every SIGHUP.
pub fn on_sighup(reloader: Arc<Reloader>) -> std::io::Result<JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config file");
            reload(&reloader, Origin::Signal).await;
        }
    }))
}

/// Compile off the async workers: a large config takes milliseconds to build.
async fn reload(reloader: &Arc<Reloader>, origin: Origin) {
    let r = reloader.clone();
    let _ = tokio::task::spawn_blocking(move || r.reload_file(origin)).await;
}
