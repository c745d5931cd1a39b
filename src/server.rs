//! Listeners: accept connections, serve HTTP/1.1 and HTTP/2 (h2c) with the proxy
//! service, and drain on shutdown.

use crate::config::Config;
use crate::proxy::{self, Client, SharedSnapshot};
use crate::reload::watch::FileWatch;
use crate::reload::Reloader;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_PERIOD: Duration = Duration::from_secs(10);

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

/// The HTTP/1.1 + HTTP/2 connection builder both listeners use.
pub fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    builder
}

async fn serve_proxy(
    listener: TcpListener,
    snapshot: SharedSnapshot,
    mut stop: watch::Receiver<bool>,
) {
    let builder = connection_builder();
    let graceful = GracefulShutdown::new();
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
                serve_connection(&builder, &graceful, stream, addr, snapshot.clone());
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_PERIOD) => tracing::warn!("drain period over; closing remaining connections"),
    }
}

fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    addr: SocketAddr,
    snapshot: SharedSnapshot,
) {
    let _ = stream.set_nodelay(true);
    let client = Client {
        addr,
        scheme: "http",
    };
    let service = service_fn(move |req| {
        let snapshot = snapshot.clone();
        async move { Ok::<_, Infallible>(proxy::handle(&snapshot, client, req).await) }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, client = %addr, "connection ended with an error");
        }
    });
}
