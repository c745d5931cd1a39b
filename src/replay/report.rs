//! A replay's findings, per route: the match rate with its 95% interval, the fields that
//! differed with counts and an example, and each field's verdict (a regression, or noise
//! when the legacy side differs from its own recording as often: `--noise`). Rendered as
//! Markdown and JSON; `failed` is the CI gate.

use crate::compare::noise::{self, FieldCounts, Thresholds, Verdict};
use crate::compare::Difference;
use serde::Serialize;
use std::collections::BTreeMap;

/// What one replayed request came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Compared with the recording: what differed (empty: a match), and what the legacy
    /// side's own answer differed in (with `--noise`).
    Compared {
        differences: Vec<Difference>,
        noise: Option<Vec<Difference>>,
    },
    /// The target did not answer (connection refused, timeout...).
    Failed(String),
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct FieldReport {
    pub field: String,
    pub kind: String,
    /// Requests in which the target differed from the recording here.
    pub raw: u64,
    /// Requests in which the legacy side differed from its own recording here.
    pub noise: Option<u64>,
    pub verdict: &'static str,
    /// The first request that showed it, and both values.
    pub example: Option<Example>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub request: String,
    pub path: String,
    pub recorded: Option<String>,
    pub replayed: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RouteReport {
    pub route: String,
    pub replayed: u64,
    pub compared: u64,
    /// Compared with no difference at all.
    pub matched: u64,
    /// Compared with no difference but noise.
    pub matched_but_noise: u64,
    pub failed: u64,
    pub match_rate: Option<f64>,
    pub match_rate_ci95: Option<(f64, f64)>,
    pub fields: Vec<FieldReport>,
    pub regressions: u64,
    /// The first failures, as the client saw them.
    pub failures: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub noise: Option<String>,
    pub replayed: u64,
    pub routes: Vec<RouteReport>,
    pub min_match_rate: Option<f64>,
    /// Why the gate fails, if it does.
    pub failed_because: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.failed_because.is_empty()
    }
}

/// Counts as the replay goes.
#[derive(Debug, Default)]
pub struct Tally {
    routes: BTreeMap<String, RouteTally>,
}

#[derive(Debug, Default)]
struct RouteTally {
    replayed: u64,
    compared: u64,
    matched: u64,
    failed: u64,
    failures: Vec<String>,
    /// (field, kind) -> counts, and the first example.
    fields: BTreeMap<(String, String), (FieldCounts, Option<Example>)>,
    /// Per request: its differing (field, kind)s, to tell noise-only mismatches later.
    mismatches: Vec<Vec<(String, String)>>,
}

impl Tally {
    pub fn add(&mut self, route: &str, request: &str, outcome: &Outcome) {
        let t = self.routes.entry(route.to_string()).or_default();
        t.replayed += 1;
        match outcome {
            Outcome::Failed(why) => {
                t.failed += 1;
                if t.failures.len() < 5 {
                    t.failures.push(format!("{request}: {why}"));
                }
            }
            Outcome::Compared { differences, noise } => {
                t.compared += 1;
                if differences.is_empty() {
                    t.matched += 1;
                }
                let mut seen = Vec::new();
                for d in differences {
                    let key = (d.field.clone(), d.kind.label().to_string());
                    if seen.contains(&key) {
                        continue;
                    }
                    seen.push(key.clone());
                    let entry = t.fields.entry(key).or_default();
                    entry.0.raw += 1;
                    entry.1.get_or_insert_with(|| Example {
                        request: request.to_string(),
                        path: d.path.clone(),
                        recorded: d.primary.clone(),
                        replayed: d.shadow.clone(),
                    });
                }
                if !seen.is_empty() {
                    t.mismatches.push(seen);
                }
                let mut noisy = Vec::new();
                for d in noise.iter().flatten() {
                    let key = (d.field.clone(), d.kind.label().to_string());
                    if !noisy.contains(&key) {
                        noisy.push(key.clone());
                        t.fields.entry(key).or_default().0.noise += 1;
                    }
                }
            }
        }
    }

