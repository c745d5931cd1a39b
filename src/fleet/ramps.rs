//! One ramp for the fleet. Every instance flushes its per-route figures (cumulative, one
//! row per instance, so a restarted instance's last counts stay in the sums); the leader
//! judges each ramp on the fleet's sums and moves it; every instance takes the ramp's
//! state from PostgreSQL, so all stand at the same step and a keyed user lands on the
//! same side whichever instance serves them. A move made here by hand (pause, promote...)
//! is published the same way.

use super::db::FleetError;
use super::Fleet;
use crate::live::latency::LatencyCounts;
use crate::migration::state::{Counts, RampState, Saved};
use crate::snapshot::Snapshot;
use deadpool_postgres::Client;
use std::collections::HashMap;
use std::time::Instant;

/// The leader lock's key ("ramps" in ASCII).
pub const LEADER_LOCK: i64 = 0x72_61_6d_70_73;

fn to_sql(counts: &LatencyCounts) -> Vec<i64> {
    counts
        .buckets()
        .iter()
        .map(|n| i64::try_from(*n).unwrap_or(i64::MAX))
        .collect()
}

fn from_sql(values: Vec<i64>) -> LatencyCounts {
    LatencyCounts::from_buckets(values.into_iter().map(|n| n.max(0) as u64).collect())
}

/// Write this instance's cumulative figures of every ramped route.
pub async fn flush(fleet: &Fleet, snap: &Snapshot, client: &Client) -> Result<(), FleetError> {
    for (route, state) in snap.ramps() {
        let c = snap.migration_counts(route);
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let fields = serde_json::to_string(&c.fields).unwrap_or_else(|_| "{}".into());
        client
            .execute(
                "INSERT INTO banyan_figures (instance, route, new_requests, new_errors,
                    legacy_requests, legacy_errors, compared, matches, fields, new_latency,
                    legacy_latency, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())
                 ON CONFLICT (instance, route) DO UPDATE SET
                    new_requests = excluded.new_requests, new_errors = excluded.new_errors,
                    legacy_requests = excluded.legacy_requests,
                    legacy_errors = excluded.legacy_errors, compared = excluded.compared,
                    matches = excluded.matches, fields = excluded.fields,
                    new_latency = excluded.new_latency,
                    legacy_latency = excluded.legacy_latency, updated_at = now()",
                &[
                    &fleet.instance,
                    &state.route,
                    &n(c.new_requests),
                    &n(c.new_errors),
                    &n(c.legacy_requests),
                    &n(c.legacy_errors),
                    &n(c.compared),
                    &n(c.matches),
                    &fields,
                    &to_sql(&c.new_latency),
                    &to_sql(&c.legacy_latency),
                ],
            )
            .await?;
    }
    Ok(())
}

/// The fleet's cumulative figures of a route: the sum of every instance's.
pub async fn fleet_counts(client: &Client, route: &str) -> Result<Counts, FleetError> {
    let rows = client
        .query(
            "SELECT new_requests, new_errors, legacy_requests, legacy_errors, compared,
                    matches, fields, new_latency, legacy_latency
             FROM banyan_figures WHERE route = $1",
            &[&route],
        )
        .await?;
    let mut sum = Counts::default();
    for r in rows {
        let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
        sum.new_requests += n(0);
        sum.new_errors += n(1);
        sum.legacy_requests += n(2);
        sum.legacy_errors += n(3);
        sum.compared += n(4);
        sum.matches += n(5);
        let fields: HashMap<String, u64> =
            serde_json::from_str(&r.get::<_, String>(6)).unwrap_or_default();
        for (f, count) in fields {
            *sum.fields.entry(f).or_default() += count;
        }
        sum.new_latency = sum.new_latency.merged(&from_sql(r.get(7)));
        sum.legacy_latency = sum.legacy_latency.merged(&from_sql(r.get(8)));
    }
    Ok(sum)
}

