//! Reload triggers outside the admin API: the config file changing on disk (watched by
//! fswatch.rs), and SIGHUP.

use super::history::Origin;
use super::Reloader;
use crate::fswatch::{watch_paths, FileWatch};
use std::sync::Arc;
use tokio::task::JoinHandle;

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
