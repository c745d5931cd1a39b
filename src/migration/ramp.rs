//! The gated ramp, as a pure function: given a route's ramp, where it stands and the
//! figures since its step began, hold, advance one step, or roll back one step. The
//! figures of every gate go into the reason, so a rollback says what failed and by how
//! much.

use crate::compare::noise::wilson;
use std::time::Duration;

/// `ramp = { steps = [1, 5, 25, 50, 100], min_time = "10m", ... }` of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct RampSpec {
    /// Percentages of the route's traffic on the new side, rising, the last 100.
    pub steps: Vec<f64>,
    /// Least time at a step before it may advance.
    pub min_time: Duration,
    /// Least requests to the new side at a step before it may advance.
    pub min_requests: u64,
    /// How often the gates are evaluated.
    pub interval: Duration,
    pub gates: Gates,
}

/// What must hold to advance; any of them failing rolls back.
#[derive(Debug, Clone, PartialEq)]
pub struct Gates {
    /// Lower bound of the 95% Wilson interval of the shadow match rate must be above this.
    pub min_match_rate: f64,
    /// Least comparisons before the match rate counts.
    pub min_comparisons: u64,
    /// New side's 5xx rate may exceed legacy's by at most this (absolute, 0.01 = 1 point).
    pub max_error_margin: f64,
    /// New side's p99 may be at most legacy's times this.
    pub max_latency_factor: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            min_match_rate: 0.95,
            min_comparisons: 50,
            max_error_margin: 0.01,
            max_latency_factor: 1.5,
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
    pub new_p99_ms: Option<f64>,
    pub legacy_p99_ms: Option<f64>,
    pub compared: u64,
    pub matches: u64,
    /// The fields that differed most at this step, with their counts.
    pub top_fields: Vec<(String, u64)>,
}

/// Where the ramp goes next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Stay: why (not enough time or requests yet, or paused).
    Hold(String),
    Advance {
        to: usize,
        reason: String,
    },
    /// Back one step (to 0% from the first); the reason names the failed gate.
    Rollback {
        to: Option<usize>,
        reason: String,
    },
}

/// The gates' verdicts: those that failed and those not yet proven, with their figures.
#[derive(Debug, Default)]
struct Verdicts {
    failed: Vec<String>,
    unproven: Vec<String>,
}

/// Judge the gates. The match rate is judged by its 95% interval: it holds when the
/// interval's lower bound is above the threshold, fails when its upper bound is below
/// it, and in between the ramp waits for more comparisons (a small sample proves
/// neither). The 5xx and latency gates count once the new side has had `min_requests`
/// at this step: on a handful, one slow or failed request would roll back a sound
/// service.
fn judge(f: &Figures, g: &Gates, min_requests: u64) -> Verdicts {
    let mut v = Verdicts::default();
    match wilson(f.matches, f.compared).filter(|_| f.compared >= g.min_comparisons) {
        None => v.unproven.push(format!(
            "{} of {} comparisons at this step",
            f.compared, g.min_comparisons
        )),
        Some((low, high)) => {
            let rate = format!(
                "shadow match rate {:.1}% ({} of {}; 95% interval {:.1}-{:.1}%)",
                100.0 * f.matches as f64 / f.compared as f64,
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
                v.failed.push(format!(
                    "{rate} is below {:.1}%{}",
                    100.0 * g.min_match_rate,
                    if fields.is_empty() {
                        String::new()
                    } else {
                        format!("; differing: {}", fields.join(", "))
                    }
                ));
            } else if low < g.min_match_rate {
                v.unproven.push(format!(
                    "{rate}: not yet proven above {:.1}%",
                    100.0 * g.min_match_rate
                ));
            }
        }
    }
    let rate = |errors: u64, requests: u64| errors as f64 / requests.max(1) as f64;
    let (new_rate, legacy_rate) = (
        rate(f.new_errors, f.new_requests),
        rate(f.legacy_errors, f.legacy_requests),
    );
    let enough = f.new_requests >= min_requests.max(1);
    if enough && new_rate > legacy_rate + g.max_error_margin {
        v.failed.push(format!(
            "new 5xx rate {:.2}% ({} of {}) exceeds legacy's {:.2}% by more than {:.2} points",
            100.0 * new_rate,
            f.new_errors,
            f.new_requests,
            100.0 * legacy_rate,
            100.0 * g.max_error_margin
        ));
    }
    if let (Some(new), Some(legacy), true) = (f.new_p99_ms, f.legacy_p99_ms, enough) {
        if new > legacy * g.max_latency_factor {
            v.failed.push(format!(
                "new p99 {new:.1} ms is over {:.2}x legacy's {legacy:.1} ms",
                g.max_latency_factor
            ));
        }
    }
    v
}