    /// Each field judged and the routes summed up; the gate decided.
    pub fn report(
        self,
        target: &str,
        noise_url: Option<&str>,
        thresholds: &Thresholds,
        min_match_rate: Option<f64>,
    ) -> Report {
        let mut report = Report {
            target: target.to_string(),
            noise: noise_url.map(str::to_string),
            min_match_rate,
            ..Report::default()
        };
        for (route, t) in self.routes {
            let with_noise = noise_url.is_some();
            let mut fields: Vec<FieldReport> = t
                .fields
                .iter()
                .filter(|(_, (c, _))| c.raw > 0)
                .map(|((field, kind), (counts, example))| {
                    // Without a legacy side to learn noise from, every difference counts.
                    let verdict = if with_noise {
                        noise::verdict(*counts, t.compared, thresholds)
                    } else {
                        Verdict::Regression
                    };
                    FieldReport {
                        field: field.clone(),
                        kind: kind.clone(),
                        raw: counts.raw,
                        noise: with_noise.then_some(counts.noise),
                        verdict: verdict_label(verdict),
                        example: example.clone(),
                    }
                })
                .collect();
            fields.sort_by(|a, b| b.raw.cmp(&a.raw).then(a.field.cmp(&b.field)));
            let noisy: Vec<(String, String)> = fields
                .iter()
                .filter(|f| f.verdict == "noise")
                .map(|f| (f.field.clone(), f.kind.clone()))
                .collect();
            let matched_but_noise = t
                .mismatches
                .iter()
                .filter(|m| m.iter().all(|k| noisy.contains(k)))
                .count() as u64;
            let regressions = fields.iter().filter(|f| f.verdict == "regression").count() as u64;
            // A request whose only differences are noise is a match for the gate.
            let good = t.matched + matched_but_noise;
            let attempted = t.compared + t.failed;
            let r = RouteReport {
                route: route.clone(),
                replayed: t.replayed,
                compared: t.compared,
                matched: t.matched,
                matched_but_noise,
                failed: t.failed,
                match_rate: (attempted > 0).then(|| good as f64 / attempted as f64),
                match_rate_ci95: noise::wilson(good, attempted),
                fields,
                regressions,
                failures: t.failures,
            };
            if r.regressions > 0 {
                report.failed_because.push(format!(
                    "route {route}: {} field(s) differ as regressions",
                    r.regressions
                ));
            }
            if r.failed > 0 {
                report.failed_because.push(format!(
                    "route {route}: {} request(s) got no answer from the target",
                    r.failed
                ));
            }
            if let (Some(min), Some(rate)) = (min_match_rate, r.match_rate) {
                if rate < min {
                    report.failed_because.push(format!(
                        "route {route}: match rate {:.1}% is under {:.1}%",
                        rate * 100.0,
                        min * 100.0
                    ));
                }
            }
            report.replayed += r.replayed;
            report.routes.push(r);
        }
        report
    }
}

fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Regression => "regression",
        Verdict::Noise => "noise",
        Verdict::InsufficientData => "insufficient_data",
    }
}

