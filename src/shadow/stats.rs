//! Each shadowing route's comparisons as a report: every field that differed, with its
//! verdict (regression or noise) and the ignore rule that would silence it. Computed from
//! tallies: this instance's (read from the live figures, so they cover the life of the
//! process, across reloads), or a fleet's, which are sums of its instances' tallies.

use crate::compare::noise::{
    suggested_ignore, verdict, FieldCounts, RouteCounts, Thresholds, Verdict,
};
use crate::live::window::SLOTS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One minute of a route's shadow copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minute {
    pub compared: u64,
    pub mismatched: u64,
    /// Copies that failed (connect, timeout, a 5xx only on the shadow).
    pub failed: u64,
}

/// What a route's shadow copies came to: the cumulative comparisons with each field's
/// counts, and the last minutes (by minute since 1970). Tallies add up exactly, so a
/// fleet's is the sum of its instances'.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub counts: RouteCounts,
    pub minutes: BTreeMap<u64, Minute>,
}

impl Tally {
    /// This instance's tally of a route, from its live figures.
    pub fn local(route: &crate::live::RouteFigures) -> Tally {
        let now = crate::live::window::now_minute();
        let shadow = &route.shadow;
        let compared = shadow.compared.series_at(now, SLOTS as u64);
        let failed = shadow.failed.series_at(now, SLOTS as u64);
        let minutes = compared
            .into_iter()
            .zip(failed)
            .enumerate()
            .filter(|(_, ((n, _), (f, _)))| *n > 0 || *f > 0)
            .map(|(i, ((n, bad), (f, _)))| {
                let minute = now + 1 + i as u64 - SLOTS as u64;
                (
                    minute,
                    Minute {
                        compared: n,
                        mismatched: bad,
                        failed: f,
                    },
                )
            })
            .collect();
        Tally {
            counts: shadow.comparisons(),
            minutes,
        }
    }

    /// It shadowed: it compared, or a copy failed.
    pub fn shadowed(&self) -> bool {
        self.counts.compared > 0 || self.counts.errors > 0
    }

    /// Add another instance's tally of the same route.
    pub fn add(&mut self, other: &Tally) {
        let (c, o) = (&mut self.counts, &other.counts);
        c.compared += o.compared;
        c.matches += o.matches;
        c.mismatches += o.mismatches;
        c.errors += o.errors;
        for (field, n) in &o.fields {
            let f = c
                .fields
                .entry(field.clone())
                .or_insert(FieldCounts::default());
            f.raw += n.raw;
            f.noise += n.noise;
        }
        for (minute, m) in &other.minutes {
            let sum = self.minutes.entry(*minute).or_default();
            sum.compared += m.compared;
            sum.mismatched += m.mismatched;
            sum.failed += m.failed;
        }
    }

    /// The `minutes` to `now` (the current one included), oldest first.
    pub fn series(&self, now: u64, minutes: u64) -> Vec<Minute> {
        (0..minutes)
            .rev()
            .map(|back| {
                self.minutes
                    .get(&now.saturating_sub(back))
                    .copied()
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// Every route's local tally, by name, of the routes that shadowed.
pub fn local_tallies() -> Vec<(String, Tally)> {
    crate::live::routes()
        .iter()
        .map(|route| (route.name.clone(), Tally::local(route)))
        .filter(|(_, t)| t.shadowed())
        .collect()
}

/// One field of a route, with its verdict.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FieldReport {
    pub field: String,
    pub raw: u64,
    pub noise: u64,
    pub raw_rate: f64,
    pub noise_rate: f64,
    pub verdict: Verdict,
    pub suggested_ignore: Option<String>,
}

/// One route's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    pub route: String,
    pub compared: u64,
    pub matches: u64,
    pub mismatches: u64,
    pub errors: u64,
    pub fields: Vec<FieldReport>,
}

impl RouteReport {
    /// A route that has not shadowed yet.
    pub fn empty(route: &str) -> Self {
        RouteReport {
            route: route.to_string(),
            compared: 0,
            matches: 0,
            mismatches: 0,
            errors: 0,
            fields: Vec::new(),
        }
    }
}

/// Every route's figures, fields with the most raw differences first.
pub fn report<'a>(
    tallies: impl IntoIterator<Item = (&'a str, &'a Tally)>,
    thresholds: &Thresholds,
) -> Vec<RouteReport> {
    tallies
        .into_iter()
        // A route is in the report once it shadowed: it compared, or a copy failed.
        .filter(|(_, t)| t.shadowed())
        .map(|(route, t)| {
            let c = &t.counts;
            let rate = |n: u64| {
                if c.compared == 0 {
                    0.0
                } else {
                    n as f64 / c.compared as f64
                }
            };
            let mut fields: Vec<FieldReport> = c
                .fields
                .iter()
                .map(|(field, counts)| {
                    let v = verdict(*counts, c.compared, thresholds);
                    FieldReport {
                        field: field.clone(),
                        raw: counts.raw,
                        noise: counts.noise,
                        raw_rate: rate(counts.raw),
                        noise_rate: rate(counts.noise),
                        verdict: v,
                        suggested_ignore: (v == Verdict::Noise).then(|| suggested_ignore(field)),
                    }
                })
                .collect();
            fields.sort_by(|a, b| b.raw.cmp(&a.raw).then(a.field.cmp(&b.field)));
            RouteReport {
                route: route.to_string(),
                compared: c.compared,
                matches: c.matches,
                mismatches: c.mismatches,
                errors: c.errors,
                fields,
            }
        })
        .collect()
}
