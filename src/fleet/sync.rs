//! The fleet loop of one instance: migrate once, publish what was applied here, adopt
//! the newest version published elsewhere, send the heartbeat. Woken by NOTIFY, and by
//! a tick in any case (the fallback when the LISTEN connection is down).

use super::{db, figures, ramps, schema, Fleet, CONFIG_CHANNEL};
use crate::config::Secret;
use crate::reload::history::Origin;
use crate::reload::Reloader;
use db::FleetError;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// The poll when no notification comes.
const POLL: Duration = Duration::from_secs(1);
/// The wait before connecting the LISTEN connection again.
const RELISTEN: Duration = Duration::from_secs(1);

pub(super) async fn run(fleet: Arc<Fleet>, reloader: Arc<Reloader>, url: Secret) {
    let (wake_tx, mut wake) = mpsc::channel(1);
    {
        let (fleet, url) = (fleet.clone(), url.clone());
        tokio::spawn(async move {
            loop {
                let every = fleet.settings.heartbeat;
                if let Err(e) = db::lead(&url, ramps::LEADER_LOCK, every, &fleet.leader).await {
                    tracing::debug!(error = %e, "fleet: leader connection lost");
                }
                tokio::time::sleep(RELISTEN).await;
            }
        });
    }
    tokio::spawn(async move {
        loop {
            if let Err(e) = db::listen(&url, CONFIG_CHANNEL, &wake_tx).await {
                tracing::debug!(error = %e, "fleet: LISTEN connection lost");
            }
            tokio::time::sleep(RELISTEN).await;
        }
    });
    let mut tick = tokio::time::interval(fleet.settings.heartbeat.min(POLL));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = SystemTime::now();
    let mut migrated = false;
    let mut last_heartbeat: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.recv() => {}
        }
        let heartbeat_due = last_heartbeat.is_none_or(|t| t.elapsed() >= fleet.settings.heartbeat);
        let result = step(&fleet, &reloader, &mut migrated, heartbeat_due, started).await;
        if result.is_ok() && heartbeat_due {
            last_heartbeat = Some(Instant::now());
        }
        record(&fleet, result);
    }
}

/// Keep the link's state, and log only its changes (a PostgreSQL away for an hour is one
/// warning, not 3,600).
fn record(fleet: &Fleet, result: Result<(), FleetError>) {
    let m = crate::metrics::metrics();
    m.fleet_connected.set(i64::from(result.is_ok()));
    m.fleet_leader.set(i64::from(fleet.is_leader()));
    let mut state = fleet.lock();
    if let Some(v) = state.config_version {
        m.fleet_config_version.set(v);
    }
    match result {
        Ok(()) => {
            if !state.connected {
                tracing::info!(instance = %fleet.instance, "fleet: PostgreSQL reached");
            }
            state.connected = true;
            state.last_error = None;
        }
        Err(e) => {
            let message = e.to_string();
            if state.connected || state.last_error.as_deref() != Some(&message) {
                tracing::warn!(instance = %fleet.instance, error = %message, "fleet: PostgreSQL unreachable; serving on the last config");
            }
            state.connected = false;
            state.last_error = Some(message);
        }
    }
}

async fn step(
    fleet: &Fleet,
    reloader: &Arc<Reloader>,
    migrated: &mut bool,
    heartbeat_due: bool,
    started: SystemTime,
) -> Result<(), FleetError> {
    let mut client = fleet.pool.get().await?;
    if !*migrated {
        let applied = schema::migrate(&mut client).await?;
        if !applied.is_empty() {
            tracing::info!(steps = ?applied, "fleet: schema migrated");
        }
        *migrated = true;
    }
    publish_local(fleet, reloader, &mut client).await?;
    adopt_newest(fleet, reloader, &client).await?;
    let snap = reloader.snapshot().load_full();
    if heartbeat_due {
        ramps::flush(fleet, &snap, &client).await?;
        figures::flush(fleet, &client).await?;
        heartbeat(fleet, reloader, &client, started).await?;
    }
    ramps::reconcile(fleet, &snap, &client, fleet.is_leader()).await?;
    Ok(())
}

