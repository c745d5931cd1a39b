//! Each shadowing route's comparisons as a report: every field that differed, with its
//! verdict (regression or noise) and the ignore rule that would silence it. Read from the
//! live figures, so it covers the life of the process (across reloads).

use crate::compare::noise::{suggested_ignore, verdict, Thresholds, Verdict};
use serde::Serialize;

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
pub fn report(thresholds: &Thresholds) -> Vec<RouteReport> {
    crate::live::routes()
        .iter()
        .map(|route| (route.name.clone(), route.shadow.comparisons()))
        // A route is in the report once it shadowed: it compared, or a copy failed.
        .filter(|(_, c)| c.compared > 0 || c.errors > 0)
        .map(|(route, c)| {
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
                route,
                compared: c.compared,
                matches: c.matches,
                mismatches: c.mismatches,
                errors: c.errors,
                fields,
            }
        })
        .collect()
}
