//! Reading the diff store for the admin API, on connections of their own (SQLite in WAL
//! mode lets them read while the writer writes).

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A group of samples with the same signature.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub signature: String,
    pub route: String,
    /// [[field, kind], ...]
    pub fields: Value,
    pub count: i64,
    pub first_seen: f64,
    pub last_seen: f64,
    /// The newest sample of the group.
    pub example_id: Option<i64>,
}

/// A sample in a list.
#[derive(Debug, Clone, Serialize)]
pub struct SampleSummary {
    pub id: i64,
    pub at: f64,
    pub route: String,
    pub signature: String,
    pub method: String,
    pub path: String,
    pub primary_status: i64,
    pub shadow_status: i64,
}

fn open(path: &Path, write: bool) -> rusqlite::Result<Connection> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    };
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(2))?;
    Ok(conn)
}

/// Groups, newest first, `limit` from `offset`; and whether more follow.
pub fn groups(
    path: &Path,
    route: Option<&str>,
    since: Option<f64>,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<(Vec<Group>, bool)> {
    let conn = open(path, false)?;
    let mut stmt = conn.prepare(
        "SELECT g.signature, g.route, g.fields, g.count, g.first_seen, g.last_seen,
                (SELECT max(id) FROM diff_samples s WHERE s.signature = g.signature)
         FROM diff_groups g
         WHERE (?1 IS NULL OR g.route = ?1) AND (?2 IS NULL OR g.last_seen >= ?2)
         ORDER BY g.last_seen DESC, g.signature LIMIT ?3 OFFSET ?4",
    )?;
    let rows = stmt.query_map(
        params![route, since, (limit + 1) as i64, offset as i64],
        |r| {
            Ok(Group {
                signature: r.get(0)?,
                route: r.get(1)?,
                fields: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or(Value::Null),
                count: r.get(3)?,
                first_seen: r.get(4)?,
                last_seen: r.get(5)?,
                example_id: r.get(6)?,
            })
        },
    )?;
    let mut out: Vec<Group> = rows.collect::<rusqlite::Result<_>>()?;
    let more = out.len() > limit;
    out.truncate(limit);
    Ok((out, more))
}

/// Samples of a group (or of a route), newest first, older than `before` when given.
pub fn samples(
    path: &Path,
    signature: Option<&str>,
    route: Option<&str>,
    since: Option<f64>,
    limit: usize,
    before: Option<i64>,
) -> rusqlite::Result<(Vec<SampleSummary>, Option<i64>)> {
    let conn = open(path, false)?;
    let mut stmt = conn.prepare(
        "SELECT id, at, route, signature, request, primary_response, shadow_response FROM diff_samples
         WHERE (?1 IS NULL OR signature = ?1) AND (?2 IS NULL OR route = ?2)
           AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR id < ?4)
         ORDER BY id DESC LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![signature, route, since, before, (limit + 1) as i64],
        |r| {
            let request: Value =
                serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or(Value::Null);
            let status = |s: String| {
                serde_json::from_str::<Value>(&s)
                    .ok()
                    .and_then(|v| v["status"].as_i64())
                    .unwrap_or(0)
            };
            Ok(SampleSummary {
                id: r.get(0)?,
                at: r.get(1)?,
                route: r.get(2)?,
                signature: r.get(3)?,
                method: request["method"].as_str().unwrap_or("").to_string(),
                path: request["path"].as_str().unwrap_or("").to_string(),
                primary_status: status(r.get(5)?),
                shadow_status: status(r.get(6)?),
            })
        },
    )?;
    let mut out: Vec<SampleSummary> = rows.collect::<rusqlite::Result<_>>()?;
    let next = (out.len() > limit).then(|| out[limit - 1].id);
    out.truncate(limit);
    Ok((out, next))
}

/// One sample, whole.
pub fn sample(path: &Path, id: i64) -> rusqlite::Result<Option<Value>> {
    let conn = open(path, false)?;
    conn.query_row(
        "SELECT id, at, route, signature, request, primary_response, shadow_response, differences, primary_ms, shadow_ms
         FROM diff_samples WHERE id = ?1",
        params![id],
        |r| {
            let json = |i: usize| -> rusqlite::Result<Value> {
                Ok(serde_json::from_str(&r.get::<_, String>(i)?).unwrap_or(Value::Null))
            };
            Ok(serde_json::json!({
                "id": r.get::<_, i64>(0)?,
                "at": r.get::<_, f64>(1)?,
                "route": r.get::<_, String>(2)?,
                "signature": r.get::<_, String>(3)?,
                "request": json(4)?,
                "primary": json(5)?,
                "shadow": json(6)?,
                "differences": json(7)?,
                "primary_ms": r.get::<_, f64>(8)?,
                "shadow_ms": r.get::<_, f64>(9)?,
            }))
        },
    )
    .optional()
}

/// Delete the samples and groups of a route (of all routes when None); how many samples.
pub fn clear(path: &Path, route: Option<&str>) -> rusqlite::Result<usize> {
    let conn = open(path, true)?;
    let n = conn.execute(
        "DELETE FROM diff_samples WHERE ?1 IS NULL OR route = ?1",
        params![route],
    )?;
    conn.execute(
        "DELETE FROM diff_groups WHERE ?1 IS NULL OR route = ?1",
        params![route],
    )?;
    Ok(n)
}