/// Publish the config applied here (file, SIGHUP, API) as the fleet's newest version. At
/// start, the instance's own config is published only into an empty fleet: an instance
/// that restarts does not undo the fleet's later changes.
async fn publish_local(
    fleet: &Fleet,
    reloader: &Reloader,
    client: &mut deadpool_postgres::Client,
) -> Result<(), FleetError> {
    let (Some(current), _, _) = reloader.status() else {
        return Ok(());
    };
    if current.number <= fleet.lock().published_local {
        return Ok(());
    }
    if current.source == Origin::Fleet {
        fleet.lock().published_local = current.number;
        return Ok(());
    }
    let tx = client.transaction().await?;
    if current.source == Origin::Startup {
        let any = tx
            .query_opt("SELECT 1 FROM banyan_config_versions LIMIT 1", &[])
            .await?;
        if any.is_some() {
            tx.commit().await?;
            fleet.lock().published_local = current.number;
            return Ok(());
        }
    }
    let row = tx
        .query_one(
            "INSERT INTO banyan_config_versions (hash, body, origin, instance)
             VALUES ($1, $2, $3, $4) RETURNING number",
            &[
                &current.hash,
                &&*current.text,
                &current.source.label(),
                &fleet.instance,
            ],
        )
        .await?;
    let number: i64 = row.get(0);
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CONFIG_CHANNEL, &number.to_string()],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        version = number,
        local = current.number,
        source = current.source.label(),
        "fleet: config published"
    );
    let mut state = fleet.lock();
    state.published_local = current.number;
    state.config_version = Some(number);
    state.seen_version = Some(number);
    state.config_error = None;
    Ok(())
}

/// Apply the fleet's newest version when it is not the one running here. A version that
/// does not apply here (a certificate missing on this host) is reported, not retried,
/// and the running config keeps serving.
async fn adopt_newest(
    fleet: &Fleet,
    reloader: &Arc<Reloader>,
    client: &deadpool_postgres::Client,
) -> Result<(), FleetError> {
    let Some(row) = client
        .query_opt(
            "SELECT number, hash, body FROM banyan_config_versions ORDER BY number DESC LIMIT 1",
            &[],
        )
        .await?
    else {
        return Ok(());
    };
    let (number, hash, body): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
    {
        let state = fleet.lock();
        if state.seen_version == Some(number) || state.config_version == Some(number) {
            return Ok(());
        }
    }
    let running = reloader.status().0.map(|v| v.hash);
    if running.as_deref() == Some(hash.as_str()) {
        let mut state = fleet.lock();
        state.config_version = Some(number);
        state.seen_version = Some(number);
        state.config_error = None;
        return Ok(());
    }
    let apply = {
        let reloader = reloader.clone();
        let name = format!("fleet version {number}");
        tokio::task::spawn_blocking(move || reloader.apply(&body, &name, Origin::Fleet))
    };
    let outcome = apply.await;
    let mut state = fleet.lock();
    match outcome {
        Ok(Ok(applied)) => {
            tracing::info!(
                version = number,
                local = applied.version,
                "fleet: config applied"
            );
            state.published_local = state.published_local.max(applied.version);
            state.config_version = Some(number);
            state.seen_version = Some(number);
            state.config_error = None;
        }
        Ok(Err(rejection)) => {
            // Seen: the next version is tried, this one not again; the instance still
            // runs (and reports) the version it had.
            state.seen_version = Some(number);
            state.config_error = Some(format!("version {number}: {}", rejection.error));
        }
        Err(e) => state.config_error = Some(format!("version {number}: {e}")),
    }
    Ok(())
}

async fn heartbeat(
    fleet: &Fleet,
    reloader: &Reloader,
    client: &deadpool_postgres::Client,
    started: SystemTime,
) -> Result<(), FleetError> {
    let state = fleet.state();
    let hash = reloader.status().0.map(|v| v.hash);
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    // The step each ramp stands at here: the fleet view shows an instance that lags.
    let ramps: std::collections::BTreeMap<String, f64> = reloader
        .snapshot()
        .load()
        .ramps()
        .map(|(_, r)| (r.route.clone(), r.percent()))
        .collect();
    let ramps = serde_json::to_string(&ramps).unwrap_or_else(|_| "{}".into());
    client
        .execute(
            "INSERT INTO banyan_instances
                (instance, pid, started_at, heartbeat_at, config_version, config_hash, config_error, leader, ramps)
             VALUES ($1, $2, $3, now(), $4, $5, $6, $7, $8)
             ON CONFLICT (instance) DO UPDATE SET
                pid = excluded.pid, started_at = excluded.started_at, heartbeat_at = now(),
                config_version = excluded.config_version, config_hash = excluded.config_hash,
                config_error = excluded.config_error, leader = excluded.leader,
                ramps = excluded.ramps",
            &[
                &fleet.instance,
                &pid,
                &started,
                &state.config_version,
                &hash,
                &state.config_error,
                &fleet.is_leader(),
                &ramps,
            ],
        )
        .await?;
    Ok(())
}
