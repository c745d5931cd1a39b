//! Listeners: accept connections, serve HTTP/1.1 and HTTP/2 (h2c) with the proxy
//! service, and drain on shutdown.

mod activity;
mod conn;
mod h1;
pub mod handover;
pub mod listeners;
pub mod slots;
mod wake;

use handover::Offer;
use listeners::{Inherited, Role};

use crate::config::Config;
use crate::fswatch::FileWatch;
use crate::proxy::Client;
use crate::reload::Reloader;
use crate::snapshot::SharedSnapshot;
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
use tokio_rustls::TlsAcceptor;

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
    #[error("cannot handle a signal (SIGHUP, SIGUSR1)")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Handover(#[from] handover::HandoverError),
    #[error("cannot join the fleet: {0}")]
    Fleet(String),
}

/// A running banyan: proxy and admin listeners, the live snapshot and its reloader.
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The HTTPS listener's address, when there is one.
    pub tls_addr: Option<SocketAddr>,
    pub snapshot: SharedSnapshot,
    pub reloader: Arc<Reloader>,
    shutdown: watch::Sender<bool>,
    /// Listener tasks: they end on shutdown, after draining.
    tasks: Vec<JoinHandle<()>>,
    /// Reload triggers: stopped on shutdown.
    _triggers: Triggers,
    /// Duplicates of the listening sockets, for an upgrade to take.
    handover: Vec<(&'static str, std::os::fd::OwnedFd)>,
    /// Where `banyan run --upgrade` takes the sockets over, once offered.
    offer: Option<Offer>,
}

/// Background tasks that act on the running config: reload triggers, the ramps' loop.
#[derive(Default)]
struct Triggers {
    file: Option<FileWatch>,
    signal: Option<JoinHandle<()>>,
    ramps: Option<JoinHandle<()>>,
    reopen_log: Option<JoinHandle<()>>,
}

impl Drop for Triggers {
    fn drop(&mut self) {
        for t in [&self.signal, &self.ramps, &self.reopen_log]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
    }
}

/// Bind the listeners and start serving `config`, which came from no file.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    start_with(config, None, Inherited::default()).await
}

/// Bind the listeners and start serving `config`. With the file it came from, changes
/// to the file and SIGHUP reload it.
pub async fn start_with_file(
    config: Config,
    path: Option<PathBuf>,
) -> Result<Running, ServerError> {
    start_with(config, path, Inherited::default()).await
}

/// Start serving `config` on the `inherited` sockets (from systemd or an upgraded
/// banyan), binding those it does not provide.
pub async fn start_with(
    config: Config,
    path: Option<PathBuf>,
    mut inherited: Inherited,
) -> Result<Running, ServerError> {
    let server = config.server.clone();
    let proxy_listener = listen(&mut inherited, Role::Proxy, server.listen).await?;
    let admin_listener = listen(&mut inherited, Role::Admin, config.admin.listen).await?;
    let tls_listener = match &server.tls {
        Some(tls) => Some(listen(&mut inherited, Role::Tls, tls.listen).await?),
        None => None,
    };
    for name in inherited.leftover() {
        tracing::warn!(socket = %name, "an inherited socket matches no listener of the config; closed");
    }
    let mut handover = Vec::new();
    if server.upgrade_socket.is_some() {
        handover.push((Role::Proxy.name(), dup(&proxy_listener)?));
        handover.push((Role::Admin.name(), dup(&admin_listener)?));
        if let Some(l) = &tls_listener {
            handover.push((Role::Tls.name(), dup(l)?));
        }
    }
    let proxy_addr = local_addr(&proxy_listener, server.listen);
    let admin_addr = local_addr(&admin_listener, config.admin.listen);
    let tls_addr = tls_listener.as_ref().map(|l| local_addr(l, server.listen));
    // The fleet's settings are those the instance started with: [fleet] moves on restart.
    let fleet = match config.fleet.clone() {
        Some(settings) => Some(
            crate::fleet::Fleet::new(settings).map_err(|e| ServerError::Fleet(e.to_string()))?,
        ),
        None => None,
    };
    let fleet_mode = fleet.is_some();
    let first = match &fleet {
        Some(fleet) => {
            let retention = crate::store::Retention {
                samples: config.shadow.retention_samples,
                age: config.shadow.retention_age,
            };
            let store = crate::fleet::diffs::store(fleet, retention)
                .map_err(|e| ServerError::Fleet(e.to_string()))?;
            Snapshot::first_in_fleet(config, Arc::new(store))
        }
        None => Snapshot::build(config, None),
    };
    let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(first));
    let reloader = Arc::new(Reloader::new(snapshot.clone(), path.clone()));
    if let Some(fleet) = &fleet {
        crate::fleet::start(fleet, reloader.clone());
    }
    let (shutdown, watch_rx) = watch::channel(false);
    // One cap for the proxy and HTTPS listeners together.
    let slots = Arc::new(slots::Slots::default());
    let mut tasks = vec![
        tokio::spawn(serve_proxy(
            proxy_listener,
            snapshot.clone(),
            None,
            slots.clone(),
            watch_rx.clone(),
        )),
        tokio::spawn(crate::admin::serve(
            admin_listener,
            admin_connections(),
            reloader.clone(),
            fleet,
            watch_rx.clone(),
        )),
    ];
    if let Some(listener) = tls_listener {
        let tls = crate::tls::server::server_config(SnapshotCerts(snapshot.clone()));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        tasks.push(tokio::spawn(serve_proxy(
            listener,
            snapshot.clone(),
            Some(acceptor),
            slots,
            watch_rx,
        )));
    }
    let mut triggers = Triggers::default();
    // In a fleet, the fleet's leader judges the ramps on the fleet's figures; alone, each
    // instance judges its own.
    if !fleet_mode {
        triggers.ramps = Some(tokio::spawn(crate::migration::control::run(
            snapshot.clone(),
        )));
    }
    if path.is_some() {
        triggers.file = crate::reload::watch::watch_file(reloader.clone())
            .map_err(|e| ServerError::Watch(e.to_string()))?;
    }
    // Without a file too: SIGHUP's default action would end the process, and operators
    // send it to any banyan to reload (one without a file says there is nothing to read).
    triggers.signal =
        Some(crate::reload::watch::on_sighup(reloader.clone()).map_err(ServerError::Signal)?);
    triggers.reopen_log = Some(reopen_access_log_on_sigusr1(snapshot.clone())?);
    tracing::info!(addr = %proxy_addr, "proxy listening");
    if let Some(addr) = tls_addr {
        tracing::info!(addr = %addr, "https listening");
    }
    tracing::info!(addr = %admin_addr, "admin listening");
    Ok(Running {
        proxy_addr,
        admin_addr,
        tls_addr,
        snapshot,
        reloader,
        shutdown,
        tasks,
        _triggers: triggers,
        handover,
        offer: None,
    })
}