/// Reconcile each ramp with the fleet: publish a move made here, else take the fleet's
/// state; then, on the leader, judge the due ramps on the fleet's figures.
pub async fn reconcile(
    fleet: &Fleet,
    snap: &Snapshot,
    client: &Client,
    leader: bool,
) -> Result<(), FleetError> {
    for (_, state) in snap.ramps() {
        if let Some(saved) = state.take_moved() {
            publish(fleet, client, state, &saved).await?;
        }
        match stored(client, state).await? {
            Some((saved, revision)) => {
                fleet.revisions().insert(key(state), revision);
                if saved != state.saved() {
                    let now = fleet_counts(client, &state.route).await?;
                    state.adopt(saved, now);
                }
            }
            // The fleet has no state for this ramp yet: this instance's (restored from its
            // store, or new at 0%) becomes the fleet's, and every instance takes it.
            None => {
                publish(fleet, client, state, &state.saved()).await?;
            }
        }
    }
    if !leader {
        return Ok(());
    }
    let now = Instant::now();
    for (_, state) in snap.ramps() {
        if !state.due(now) {
            continue;
        }
        let counts = fleet_counts(client, &state.route).await?;
        export(&state.route, &counts);
        let figures = state.figures(&counts);
        if let Some(event) = state.evaluate(&figures, counts) {
            // Announced only once the fleet took it: a leader that just lost its lock
            // loses the compare-and-set too, and its move never happened.
            let taken = match state.take_moved() {
                Some(saved) => publish(fleet, client, state, &saved).await?,
                None => false,
            };
            if taken {
                crate::migration::control::announce(state, &event, &figures);
            }
        }
    }
    Ok(())
}

/// The fleet's figures a ramp is judged on, for Prometheus (the leader's only: each
/// instance's own figures are in its per-instance metrics, which Prometheus sums).
fn export(route: &str, c: &Counts) {
    let family = &crate::metrics::metrics().fleet_ramp_figures;
    for (figure, value) in [
        ("new_requests", c.new_requests),
        ("new_errors", c.new_errors),
        ("legacy_requests", c.legacy_requests),
        ("legacy_errors", c.legacy_errors),
        ("compared", c.compared),
        ("matches", c.matches),
    ] {
        family
            .with_label_values(&[route, figure])
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }
}

fn key(state: &RampState) -> (String, String) {
    (state.route.clone(), state.fingerprint.clone())
}

/// The fleet's state of a ramp, and its revision.
async fn stored(client: &Client, state: &RampState) -> Result<Option<(Saved, i64)>, FleetError> {
    let row = client
        .query_opt(
            "SELECT saved, revision FROM banyan_ramps WHERE route = $1 AND fingerprint = $2",
            &[&state.route, &state.fingerprint],
        )
        .await?;
    Ok(row.and_then(|r| {
        let saved = serde_json::from_str(&r.get::<_, String>(0)).ok()?;
        Some((saved, r.get(1)))
    }))
}

/// Write a ramp's state over the revision this instance last saw, and only over it: two
/// instances that moved the same ramp at once (a leader handing over, a call by hand
/// meeting a gate's move) cannot both win; the one that loses takes the other's state at
/// its next reconcile. True when this instance's state was written.
async fn publish(
    fleet: &Fleet,
    client: &Client,
    state: &RampState,
    saved: &Saved,
) -> Result<bool, FleetError> {
    let text = serde_json::to_string(saved).unwrap_or_default();
    let seen = fleet.revisions().get(&key(state)).copied();
    let written =
        match seen {
            Some(revision) => client
                .query_opt(
                    "UPDATE banyan_ramps SET saved = $3, revision = revision + 1, instance = $4,
                    updated_at = now()
                 WHERE route = $1 AND fingerprint = $2 AND revision = $5
                 RETURNING revision",
                    &[
                        &state.route,
                        &state.fingerprint,
                        &text,
                        &fleet.instance,
                        &revision,
                    ],
                )
                .await?,
            None => {
                client
                    .query_opt(
                        "INSERT INTO banyan_ramps (route, fingerprint, saved, revision, instance)
                 VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (route, fingerprint) DO NOTHING
                 RETURNING revision",
                        &[&state.route, &state.fingerprint, &text, &fleet.instance],
                    )
                    .await?
            }
        };
    match written {
        Some(row) => {
            fleet.revisions().insert(key(state), row.get(0));
            tracing::info!(route = %state.route, step = ?saved.step, paused = saved.paused, "fleet: ramp state published");
            Ok(true)
        }
        None => {
            tracing::warn!(route = %state.route, "fleet: another instance moved the ramp first; taking its state");
            Ok(false)
        }
    }
}
