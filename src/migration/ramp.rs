//! The gated ramp, as a pure function: given a route's ramp, where it stands and the
//! figures since its step began, hold, advance one step, or roll back one step. Each gate
//! is a test that says "worse beyond chance" (fail), "not worse beyond chance" (pass) or
//! "cannot tell yet" (wait), and explains itself: what it compared, the sample sizes,
//! the statistic, the confidence and what it waits for. A step is taken only when every
//! gate passes; a rollback needs `failure_limit` failed judgements in a row, or one
//! breach of the hard 5xx limit.

use super::analysis::{self, QuantileBounds};
use crate::live::latency::LatencyCounts;
use serde::Serialize;
use std::time::Duration;

/// `ramp = { steps = [1, 5, 25, 50, 100], min_time = "10m", ... }` of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct RampSpec {
    /// Percentages of the route's traffic on the new side, rising, the last 100.
    pub steps: Vec<f64>,
    /// Least time at a step before it may advance.
    pub min_time: Duration,
    /// Least requests per side at a step before the 5xx gate judges.
    pub min_requests: u64,
    /// How often the gates are evaluated.
    pub interval: Duration,
    pub gates: Gates,
}

/// The latency quantile the latency gate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantile {
    P50,
    P90,
    P99,
}

impl Quantile {
    pub fn parse(text: &str) -> Option<Quantile> {
        match text {
            "p50" => Some(Quantile::P50),
            "p90" => Some(Quantile::P90),
            "p99" => Some(Quantile::P99),
            _ => None,
        }
    }

    pub fn fraction(self) -> f64 {
        match self {
            Quantile::P50 => 0.5,
            Quantile::P90 => 0.9,
            Quantile::P99 => 0.99,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P90 => "p90",
            Quantile::P99 => "p99",
        }
    }
}

/// What must hold to advance, and what rolls back.
#[derive(Debug, Clone, PartialEq)]
pub struct Gates {
    /// The shadow match rate's 95% Wilson interval must lie above this to pass.
    pub min_match_rate: f64,
    /// Least comparisons before the match rate is judged.
    pub min_comparisons: u64,
    /// New side's 5xx rate may exceed legacy's by at most this (absolute, 0.01 = 1 point).
    pub max_error_margin: f64,
    /// The hard limit: a new side's 5xx rate above this rolls back at once.
    pub max_error_rate: f64,
    /// The latency quantile compared.
    pub latency_quantile: Quantile,
    /// New side's quantile may be at most legacy's times this.
    pub max_latency_factor: f64,
    /// Confidence of the 5xx and latency tests (one-sided).
    pub confidence: f64,
    /// Failed judgements in a row before a rollback.
    pub failure_limit: u32,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            min_match_rate: 0.95,
            min_comparisons: 50,
            max_error_margin: 0.01,
            max_error_rate: 0.5,
            latency_quantile: Quantile::P99,
            max_latency_factor: 1.5,
            confidence: 0.95,
            failure_limit: 2,
        }
    }
}

/// What happened at the current step so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub elapsed: Duration,
    pub new_requests: u64,
    pub new_errors: u64,
    pub legacy_requests: u64,
    pub legacy_errors: u64,
    pub new_latency: LatencyCounts,
    pub legacy_latency: LatencyCounts,
    pub compared: u64,
    pub matches: u64,
    /// The fields that differed most at this step, with their counts.
    pub top_fields: Vec<(String, u64)>,
}

/// Where the ramp goes next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Stay: why. `failing` when a gate failed but fewer than `failure_limit` times in a
    /// row.
    Hold {
        why: String,
        failing: bool,
    },
    Advance {
        to: usize,
        reason: String,
    },
    /// Back one step (to 0% from the first); the reason names the failed gates.
    Rollback {
        to: Option<usize>,
        reason: String,
    },
}

/// A decision and the gates' reports that led to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub decision: Decision,
    pub gates: Vec<GateReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    MatchRate,
    Errors,
    Latency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Worse beyond chance.
    Fail,
    /// Past the hard limit: rolls back at once.
    HardFail,
    /// Cannot tell yet.
    Wait,
    /// Nothing to judge at this step (the new side serves nothing at 0%, legacy nothing
    /// at 100%).
    NotApplicable,
}