/// Decide for a ramp at `step` (None: 0%, before the first step).
pub fn decide(spec: &RampSpec, step: Option<usize>, paused: bool, f: &Figures) -> Decision {
    let verdicts = judge(f, &spec.gates, spec.min_requests);
    if !verdicts.failed.is_empty() && step.is_some() {
        let to = step.and_then(|s| s.checked_sub(1));
        return Decision::Rollback {
            to,
            reason: verdicts.failed.join("; "),
        };
    }
    if paused {
        return Decision::Hold("paused".into());
    }
    let next = step.map_or(0, |s| s + 1);
    if next >= spec.steps.len() {
        return Decision::Hold("at the last step".into());
    }
    // From 0% there is nothing of the new side to judge yet: the first step needs none.
    if step.is_some() {
        if f.elapsed < spec.min_time {
            return Decision::Hold(format!(
                "{:?} of {:?} at this step",
                round(f.elapsed),
                spec.min_time
            ));
        }
        if f.new_requests < spec.min_requests {
            return Decision::Hold(format!(
                "{} of {} requests to the new side at this step",
                f.new_requests, spec.min_requests
            ));
        }
        if !verdicts.unproven.is_empty() {
            return Decision::Hold(verdicts.unproven.join("; "));
        }
    }
    let figures = match wilson(f.matches, f.compared) {
        Some((low, _)) => format!(
            "match rate {:.1}% (lower bound {:.1}%, {} compared), new 5xx {} of {}, legacy 5xx {} of {}",
            100.0 * f.matches as f64 / f.compared as f64,
            100.0 * low,
            f.compared,
            f.new_errors,
            f.new_requests,
            f.legacy_errors,
            f.legacy_requests
        ),
        None => format!(
            "new 5xx {} of {}, legacy 5xx {} of {}",
            f.new_errors, f.new_requests, f.legacy_errors, f.legacy_requests
        ),
    };
    Decision::Advance {
        to: next,
        reason: format!("gates held: {figures}"),
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
            gates: Gates::default(),
        }
    }

    fn good() -> Figures {
        Figures {
            elapsed: Duration::from_secs(61),
            new_requests: 200,
            legacy_requests: 2000,
            compared: 1000,
            matches: 1000,
            new_p99_ms: Some(12.0),
            legacy_p99_ms: Some(10.0),
            ..Figures::default()
        }
    }

    #[test]
    fn advances_when_every_gate_holds_after_enough_time_and_requests() {
        let s = spec();
        assert!(matches!(
            decide(&s, None, false, &Figures::default()),
            Decision::Advance { to: 0, .. }
        ));
        assert!(matches!(
            decide(&s, Some(1), false, &good()),
            Decision::Advance { to: 2, .. }
        ));
        let early = Figures {
            elapsed: Duration::from_secs(30),
            ..good()
        };
        assert!(matches!(
            decide(&s, Some(1), false, &early),
            Decision::Hold(_)
        ));
        let few = Figures {
            new_requests: 99,
            ..good()
        };
        assert!(matches!(
            decide(&s, Some(1), false, &few),
            Decision::Hold(_)
        ));
        assert!(matches!(decide(&s, Some(1), true, &good()), Decision::Hold(r) if r == "paused"));
        assert!(matches!(
            decide(&s, Some(3), false, &good()),
            Decision::Hold(_)
        ));
    }

    #[test]
    fn a_failed_gate_rolls_back_one_step_and_names_its_figures() {
        let s = spec();
        let mismatching = Figures {
            matches: 900,
            top_fields: vec![("$.price".into(), 100)],
            ..good()
        };
        match decide(&s, Some(2), false, &mismatching) {
            Decision::Rollback { to, reason } => {
                assert_eq!(to, Some(1));
                assert!(reason.contains("90.0% (900 of 1000"), "{reason}");
                assert!(reason.contains("$.price (100 of 1000)"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Even paused, and from the first step to 0%.
        assert!(matches!(
            decide(&s, Some(0), true, &mismatching),
            Decision::Rollback { to: None, .. }
        ));
        let erroring = Figures {
            new_errors: 10,
            legacy_errors: 2,
            ..good()
        };
        match decide(&s, Some(1), false, &erroring) {
            Decision::Rollback { reason, .. } => assert!(reason.contains("5.00%"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let slow = Figures {
            new_p99_ms: Some(40.0),
            ..good()
        };
        assert!(matches!(
            decide(&s, Some(1), false, &slow),
            Decision::Rollback { .. }
        ));
        // Too few comparisons, or a sample too small to prove the rate either way: wait.
        let thin = Figures {
            compared: 10,
            matches: 5,
            ..good()
        };
        assert!(matches!(
            decide(&s, Some(1), false, &thin),
            Decision::Hold(_)
        ));
        let small = Figures {
            compared: 60,
            matches: 60,
            ..good()
        };
        match decide(&s, Some(1), false, &small) {
            Decision::Hold(why) => assert!(why.contains("not yet proven"), "{why}"),
            other => panic!("60 of 60 has a lower bound under 95%: {other:?}"),
        }
        // Few requests to the new side: one 5xx does not roll back.
        let few_errors = Figures {
            new_requests: 3,
            new_errors: 1,
            ..good()
        };
        assert!(matches!(
            decide(&s, Some(1), false, &few_errors),
            Decision::Hold(_)
        ));
    }
}
