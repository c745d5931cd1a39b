//! The fleet's diff store: every instance's mismatch samples and signature groups in
//! PostgreSQL, so the admin API, dashboard and report of any instance show the whole
//! fleet's diffs. Written by the store's writer thread in batches (one transaction of two
//! statements per batch), read by the admin API; retention as for the SQLite store, over
//! the fleet's samples.

use super::db::FleetError;
use super::Fleet;
use crate::store::query::{Group, SampleSummary};
use crate::store::{Location, Retention, Sample, Sink, Store};
use deadpool_postgres::Pool;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::runtime::Handle;

/// A batch that takes longer is abandoned (and its samples counted as lost): a slow
/// PostgreSQL must not hold the queue, which then drops what comes (and counts it).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Retention runs this often on each instance; any instance's trim serves the fleet.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// The store of a fleet member: samples go to PostgreSQL.
pub fn store(fleet: &Fleet, retention: Retention) -> std::io::Result<Store> {
    let sink = PostgresSink {
        pool: fleet.pool.clone(),
        instance: fleet.instance.clone(),
        runtime: Handle::current(),
    };
    Store::with_sink(Location::Fleet, sink, retention)
}

struct PostgresSink {
    pool: Pool,
    instance: String,
    /// The writer is a thread of its own; it runs its queries on banyan's runtime.
    runtime: Handle,
}

impl PostgresSink {
    fn run<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, FleetError>>,
    ) -> Result<T, String> {
        self.runtime
            .block_on(async { tokio::time::timeout(WRITE_TIMEOUT, work).await })
            .map_err(|_| format!("PostgreSQL did not answer within {WRITE_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())
    }
}

impl Sink for PostgresSink {
    fn write(&mut self, batch: &[Sample]) -> Result<(), String> {
        self.run(write(&self.pool, &self.instance, batch))
    }

    fn trim(&mut self, retention: Retention) -> Result<(), String> {
        self.run(trim(&self.pool, retention))
    }

    fn trim_every(&self) -> Duration {
        TRIM_EVERY
    }
}

/// A batch's groups: one row per signature, so one statement updates each group once,
/// in signature order (two instances updating the same groups cannot deadlock).
fn groups_of(batch: &[Sample]) -> BTreeMap<&str, (&str, &str, i64, f64, f64)> {
    let mut groups = BTreeMap::new();
    for s in batch {
        let g = groups.entry(s.signature.as_str()).or_insert((
            s.route.as_str(),
            s.fields.as_str(),
            0i64,
            s.at,
            s.at,
        ));
        g.2 += 1;
        g.3 = g.3.min(s.at);
        g.4 = g.4.max(s.at);
    }
    groups
}

async fn write(pool: &Pool, instance: &str, batch: &[Sample]) -> Result<(), FleetError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let column = |f: fn(&Sample) -> String| batch.iter().map(f).collect::<Vec<String>>();
    let signatures = column(|s| s.signature.clone());
    let routes = column(|s| s.route.clone());
    let requests = column(|s| s.request.to_string());
    let primaries = column(|s| s.primary.to_string());
    let shadows = column(|s| s.shadow.to_string());
    let differences = column(|s| serde_json::to_string(&s.differences).unwrap_or_default());
    let at: Vec<f64> = batch.iter().map(|s| s.at).collect();
    let primary_ms: Vec<f64> = batch.iter().map(|s| s.primary_ms).collect();
    let shadow_ms: Vec<f64> = batch.iter().map(|s| s.shadow_ms).collect();
    tx.execute(
        "INSERT INTO banyan_diff_samples (signature, route, instance, at, request,
            primary_response, shadow_response, differences, primary_ms, shadow_ms)
         SELECT signature, route, $3, at, request::json, primary_response::json,
            shadow_response::json, differences::json, primary_ms, shadow_ms
         FROM unnest($1::text[], $2::text[], $4::float8[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::float8[], $10::float8[])
            AS s (signature, route, at, request, primary_response, shadow_response,
                  differences, primary_ms, shadow_ms)",
        &[
            &signatures,
            &routes,
            &instance,
            &at,
            &requests,
            &primaries,
            &shadows,
            &differences,
            &primary_ms,
            &shadow_ms,
        ],
    )
    .await?;
    let groups = groups_of(batch);
    let signatures: Vec<&str> = groups.keys().copied().collect();
    let routes: Vec<&str> = groups.values().map(|g| g.0).collect();
    let fields: Vec<&str> = groups.values().map(|g| g.1).collect();
    let counts: Vec<i64> = groups.values().map(|g| g.2).collect();
    let first: Vec<f64> = groups.values().map(|g| g.3).collect();
    let last: Vec<f64> = groups.values().map(|g| g.4).collect();
    tx.execute(
        "INSERT INTO banyan_diff_groups (signature, route, fields, count, first_seen, last_seen)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::float8[],
            $6::float8[])
         ON CONFLICT (signature) DO UPDATE SET
            count = banyan_diff_groups.count + excluded.count,
            first_seen = least(banyan_diff_groups.first_seen, excluded.first_seen),
            last_seen = greatest(banyan_diff_groups.last_seen, excluded.last_seen)",
        &[&signatures, &routes, &fields, &counts, &first, &last],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn trim(pool: &Pool, retention: Retention) -> Result<(), FleetError> {
    let client = pool.get().await?;
    let cutoff = crate::clock::now_unix() - retention.age.as_secs_f64();
    let keep = i64::try_from(retention.samples).unwrap_or(i64::MAX);
    client
        .execute("DELETE FROM banyan_diff_samples WHERE at < $1", &[&cutoff])
        .await?;
    client
        .execute(
            "DELETE FROM banyan_diff_samples WHERE id <= (SELECT id FROM banyan_diff_samples
             ORDER BY id DESC OFFSET $1 LIMIT 1)",
            &[&keep],
        )
        .await?;
    client
        .execute(
            "DELETE FROM banyan_diff_groups WHERE last_seen < $1",
            &[&cutoff],
        )
        .await?;
    Ok(())
}

