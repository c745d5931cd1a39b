//! Listeners: accept connections, serve HTTP/1.1 and HTTP/2 (h2c) with the proxy
//! service, and drain on shutdown.

mod conn;

use crate::config::Config;
use crate::proxy::{Client, SharedSnapshot};
use crate::reload::watch::FileWatch;
use crate::reload::Reloader;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot watch the config file: {0}")]
    Watch(String),
    #[error("cannot handle SIGHUP")]
    Signal(#[source] std::io::Error),
}

/// A running banyan: proxy and admin listeners, the live snapshot and its reloader.
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub snapshot: SharedSnapshot,
    pub reloader: Arc<Reloader>,
    shutdown: watch::Sender<bool>,
    /// Listener tasks: they end on shutdown, after draining.
    tasks: Vec<JoinHandle<()>>,
    /// Reload triggers: stopped on shutdown.
    _triggers: Triggers,
}

#[derive(Default)]
struct Triggers {
    file: Option<FileWatch>,
    signal: Option<JoinHandle<()>>,
}

impl Drop for Triggers {
    fn drop(&mut self) {
        if let Some(t) = &self.signal {
            t.abort();
        }
    }
}

/// Bind both listeners and start serving `config`, which came from no file.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    start_with_file(config, None).await
}

/// Bind both listeners and start serving `config`. With the file it came from, changes
/// to the file and SIGHUP reload it.
pub async fn start_with_file(
    config: Config,
    path: Option<PathBuf>,
) -> Result<Running, ServerError> {
    let proxy_listener = bind(config.server.listen).await?;
    let admin_listener = bind(config.admin.listen).await?;
    let proxy_addr = local_addr(&proxy_listener, config.server.listen);
    let admin_addr = local_addr(&admin_listener, config.admin.listen);
    let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::build(config, None)));
    let reloader = Arc::new(Reloader::new(snapshot.clone(), path.clone()));
    let (shutdown, watch_rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(serve_proxy(
            proxy_listener,
            snapshot.clone(),
            watch_rx.clone(),
        )),
        tokio::spawn(crate::admin::serve(
            admin_listener,
            reloader.clone(),
            watch_rx,
        )),
    ];
    let mut triggers = Triggers::default();
    if path.is_some() {
        triggers.file = crate::reload::watch::watch_file(reloader.clone())
            .map_err(|e| ServerError::Watch(e.to_string()))?;
        triggers.signal =
            Some(crate::reload::watch::on_sighup(reloader.clone()).map_err(ServerError::Signal)?);
    }
    tracing::info!(addr = %proxy_addr, "proxy listening");
    tracing::info!(addr = %admin_addr, "admin listening");
    Ok(Running {
        proxy_addr,
        admin_addr,
        snapshot,
        reloader,
        shutdown,
        tasks,
        _triggers: triggers,
    })
}

impl Running {
    /// Stop accepting, let in-flight requests finish (up to the drain period), return.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}

/// The connection builder of the admin listener (the proxy's carries its own limits).
pub fn connection_builder() -> auto::Builder<TokioExecutor> {
    conn::builder(&crate::guard::Limits::default())
}

/// Accept connections until told to stop, then drain: every connection finishes what
/// it has in flight (up to the drain period) and closes.
async fn serve_proxy(
    listener: TcpListener,
    snapshot: SharedSnapshot,
    mut stop: watch::Receiver<bool>,
) {
    let settings = snapshot.load().config.server.clone();
    let (drain_tx, drain_rx) = watch::channel(false);
    let shared = Arc::new(conn::Shared {
        builder: conn::builder(&settings.limits),
        snapshot,
        limits: settings.limits.clone(),
        drain_period: settings.drain_period,
        drain: drain_rx,
    });
    // Every connection task holds a sender; when all are gone, the drain is over.
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let client = Client { addr, scheme: "http" };
                let (shared, alive) = (shared.clone(), alive.clone());
                tokio::spawn(async move {
                    conn::serve(shared, stream, client, true).await;
                    drop(alive);
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = drain_tx.send(true);
    drop(alive);
    // Connections close themselves by the drain period; the margin covers the last writes.
    let _ = tokio::time::timeout(
        settings.drain_period + Duration::from_secs(1),
        all_closed.recv(),
    )
    .await;
}