/// One gate's judgement, explained.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct GateReport {
    pub gate: Gate,
    pub verdict: Verdict,
    /// What the gate compared.
    pub compared: String,
    /// Samples on the new side (comparisons, for the match rate).
    pub new_samples: u64,
    pub legacy_samples: u64,
    /// The test and its figures.
    pub statistic: String,
    pub confidence: f64,
    /// The verdict in a sentence.
    pub explanation: String,
    /// What the gate waits for, when it waits.
    pub waiting_for: Option<String>,
}

/// The match gate's interval: 95%, two-sided, as the shadow pages show it.
const MATCH_Z: f64 = 1.96;
/// A new side needs this many requests before the hard 5xx limit applies.
const HARD_MIN_REQUESTS: u64 = 10;

fn percent(x: u64, n: u64) -> f64 {
    100.0 * x as f64 / n.max(1) as f64
}

/// The shadow match rate, by its Wilson interval: pass above `min_match_rate`, fail
/// below it, wait in between or before `min_comparisons`.
fn match_gate(f: &Figures, g: &Gates) -> GateReport {
    let mut report = GateReport {
        gate: Gate::MatchRate,
        verdict: Verdict::Wait,
        compared: "shadow comparisons that matched".into(),
        new_samples: f.compared,
        legacy_samples: 0,
        statistic: "Wilson score interval".into(),
        confidence: 0.95,
        explanation: String::new(),
        waiting_for: None,
    };
    let interval = analysis::wilson(f.matches, f.compared, MATCH_Z);
    let (Some((low, high)), true) = (interval, f.compared >= g.min_comparisons) else {
        report.explanation = format!(
            "{} of {} comparisons at this step",
            f.compared, g.min_comparisons
        );
        report.waiting_for = Some(format!("{} comparisons", g.min_comparisons));
        return report;
    };
    let rate = format!(
        "shadow match rate {:.1}% ({} of {}; 95% interval {:.1}-{:.1}%)",
        percent(f.matches, f.compared),
        f.matches,
        f.compared,
        100.0 * low,
        100.0 * high
    );
    if high < g.min_match_rate {
        let fields: Vec<String> = f
            .top_fields
            .iter()
            .take(3)
            .map(|(field, n)| format!("{field} ({n} of {})", f.compared))
            .collect();
        report.verdict = Verdict::Fail;
        report.explanation = format!(
            "{rate} is below {:.1}%{}",
            100.0 * g.min_match_rate,
            if fields.is_empty() {
                String::new()
            } else {
                format!("; differing: {}", fields.join(", "))
            }
        );
    } else if low < g.min_match_rate {
        report.explanation = format!(
            "{rate}: not yet proven above {:.1}%",
            100.0 * g.min_match_rate
        );
        report.waiting_for = Some("comparisons enough to prove the match rate".into());
    } else {
        report.verdict = Verdict::Pass;
        report.explanation = format!("{rate} is above {:.1}%", 100.0 * g.min_match_rate);
    }
    report
}

