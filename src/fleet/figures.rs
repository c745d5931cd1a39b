//! The fleet's shadow figures: each instance flushes its cumulative tally of every route
//! that shadowed (comparisons, matches, per-field raw and noise counts, and the last
//! minutes), one row per instance and route; the fleet's tally of a route is the sum of
//! the rows. Match rates, noise verdicts and readiness are computed on those sums.

use super::db::FleetError;
use super::Fleet;
use crate::compare::noise::{FieldCounts, RouteCounts};
use crate::shadow::stats::{Minute, Tally};
use deadpool_postgres::Client;
use std::collections::{BTreeMap, HashMap};

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

/// A field's counts as stored: `[raw, noise]`.
fn fields_json(fields: &HashMap<String, FieldCounts>) -> String {
    let map: BTreeMap<&str, [u64; 2]> = fields
        .iter()
        .map(|(f, c)| (f.as_str(), [c.raw, c.noise]))
        .collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

fn fields_of(text: &str) -> HashMap<String, FieldCounts> {
    let map: HashMap<String, [u64; 2]> = serde_json::from_str(text).unwrap_or_default();
    map.into_iter()
        .map(|(f, [raw, noise])| (f, FieldCounts { raw, noise }))
        .collect()
}

/// The last minutes as stored: `[[minute, compared, mismatched, failed], ...]`.
fn minutes_json(minutes: &BTreeMap<u64, Minute>) -> String {
    let rows: Vec<[u64; 4]> = minutes
        .iter()
        .map(|(m, t)| [*m, t.compared, t.mismatched, t.failed])
        .collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into())
}

fn minutes_of(text: &str) -> BTreeMap<u64, Minute> {
    let rows: Vec<[u64; 4]> = serde_json::from_str(text).unwrap_or_default();
    rows.into_iter()
        .map(|[m, compared, mismatched, failed]| {
            (
                m,
                Minute {
                    compared,
                    mismatched,
                    failed,
                },
            )
        })
        .collect()
}

/// Write this instance's tally of every route that shadowed.
pub async fn flush(fleet: &Fleet, client: &Client) -> Result<(), FleetError> {
    for (route, tally) in crate::shadow::stats::local_tallies() {
        let c = &tally.counts;
        client
            .execute(
                "INSERT INTO banyan_shadow_figures (instance, route, compared, matches,
                    mismatches, errors, fields, minutes, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7::text::json, $8::text::json, now())
                 ON CONFLICT (instance, route) DO UPDATE SET
                    compared = excluded.compared, matches = excluded.matches,
                    mismatches = excluded.mismatches, errors = excluded.errors,
                    fields = excluded.fields, minutes = excluded.minutes, updated_at = now()",
                &[
                    &fleet.instance,
                    &route,
                    &n(c.compared),
                    &n(c.matches),
                    &n(c.mismatches),
                    &n(c.errors),
                    &fields_json(&c.fields),
                    &minutes_json(&tally.minutes),
                ],
            )
            .await?;
    }
    Ok(())
}

impl Fleet {
    /// The fleet's tally of every route that shadowed: the sum of its instances'.
    pub async fn shadow_tallies(&self) -> Result<Vec<(String, Tally)>, FleetError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT route, compared, matches, mismatches, errors, fields::text, minutes::text
                 FROM banyan_shadow_figures ORDER BY route",
                &[],
            )
            .await?;
        let mut sums: BTreeMap<String, Tally> = BTreeMap::new();
        for r in rows {
            let tally = Tally {
                counts: RouteCounts {
                    compared: u(r.get(1)),
                    matches: u(r.get(2)),
                    mismatches: u(r.get(3)),
                    errors: u(r.get(4)),
                    fields: fields_of(r.get(5)),
                },
                minutes: minutes_of(r.get(6)),
            };
            sums.entry(r.get(0)).or_default().add(&tally);
        }
        Ok(sums.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_minutes_read_back_what_was_written() {
        let mut fields = HashMap::new();
        fields.insert("$.price".to_string(), FieldCounts { raw: 7, noise: 2 });
        assert_eq!(fields_of(&fields_json(&fields)), fields);
        let mut minutes = BTreeMap::new();
        minutes.insert(
            29_000_000,
            Minute {
                compared: 10,
                mismatched: 3,
                failed: 1,
            },
        );
        assert_eq!(minutes_of(&minutes_json(&minutes)), minutes);
    }
}
