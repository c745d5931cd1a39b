//! Where the admin API reads diffs and shadow figures: this instance's SQLite file and
//! live figures when it runs alone; the fleet's PostgreSQL in a fleet, so any instance
//! shows the whole fleet's samples, match rates and verdicts. When PostgreSQL is away,
//! figures fall back to this instance's own (and say so); samples are not served.

use super::views::Scope;
use crate::fleet::Fleet;
use crate::shadow::stats::{self, Tally};
use crate::snapshot::Snapshot;
use crate::store::query::{self, Group, SampleSummary};
use crate::store::Location;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a store's samples are read.
pub enum DiffSource {
    File(PathBuf),
    Fleet(Arc<Fleet>),
}

/// Why samples cannot be read: no store is needed, or it could not be opened.
pub enum NoSource {
    NoShadow,
    Unavailable(String),
}

impl DiffSource {
    pub fn of(snap: &Snapshot, fleet: Option<&Arc<Fleet>>) -> Result<DiffSource, NoSource> {
        match (snap.shadow.store.as_ref().map(|s| s.location()), fleet) {
            (Some(Location::Fleet), Some(fleet)) => Ok(DiffSource::Fleet(fleet.clone())),
            (Some(Location::File(path)), _) => Ok(DiffSource::File(path.clone())),
            _ => match &snap.store_error {
                Some(why) => Err(NoSource::Unavailable(why.clone())),
                None => Err(NoSource::NoShadow),
            },
        }
    }

    /// Groups, newest first, `limit` from `offset`; and whether more follow.
    pub async fn groups(
        &self,
        route: Option<String>,
        since: Option<f64>,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Group>, bool), String> {
        match self {
            DiffSource::File(path) => {
                let path = path.clone();
                blocking(move || query::groups(&path, route.as_deref(), since, limit, offset)).await
            }
            DiffSource::Fleet(fleet) => fleet
                .diff_groups(route.as_deref(), since, limit, offset)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Samples of a group (or a route), newest first, older than `before` when given.
    pub async fn samples(
        &self,
        signature: String,
        route: Option<String>,
        since: Option<f64>,
        limit: usize,
        before: Option<i64>,
    ) -> Result<(Vec<SampleSummary>, Option<i64>), String> {
        match self {
            DiffSource::File(path) => {
                let path = path.clone();
                blocking(move || {
                    query::samples(
                        &path,
                        Some(&signature),
                        route.as_deref(),
                        since,
                        limit,
                        before,
                    )
                })
                .await
            }
            DiffSource::Fleet(fleet) => fleet
                .diff_samples(Some(&signature), route.as_deref(), since, limit, before)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub async fn sample(&self, id: i64) -> Result<Option<Value>, String> {
        match self {
            DiffSource::File(path) => {
                let path = path.clone();
                blocking(move || query::sample(&path, id)).await
            }
            DiffSource::Fleet(fleet) => fleet.diff_sample(id).await.map_err(|e| e.to_string()),
        }
    }

    /// Forget the samples of a route (of all, for None); how many.
    pub async fn clear(&self, route: Option<String>) -> Result<u64, String> {
        match self {
            DiffSource::File(path) => {
                let path = path.clone();
                blocking(move || query::clear(&path, route.as_deref()).map(|n| n as u64)).await
            }
            DiffSource::Fleet(fleet) => fleet
                .clear_diffs(route.as_deref())
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Every shadowed route's tally, and whose traffic it covers.
pub async fn tallies(fleet: Option<&Arc<Fleet>>) -> (Vec<(String, Tally)>, Scope) {
    let Some(fleet) = fleet else {
        return (stats::local_tallies(), Scope::Instance);
    };
    match fleet.shadow_tallies().await {
        // As of each instance's last flush: a heartbeat old at most.
        Ok(sums) => (sums, Scope::Fleet),
        Err(e) => {
            tracing::debug!(error = %e, "fleet figures unreadable; showing this instance's");
            (stats::local_tallies(), Scope::InstanceFleetUnreachable)
        }
    }
}