/// The report as Markdown, for a CI log or a pull request.
pub fn markdown(r: &Report) -> String {
    let mut out = format!("# banyan replay against {}\n\n", r.target);
    if let Some(n) = &r.noise {
        out.push_str(&format!("Noise learnt from the legacy side at {n}.\n\n"));
    }
    out.push_str(&format!(
        "{} requests replayed. Verdict: **{}**.\n",
        r.replayed,
        if r.failed() { "FAIL" } else { "PASS" }
    ));
    for why in &r.failed_because {
        out.push_str(&format!("- {why}\n"));
    }
    out.push_str("\n| route | replayed | match rate | 95% interval | differing fields | regressions | no answer |\n| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    for route in &r.routes {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            route.route,
            route.replayed,
            route.match_rate.map_or("-".into(), pct),
            route
                .match_rate_ci95
                .map_or("-".into(), |(lo, hi)| format!("{}-{}", pct(lo), pct(hi))),
            route.fields.len(),
            route.regressions,
            route.failed
        ));
    }
    for route in r
        .routes
        .iter()
        .filter(|x| !x.fields.is_empty() || !x.failures.is_empty())
    {
        out.push_str(&format!("\n## {}\n\n", route.route));
        if !route.fields.is_empty() {
            out.push_str("| field | kind | requests | noise | verdict | example |\n| --- | --- | ---: | ---: | --- | --- |\n");
            for f in &route.fields {
                let example = f.example.as_ref().map_or(String::new(), |e| {
                    format!(
                        "`{}` at `{}`: `{}` recorded, `{}` replayed",
                        e.request,
                        e.path,
                        e.recorded.as_deref().unwrap_or("(none)"),
                        e.replayed.as_deref().unwrap_or("(none)")
                    )
                });
                out.push_str(&format!(
                    "| `{}` | {} | {} | {} | {} | {} |\n",
                    f.field,
                    f.kind,
                    f.raw,
                    f.noise.map_or("-".into(), |n| n.to_string()),
                    f.verdict,
                    example.replace('|', "\\|")
                ));
            }
        }
        for failure in &route.failures {
            out.push_str(&format!("- no answer: {failure}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Kind;

    fn d(field: &str) -> Difference {
        Difference {
            path: field.into(),
            field: field.into(),
            kind: Kind::Value,
            primary: Some("1".into()),
            shadow: Some("2".into()),
        }
    }

    #[test]
    fn without_noise_every_difference_is_a_regression() {
        let mut t = Tally::default();
        for i in 0..10 {
            let differences = if i < 3 { vec![d("$.price")] } else { vec![] };
            t.add(
                "items",
                &format!("GET /items/{i}"),
                &Outcome::Compared {
                    differences,
                    noise: None,
                },
            );
        }
        let r = t.report("http://new", None, &Thresholds::default(), None);
        assert!(r.failed());
        let items = &r.routes[0];
        assert_eq!(
            (items.compared, items.matched, items.regressions),
            (10, 7, 1)
        );
        assert_eq!(items.match_rate, Some(0.7));
        assert_eq!(
            items.fields[0].example.as_ref().unwrap().request,
            "GET /items/0"
        );
        assert!(markdown(&r).contains("`$.price`"));
    }

    #[test]
    fn noise_is_told_from_regressions_and_the_gate_follows() {
        let mut t = Tally::default();
        for i in 0..50 {
            // The id differs on both sides every time; the price only on the target's.
            let mut differences = vec![d("$.id")];
            if i % 5 == 0 {
                differences.push(d("$.price"));
            }
            t.add(
                "items",
                "GET /x",
                &Outcome::Compared {
                    differences,
                    noise: Some(vec![d("$.id")]),
                },
            );
        }
        let thresholds = Thresholds {
            min_samples: 1,
            ..Thresholds::default()
        };
        let r = t.report("http://new", Some("http://legacy"), &thresholds, None);
        let verdicts: Vec<(&str, &str)> = r.routes[0]
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.verdict))
            .collect();
        assert_eq!(verdicts, vec![("$.id", "noise"), ("$.price", "regression")]);
        assert_eq!(r.routes[0].matched_but_noise, 40);
        assert!(r.failed());

        let mut only_noise = Tally::default();
        for _ in 0..50 {
            only_noise.add(
                "items",
                "GET /x",
                &Outcome::Compared {
                    differences: vec![d("$.id")],
                    noise: Some(vec![d("$.id")]),
                },
            );
        }
        let r = only_noise.report("http://new", Some("http://legacy"), &thresholds, Some(0.99));
        assert!(!r.failed(), "{:?}", r.failed_because);
        assert_eq!(r.routes[0].match_rate, Some(1.0));
    }

    #[test]
    fn failures_and_the_minimum_match_rate_fail_the_gate() {
        let mut t = Tally::default();
        t.add("a", "GET /", &Outcome::Failed("connection refused".into()));
        assert!(t
            .report("http://new", None, &Thresholds::default(), None)
            .failed());
        let mut t = Tally::default();
        t.add(
            "a",
            "GET /",
            &Outcome::Compared {
                differences: vec![],
                noise: None,
            },
        );
        let r = t.report("http://new", None, &Thresholds::default(), Some(0.5));
        assert!(!r.failed());
    }
}