/// The new side's 5xx rate against legacy's, by the bounds of their difference: fail
/// when its lower bound is above `max_error_margin`, pass when its upper bound is at or
/// below it, wait in between or before `min_requests` a side.
fn error_gate(f: &Figures, g: &Gates, min_requests: u64) -> GateReport {
    let mut report = GateReport {
        gate: Gate::Errors,
        verdict: Verdict::Wait,
        compared: "5xx rate, new against legacy".into(),
        new_samples: f.new_requests,
        legacy_samples: f.legacy_requests,
        statistic: "difference of two proportions (Newcombe's hybrid score interval)".into(),
        confidence: g.confidence,
        explanation: String::new(),
        waiting_for: None,
    };
    let new_rate = f.new_errors as f64 / f.new_requests.max(1) as f64;
    let legacy_rate = f.legacy_errors as f64 / f.legacy_requests.max(1) as f64;
    let rates = format!(
        "new 5xx {:.2}% ({} of {}), legacy {:.2}% ({} of {})",
        100.0 * new_rate,
        f.new_errors,
        f.new_requests,
        100.0 * legacy_rate,
        f.legacy_errors,
        f.legacy_requests
    );
    if f.new_requests >= HARD_MIN_REQUESTS
        && new_rate > g.max_error_rate
        && new_rate > legacy_rate + g.max_error_margin
    {
        report.verdict = Verdict::HardFail;
        report.statistic = "hard limit".into();
        report.explanation = format!(
            "{rates}: over the hard limit of {:.0}%",
            100.0 * g.max_error_rate
        );
        return report;
    }
    if f.new_requests < min_requests || f.legacy_requests < min_requests {
        report.explanation = format!("{rates}: {min_requests} requests a side are needed");
        report.waiting_for = Some(format!("{min_requests} requests on each side"));
        return report;
    }
    let z = analysis::z_for(g.confidence);
    let Some((low, high)) = analysis::difference(
        f.new_errors,
        f.new_requests,
        f.legacy_errors,
        f.legacy_requests,
        z,
    ) else {
        return report;
    };
    let bounds = format!(
        "difference {:+.2} points, {:.0}% bounds {:+.2} to {:+.2}",
        100.0 * (new_rate - legacy_rate),
        100.0 * g.confidence,
        100.0 * low,
        100.0 * high
    );
    let margin = 100.0 * g.max_error_margin;
    if low > g.max_error_margin {
        report.verdict = Verdict::Fail;
        report.explanation = format!(
            "new 5xx rate {:.2}% ({} of {}) exceeds legacy's {:.2}% by more than {margin:.2} points ({bounds})",
            100.0 * new_rate,
            f.new_errors,
            f.new_requests,
            100.0 * legacy_rate
        );
    } else if high <= g.max_error_margin {
        report.verdict = Verdict::Pass;
        report.explanation = format!("{rates}: within {margin:.2} points ({bounds})");
    } else {
        report.explanation =
            format!("{rates}: cannot tell yet whether within {margin:.2} points ({bounds})");
        report.waiting_for = Some(format!(
            "requests enough to bound the difference under {margin:.2} points"
        ));
    }
    report
}

fn bounds_text(b: &QuantileBounds) -> String {
    match b.high {
        Some(high) => format!("{:.1} ms ({:.1}-{:.1})", b.estimate, b.low, high),
        None => format!("{:.1} ms ({:.1}-?)", b.estimate, b.low),
    }
}

/// The chosen latency quantile, new against legacy, by distribution-free bounds on each:
/// fail when new's lower bound is over `max_latency_factor` times legacy's upper bound,
/// pass when new's upper bound is within that factor of legacy's lower bound, wait in
/// between or before each side has the samples the quantile needs.
fn latency_gate(f: &Figures, g: &Gates) -> GateReport {
    let q = g.latency_quantile;
    let label = q.label();
    let mut report = GateReport {
        gate: Gate::Latency,
        verdict: Verdict::Wait,
        compared: format!("{label} latency to response headers, new against legacy"),
        new_samples: f.new_latency.count(),
        legacy_samples: f.legacy_latency.count(),
        statistic: "order-statistic bounds on each side's quantile".into(),
        confidence: g.confidence,
        explanation: String::new(),
        waiting_for: None,
    };
    let need = analysis::min_samples(q.fraction());
    for (side, n) in [
        ("new", report.new_samples),
        ("legacy", report.legacy_samples),
    ] {
        if n < need {
            report.explanation = format!(
                "waiting: {label} needs at least {need} requests on the {side} side (has {n})"
            );
            report.waiting_for = Some(format!("{need} requests on each side"));
            return report;
        }
    }
    let z = analysis::z_for(g.confidence);
    let (Some(new), Some(legacy)) = (
        analysis::quantile_bounds(&f.new_latency, q.fraction(), z),
        analysis::quantile_bounds(&f.legacy_latency, q.fraction(), z),
    ) else {
        return report;
    };
    let factor = g.max_latency_factor;
    let sides = format!(
        "new {label} {}, legacy {}; {:.0}% bounds",
        bounds_text(&new),
        bounds_text(&legacy),
        100.0 * g.confidence
    );
    let legacy_high = legacy.high.unwrap_or(f64::INFINITY);
    if new.low > factor * legacy_high {
        report.verdict = Verdict::Fail;
        report.explanation = format!(
            "new {label} {:.1} ms is over {factor:.2}x legacy's {:.1} ms beyond chance ({sides})",
            new.estimate, legacy.estimate
        );
    } else if new.high.is_some_and(|h| h <= factor * legacy.low) {
        report.verdict = Verdict::Pass;
        report.explanation = format!("{sides}: within {factor:.2}x");
    } else {
        report.explanation = format!("{sides}: cannot tell yet whether within {factor:.2}x");
        report.waiting_for = Some("requests enough to bound both quantiles".into());
    }
    report
}