impl Running {
    /// Hand the listening sockets to `banyan run --upgrade` at `server.upgrade_socket`
    /// (when set). An upgrading process calls it only once its predecessor has let go,
    /// so a failed upgrade leaves the running banyan's socket in place.
    pub fn offer_upgrades(&mut self) -> Result<(), ServerError> {
        let Some(socket) = self.snapshot.load().config.server.upgrade_socket.clone() else {
            return Ok(());
        };
        let sockets = std::mem::take(&mut self.handover);
        self.offer = Some(Offer::serve(&socket, sockets)?);
        Ok(())
    }

    /// Resolves when an upgraded banyan has taken the sockets over: time to retire.
    pub async fn upgraded(&self) {
        match &self.offer {
            Some(offer) => offer.retire.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Stop accepting, let in-flight requests finish (up to the drain period), return.
    pub async fn shutdown(self) {
        if let Some(offer) = &self.offer {
            offer.remove();
        }
        self.drain().await;
    }

    /// Shut down after an upgrade: the same, but the upgrade socket is the new
    /// process's now.
    pub async fn retire(self) {
        self.drain().await;
    }

    async fn drain(self) {
        crate::migration::control::flush(&self.snapshot.load()).await;
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// SIGUSR1 reopens the access log file, after logrotate has moved it (nginx's USR1).
fn reopen_access_log_on_sigusr1(snapshot: SharedSnapshot) -> Result<JoinHandle<()>, ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(ServerError::Signal)?;
    Ok(tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            if let Some(log) = &snapshot.load().access_log {
                tracing::info!("SIGUSR1: reopening the access log");
                log.reopen();
            }
        }
    }))
}

/// The certificates of the running snapshot, for the TLS listener.
struct SnapshotCerts(SharedSnapshot);

impl crate::tls::server::CurrentCerts for SnapshotCerts {
    fn current(&self) -> Option<Arc<crate::tls::server::CertSet>> {
        self.0.load().certs.clone()
    }
}

/// A duplicate of a listening socket, to hand over.
fn dup(listener: &TcpListener) -> Result<std::os::fd::OwnedFd, ServerError> {
    use std::os::fd::AsFd;
    listener
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| ServerError::Handover(e.into()))
}

async fn listen(
    inherited: &mut Inherited,
    role: Role,
    addr: SocketAddr,
) -> Result<TcpListener, ServerError> {
    listeners::listen(inherited, role, addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}

/// The connection builder of the admin listener (the proxy's carries its own limits).
fn admin_connections() -> auto::Builder<TokioExecutor> {
    conn::builder(&crate::inbound::Limits::default())
}

/// Accept connections until told to stop, then drain: every connection finishes what
/// it has in flight (up to the drain period) and closes.
async fn serve_proxy(
    listener: TcpListener,
    snapshot: SharedSnapshot,
    tls: Option<TlsAcceptor>,
    slots: Arc<slots::Slots>,
    mut stop: watch::Receiver<bool>,
) {
    let (drain_tx, drain_rx) = watch::channel(false);
    let shared = Arc::new(conn::Shared {
        snapshot,
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
                let max = shared.snapshot.load().config.server.max_connections;
                let Some(slot) = slots.acquire(max) else {
                    tracing::debug!(client = %addr, max, "max_connections open: closing a new connection");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (shared, alive, tls) = (shared.clone(), alive.clone(), tls.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tls {
                        None => {
                            let client = Client { addr, scheme: "http" };
                            conn::serve(shared, stream, client, true).await;
                        }
                        Some(acceptor) => serve_tls(shared, acceptor, stream, addr).await,
                    }
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
    let drain_period = shared.snapshot.load().config.server.drain_period;
    let _ = tokio::time::timeout(drain_period + Duration::from_secs(1), all_closed.recv()).await;
}

/// Complete the TLS handshake (within the header timeout: a client that stalls it
/// holds a connection like a slow-header one), then serve what ALPN agreed on.
async fn serve_tls(
    shared: Arc<conn::Shared>,
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
) {
    let handshake = tokio::time::timeout(shared.limits().header_timeout, acceptor.accept(stream));
    let tls = match handshake.await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, client = %addr, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(client = %addr, "TLS handshake timed out");
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let client = Client {
        addr,
        scheme: "https",
    };
    conn::serve(shared, tls, client, !h2).await;
}
