//! The loop that drives every ramp: at each ramp's interval, read what happened since
//! its step began, let the gates decide, move, log, count and save.

use super::ramp::Figures;
use super::state::{Counts, Event, RampState};
use crate::ids::RouteId;
use crate::metrics;
use crate::snapshot::SharedSnapshot;
use crate::snapshot::Snapshot;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the loop looks for a ramp that is due.
const TICK: Duration = Duration::from_millis(100);

/// Run until the task is dropped.
pub async fn run(shared: SharedSnapshot) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snap = shared.load_full();
        let now = Instant::now();
        for (route, state) in snap.ramps() {
            if !state.due(now) {
                continue;
            }
            let counts = counts(&snap, route);
            let figures = state.figures(&counts);
            if let Some(event) = state.evaluate(&figures, counts) {
                moved(&snap, state, &event, &figures);
            }
        }
    }
}

/// Count, log and save a move.
pub fn moved(snap: &Snapshot, state: &RampState, event: &Event, figures: &Figures) {
    announce(state, event, figures);
    save(snap, state);
}

/// Count and log a move (in a fleet, once PostgreSQL took it: a move that lost the race
/// to another instance's never happened).
pub fn announce(state: &RampState, event: &Event, figures: &Figures) {
    metrics::migration_move(&state.route, &event.kind);
    tracing::warn!(
        route = %state.route,
        kind = %event.kind,
        from = event.from_percent,
        to = event.to_percent,
        reason = %event.reason,
        new_requests = figures.new_requests,
        compared = figures.compared,
        "migration ramp moved"
    );
}

/// Save a ramp's state to the embedded store, off the async workers. Saves are
/// serialised and read the state when they run, so two moves in quick succession cannot
/// land out of order.
pub fn save(snap: &Snapshot, state: &RampState) {
    let path = snap.config.shadow.store.clone();
    let state = state.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn_blocking(move || write(&path, &state))),
        Err(_) => write(&path, &state),
    }
}

/// Save every ramp now and wait for it: at shutdown, so no move made just before is lost.
pub async fn flush(snap: &Snapshot) {
    let path = snap.config.shadow.store.clone();
    let states: Vec<RampState> = snap.ramps().map(|(_, s)| s.clone()).collect();
    if states.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for state in &states {
            write(&path, state);
        }
    })
    .await;
}

/// One save at a time, reading the state under the lock: the last to write has read the
/// latest state.
fn write(path: &Path, state: &RampState) {
    static SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SAVING.lock().unwrap_or_else(|e| e.into_inner());
    let saved = state.saved();
    let (route, fingerprint) = (&state.route, &state.fingerprint);
    if let Err(e) = crate::store::ramp_store::save(path, route, fingerprint, &saved) {
        tracing::error!(error = %e, route, "cannot save the migration state; it holds in memory");
    }
}

/// What a route has seen so far.
pub fn counts(snap: &Snapshot, route: RouteId) -> Counts {
    snap.migration_counts(route)
}
