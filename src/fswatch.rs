//! Watching files on disk: the config file, certificates. The files' directories are
//! watched, not the files: editors replace a file by rename, and a Kubernetes ConfigMap
//! mount swaps a `..data` symlink, so a file's own inode is the wrong thing to follow.
//! Any event in a directory starts a short quiet period; then the caller reads again.

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