fn not_applicable(gate: Gate, why: &str, g: &Gates) -> GateReport {
    GateReport {
        gate,
        verdict: Verdict::NotApplicable,
        compared: String::new(),
        new_samples: 0,
        legacy_samples: 0,
        statistic: String::new(),
        confidence: g.confidence,
        explanation: why.into(),
        waiting_for: None,
    }
}

/// Every gate's report for a ramp at `step`.
pub fn judge(spec: &RampSpec, step: Option<usize>, f: &Figures) -> Vec<GateReport> {
    let g = &spec.gates;
    let mut reports = vec![match_gate(f, g)];
    if step.is_none() {
        // At 0% the new side serves nothing: its shadow comparisons are the evidence.
        let why = "at 0% the new side serves no traffic: the shadow comparisons are the evidence";
        reports.push(not_applicable(Gate::Errors, why, g));
        reports.push(not_applicable(Gate::Latency, why, g));
    } else if f.legacy_requests == 0 && spec.steps.get(step.unwrap_or(0)) == Some(&100.0) {
        let why = "at 100% legacy serves no traffic to compare with";
        reports.push(not_applicable(Gate::Errors, why, g));
        reports.push(not_applicable(Gate::Latency, why, g));
    } else {
        reports.push(error_gate(f, g, spec.min_requests));
        reports.push(latency_gate(f, g));
    }
    reports
}

