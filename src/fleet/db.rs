//! The connections to the fleet's PostgreSQL: a small pool for queries, and one
//! connection of its own for LISTEN. TLS, when the URL asks for it (`sslmode=require`), is
//! rustls, and the server's certificate is verified against the system's roots.

use crate::config::Secret;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a query waits for a connection, and a connection for PostgreSQL: short, so
/// that a PostgreSQL away costs the loop a moment, never the request path (which never
/// waits on it at all).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("[fleet] has no PostgreSQL URL (a dry run that did not read postgres_file)")]
    Missing,
    #[error("the PostgreSQL URL is not valid: {0}")]
    Url(tokio_postgres::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("PostgreSQL pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
}

fn tls() -> MakeRustlsConnect {
    MakeRustlsConnect::new(crate::tls::client::system())
}

fn pg_config(url: &Secret) -> Result<tokio_postgres::Config, FleetError> {
    let mut config = tokio_postgres::Config::from_str(&url.0).map_err(FleetError::Url)?;
    // TLS when the URL asks for it (`sslmode=require`), and then verified: tokio-postgres'
    // default ("prefer") would try TLS with any server that offers it and fail on a
    // certificate no root signs, where libpq would not verify at all.
    if !url.0.contains("sslmode") {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name("banyan");
    Ok(config)
}

/// A pool of up to 4 connections; it connects lazily, so it builds without PostgreSQL.
pub fn pool(url: &Secret) -> Result<Pool, FleetError> {
    let manager = Manager::from_config(
        pg_config(url)?,
        tls(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(4)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(CONNECT_TIMEOUT))
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .build()?)
}

/// Hold the fleet's leader lock (a session advisory lock) on a connection of its own for
/// as long as that connection lives; `leader` says whether this instance holds it. One
/// instance leads at a time; when its process or connection dies, PostgreSQL releases
/// the lock and another instance takes it at its next try.
pub async fn lead(
    url: &Secret,
    key: i64,
    every: Duration,
    leader: &std::sync::atomic::AtomicBool,
) -> Result<(), FleetError> {
    use std::sync::atomic::Ordering;
    let (client, connection) = pg_config(url)?.connect(tls()).await?;
    let driver = tokio::spawn(connection);
    let result = async {
        loop {
            if leader.load(Ordering::SeqCst) {
                // Still holding it: the connection is alive.
                client.simple_query("SELECT 1").await?;
            } else {
                let row = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                    .await?;
                leader.store(row.get(0), Ordering::SeqCst);
            }
            tokio::time::sleep(every).await;
        }
    }
    .await;
    leader.store(false, std::sync::atomic::Ordering::SeqCst);
    driver.abort();
    result
}

/// LISTEN on `channel` on a connection of its own, and send `()` on `wake` for each
/// notification. Returns when the connection ends (the caller connects again).
pub async fn listen(
    url: &Secret,
    channel: &str,
    wake: &tokio::sync::mpsc::Sender<()>,
) -> Result<(), FleetError> {
    let (client, mut connection) = pg_config(url)?.connect(tls()).await?;
    let (messages, mut received) = tokio::sync::mpsc::unbounded_channel();
    // The connection's messages are read by one task; the client issues LISTEN meanwhile.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(message)) => {
                    if messages.send(message).is_err() {
                        return;
                    }
                }
                Some(Err(_)) | None => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    while let Some(message) = received.recv().await {
        if let AsyncMessage::Notification(_) = message {
            let _ = wake.try_send(());
        }
    }
    driver.abort();
    Ok(())
}