fn text_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl Fleet {
    /// The fleet's groups, newest first, `limit` from `offset`; and whether more follow.
    pub async fn diff_groups(
        &self,
        route: Option<&str>,
        since: Option<f64>,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Group>, bool), FleetError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT g.signature, g.route, g.fields, g.count, g.first_seen, g.last_seen,
                    (SELECT max(id) FROM banyan_diff_samples s WHERE s.signature = g.signature)
                 FROM banyan_diff_groups g
                 WHERE ($1::text IS NULL OR g.route = $1) AND ($2::float8 IS NULL OR g.last_seen >= $2)
                 ORDER BY g.last_seen DESC, g.signature LIMIT $3 OFFSET $4",
                &[&route, &since, &(limit as i64 + 1), &(offset as i64)],
            )
            .await?;
        let mut out: Vec<Group> = rows
            .iter()
            .map(|r| Group {
                signature: r.get(0),
                route: r.get(1),
                fields: text_json(r.get(2)),
                count: r.get(3),
                first_seen: r.get(4),
                last_seen: r.get(5),
                example_id: r.get(6),
            })
            .collect();
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    /// The fleet's samples of a group (or a route), newest first, older than `before`.
    pub async fn diff_samples(
        &self,
        signature: Option<&str>,
        route: Option<&str>,
        since: Option<f64>,
        limit: usize,
        before: Option<i64>,
    ) -> Result<(Vec<SampleSummary>, Option<i64>), FleetError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, at, route, signature, request->>'method', request->>'path',
                    coalesce((primary_response->>'status')::bigint, 0),
                    coalesce((shadow_response->>'status')::bigint, 0)
                 FROM banyan_diff_samples
                 WHERE ($1::text IS NULL OR signature = $1) AND ($2::text IS NULL OR route = $2)
                   AND ($3::float8 IS NULL OR at >= $3) AND ($4::int8 IS NULL OR id < $4)
                 ORDER BY id DESC LIMIT $5",
                &[&signature, &route, &since, &before, &(limit as i64 + 1)],
            )
            .await?;
        let mut out: Vec<SampleSummary> = rows
            .iter()
            .map(|r| SampleSummary {
                id: r.get(0),
                at: r.get(1),
                route: r.get(2),
                signature: r.get(3),
                method: r.get::<_, Option<String>>(4).unwrap_or_default(),
                path: r.get::<_, Option<String>>(5).unwrap_or_default(),
                primary_status: r.get(6),
                shadow_status: r.get(7),
            })
            .collect();
        let next = (out.len() > limit).then(|| out[limit - 1].id);
        out.truncate(limit);
        Ok((out, next))
    }

    /// One sample, whole, with the instance that kept it.
    pub async fn diff_sample(&self, id: i64) -> Result<Option<Value>, FleetError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT id, at, route, signature, request::text, primary_response::text,
                    shadow_response::text, differences::text, primary_ms, shadow_ms, instance
                 FROM banyan_diff_samples WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| {
            serde_json::json!({
                "id": r.get::<_, i64>(0),
                "at": r.get::<_, f64>(1),
                "route": r.get::<_, String>(2),
                "signature": r.get::<_, String>(3),
                "request": text_json(r.get(4)),
                "primary": text_json(r.get(5)),
                "shadow": text_json(r.get(6)),
                "differences": text_json(r.get(7)),
                "primary_ms": r.get::<_, f64>(8),
                "shadow_ms": r.get::<_, f64>(9),
                "instance": r.get::<_, String>(10),
            })
        }))
    }

    /// Forget the fleet's samples and groups of a route (of all, for None); how many
    /// samples.
    pub async fn clear_diffs(&self, route: Option<&str>) -> Result<u64, FleetError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "DELETE FROM banyan_diff_samples WHERE $1::text IS NULL OR route = $1",
                &[&route],
            )
            .await?;
        tx.execute(
            "DELETE FROM banyan_diff_groups WHERE $1::text IS NULL OR route = $1",
            &[&route],
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(signature: &str, at: f64) -> Sample {
        Sample {
            route: "r".into(),
            signature: signature.into(),
            fields: "[]".into(),
            at,
            request: Value::Null,
            primary: Value::Null,
            shadow: Value::Null,
            differences: Vec::new(),
            primary_ms: 0.0,
            shadow_ms: 0.0,
        }
    }

    #[test]
    fn a_batch_updates_each_group_once_with_its_count_and_span() {
        let batch = [sample("b", 3.0), sample("a", 5.0), sample("b", 1.0)];
        let groups = groups_of(&batch);
        assert_eq!(groups.keys().copied().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(groups["b"].2, 2);
        assert_eq!((groups["b"].3, groups["b"].4), (1.0, 3.0));
        assert_eq!(groups["a"].2, 1);
    }
}