fn explained(reports: &[GateReport], verdicts: &[Verdict]) -> String {
    reports
        .iter()
        .filter(|r| verdicts.contains(&r.verdict))
        .map(|r| r.explanation.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Decide for a ramp at `step` (None: 0%, before the first step), after
/// `failed_in_a_row` judgements in a row with a failed gate.
pub fn decide(
    spec: &RampSpec,
    step: Option<usize>,
    paused: bool,
    f: &Figures,
    failed_in_a_row: u32,
) -> Judgement {
    let gates = judge(spec, step, f);
    let decision = decision(spec, step, paused, f, failed_in_a_row, &gates);
    Judgement { decision, gates }
}

fn decision(
    spec: &RampSpec,
    step: Option<usize>,
    paused: bool,
    f: &Figures,
    failed_in_a_row: u32,
    gates: &[GateReport],
) -> Decision {
    let back = step.map(|s| s.checked_sub(1));
    let hard = gates.iter().any(|r| r.verdict == Verdict::HardFail);
    let failed = gates
        .iter()
        .any(|r| matches!(r.verdict, Verdict::Fail | Verdict::HardFail));
    if failed {
        let reason = explained(gates, &[Verdict::Fail, Verdict::HardFail]);
        let limit = spec.gates.failure_limit.max(1);
        return match back {
            Some(to) if hard || failed_in_a_row + 1 >= limit => Decision::Rollback { to, reason },
            Some(_) => Decision::Hold {
                why: format!(
                    "failed {} of {limit} judgements in a row before a rollback: {reason}",
                    failed_in_a_row + 1
                ),
                failing: true,
            },
            // At 0% there is nothing to roll back: the ramp does not start.
            None => Decision::Hold {
                why: reason,
                failing: true,
            },
        };
    }
    let hold = |why: String| Decision::Hold {
        why,
        failing: false,
    };
    if paused {
        return hold("paused".into());
    }
    let next = step.map_or(0, |s| s + 1);
    if next >= spec.steps.len() {
        return hold("at the last step".into());
    }
    if step.is_some() && f.elapsed < spec.min_time {
        return hold(format!(
            "{:?} of {:?} at this step",
            round(f.elapsed),
            spec.min_time
        ));
    }
    let waiting = explained(gates, &[Verdict::Wait]);
    if !waiting.is_empty() {
        return hold(waiting);
    }
    Decision::Advance {
        to: next,
        reason: format!("gates held: {}", explained(gates, &[Verdict::Pass])),
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RampSpec {
        RampSpec {
            steps: vec![1.0, 5.0, 25.0, 100.0],
            min_time: Duration::from_secs(60),
            min_requests: 100,
            interval: Duration::from_secs(10),
            gates: Gates {
                latency_quantile: Quantile::P90,
                ..Gates::default()
            },
        }
    }

    /// `n` latencies spread evenly over `from_ms` to `to_ms`.
    fn latencies(n: u64, from_ms: f64, to_ms: f64) -> LatencyCounts {
        LatencyCounts::of_micros(
            (0..n).map(|i| ((from_ms + (to_ms - from_ms) * i as f64 / n as f64) * 1000.0) as u64),
        )
    }

    fn good() -> Figures {
        Figures {
            elapsed: Duration::from_secs(61),
            new_requests: 1000,
            legacy_requests: 10_000,
            new_latency: latencies(1000, 2.0, 10.0),
            legacy_latency: latencies(10_000, 2.0, 10.0),
            compared: 1000,
            matches: 1000,
            ..Figures::default()
        }
    }

    fn decided(s: &RampSpec, step: Option<usize>, paused: bool, f: &Figures) -> Decision {
        decide(s, step, paused, f, 0).decision
    }

    fn holds(d: &Decision) -> bool {
        matches!(d, Decision::Hold { .. })
    }

    #[test]
    fn advances_when_every_gate_passes_after_enough_time() {
        let s = spec();
        assert!(matches!(
            decided(&s, Some(1), false, &good()),
            Decision::Advance { to: 2, .. }
        ));
        let early = Figures {
            elapsed: Duration::from_secs(30),
            ..good()
        };
        assert!(holds(&decided(&s, Some(1), false, &early)));
        assert!(
            matches!(decided(&s, Some(1), true, &good()), Decision::Hold { why, .. } if why == "paused")
        );
        assert!(holds(&decided(&s, Some(3), false, &good())));
    }

    #[test]
    fn no_step_without_evidence_not_even_the_first() {
        let s = spec();
        // An instance that saw nothing stays at 0%.
        match decided(&s, None, false, &Figures::default()) {
            Decision::Hold { why, failing } => {
                assert!(!failing);
                assert!(why.contains("0 of 50 comparisons"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // At 0% the shadow comparisons are the evidence, and enough of them suffice.
        let shadowed = Figures {
            compared: 200,
            matches: 200,
            ..Figures::default()
        };
        assert!(matches!(
            decided(&s, None, false, &shadowed),
            Decision::Advance { to: 0, .. }
        ));
        // At a step, few requests to the new side: the 5xx and latency gates wait.
        let few = Figures {
            new_requests: 40,
            new_latency: latencies(40, 2.0, 10.0),
            ..good()
        };
        match decided(&s, Some(1), false, &few) {
            Decision::Hold { why, .. } => {
                assert!(why.contains("100 requests a side are needed"), "{why}");
                assert!(
                    why.contains("p90 needs at least 100 requests on the new side (has 40)"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_gate_rolls_back_after_failure_limit_judgements_in_a_row() {
        let s = spec();
        let mismatching = Figures {
            matches: 900,
            top_fields: vec![("$.price".into(), 100)],
            ..good()
        };
        // The first failure holds and says so; the second rolls back.
        match decide(&s, Some(2), false, &mismatching, 0).decision {
            Decision::Hold { why, failing } => {
                assert!(failing);
                assert!(why.contains("failed 1 of 2 judgements in a row"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        match decide(&s, Some(2), false, &mismatching, 1).decision {
            Decision::Rollback { to, reason } => {
                assert_eq!(to, Some(1));
                assert!(reason.contains("90.0% (900 of 1000"), "{reason}");
                assert!(reason.contains("$.price (100 of 1000)"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Even paused, and from the first step to 0%.
        assert!(matches!(
            decide(&s, Some(0), true, &mismatching, 1).decision,
            Decision::Rollback { to: None, .. }
        ));
    }

    #[test]
    fn the_error_gate_asks_whether_the_difference_could_be_chance() {
        let s = spec();
        // 5.0% against 0.1% over 1000 requests: beyond the 1 point margin, beyond chance.
        let erroring = Figures {
            new_errors: 50,
            legacy_errors: 10,
            ..good()
        };
        let judgement = decide(&s, Some(1), false, &erroring, 1);
        let report = &judgement.gates[1];
        assert_eq!(report.verdict, Verdict::Fail, "{report:?}");
        match judgement.decision {
            Decision::Rollback { reason, .. } => {
                assert!(reason.contains("5.00% (50 of 1000)"), "{reason}");
                assert!(reason.contains("95% bounds"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // 2 of 100 against 1 of 1000: more, but 100 requests cannot tell by how much.
        let thin = Figures {
            new_requests: 100,
            new_errors: 2,
            legacy_requests: 1000,
            legacy_errors: 1,
            new_latency: latencies(100, 2.0, 10.0),
            legacy_latency: latencies(1000, 2.0, 10.0),
            ..good()
        };
        let report = &decide(&s, Some(1), false, &thin, 0).gates[1];
        assert_eq!(report.verdict, Verdict::Wait, "{report:?}");
        // Past the hard limit, one judgement rolls back.
        let broken = Figures {
            new_requests: 20,
            new_errors: 15,
            ..good()
        };
        let judgement = decide(&s, Some(1), false, &broken, 0);
        assert_eq!(judgement.gates[1].verdict, Verdict::HardFail);
        assert!(matches!(judgement.decision, Decision::Rollback { .. }));
    }

    #[test]
    fn the_latency_gate_compares_distributions_not_the_slowest_request() {
        let s = spec();
        // One very slow request among 1000 moves no p90.
        let mut one_slow = latencies(999, 2.0, 10.0);
        one_slow.add(900_000, 1);
        let f = Figures {
            new_latency: one_slow,
            ..good()
        };
        let report = &decide(&s, Some(1), false, &f, 0).gates[2];
        assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
        // Three times slower throughout: fails, and says which test.
        let slow = Figures {
            new_latency: latencies(1000, 6.0, 30.0),
            ..good()
        };
        let judgement = decide(&s, Some(1), false, &slow, 1);
        assert_eq!(judgement.gates[2].verdict, Verdict::Fail);
        match judgement.decision {
            Decision::Rollback { reason, .. } => {
                assert!(reason.contains("new p90"), "{reason}");
                assert!(reason.contains("over 1.50x legacy's"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_gate_explains_itself() {
        let judgement = decide(&spec(), Some(1), false, &good(), 0);
        assert_eq!(judgement.gates.len(), 3);
        for g in &judgement.gates {
            assert_eq!(g.verdict, Verdict::Pass, "{g:?}");
            assert!(!g.compared.is_empty() && !g.statistic.is_empty(), "{g:?}");
            assert!(g.new_samples > 0 && !g.explanation.is_empty(), "{g:?}");
        }
        // At 0% only the comparisons count; at 100% legacy serves nothing to compare.
        let at_zero = decide(&spec(), None, false, &good(), 0);
        assert_eq!(at_zero.gates[1].verdict, Verdict::NotApplicable);
        let at_full = Figures {
            legacy_requests: 0,
            legacy_latency: LatencyCounts::default(),
            ..good()
        };
        let at_full = decide(&spec(), Some(3), false, &at_full, 0);
        assert_eq!(at_full.gates[2].verdict, Verdict::NotApplicable);
    }
}
