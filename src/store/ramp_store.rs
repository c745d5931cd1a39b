//! Where the ramps' states survive a restart: one row per route in the diff store's
//! SQLite file, with the fingerprint of the migration it belongs to (a changed ramp
//! starts over).

use crate::migration::state::Saved;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS migration_state (
    route TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL
);";

#[derive(Debug, thiserror::Error)]
pub enum MigrationStoreError {
    #[error("the store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the saved state: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot create the store's directory: {0}")]
    Dir(#[from] std::io::Error),
}

fn open(path: &Path) -> Result<Connection, MigrationStoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

pub fn save(
    path: &Path,
    route: &str,
    fingerprint: &str,
    saved: &Saved,
) -> Result<(), MigrationStoreError> {
    let conn = open(path)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    conn.execute(
        "INSERT INTO migration_state (route, fingerprint, state, updated) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(route) DO UPDATE SET fingerprint = ?2, state = ?3, updated = ?4",
        params![route, fingerprint, serde_json::to_string(saved)?, now],
    )?;
    Ok(())
}

/// The saved state of `route`, if it was saved for the same migration.
pub fn load(
    path: &Path,
    route: &str,
    fingerprint: &str,
) -> Result<Option<Saved>, MigrationStoreError> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = open(path)?;
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT fingerprint, state FROM migration_state WHERE route = ?1",
            params![route],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        Some((f, state)) if f == fingerprint => Ok(Some(serde_json::from_str(&state)?)),
        _ => Ok(None),
    }
}

/// The state saved for a route, when its fingerprint matches; None (with the error
/// logged) when the store cannot be read: the ramp then starts at 0%.
pub fn restore(store: &Path, route: &str, fingerprint: &str) -> Option<Saved> {
    match load(store, route, fingerprint) {
        Ok(saved) => saved,
        Err(e) => {
            tracing::error!(error = %e, route, "cannot read the saved migration state; the ramp starts at 0%");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::state::Event;

    #[test]
    fn saved_states_come_back_for_the_same_migration_only() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.sqlite");
        assert_eq!(load(&path, "r", "f1").expect("load"), None);
        let mut saved = Saved {
            step: Some(2),
            paused: true,
            ..Saved::default()
        };
        saved.events.push_back(Event {
            at: 1.0,
            kind: "advance".into(),
            from_percent: 5.0,
            to_percent: 25.0,
            reason: "gates held".into(),
        });
        save(&path, "r", "f1", &saved).expect("save");
        assert_eq!(load(&path, "r", "f1").expect("load"), Some(saved));
        assert_eq!(load(&path, "r", "f2").expect("load"), None);
    }
}
