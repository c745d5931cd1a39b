//! The ramp's gates on simulated traffic: seeded random latencies (heavy-tailed) and 5xx
//! answers, a ramp at the default gates and steps, judged every interval by the same
//! pure `decide` the running ramp calls (steps 10, 25, 50, 100). Identical sides must reach 100%; a new side
//! twice as slow at p99, or with 2 points more 5xx, must be rolled back, each in at least
//! 99 of 100 ramps. The figures printed here are the ones docs/migration.md quotes
//! (`cargo test --test ramp_statistics -- --nocapture`).

use banyan::live::latency::LatencyCounts;
use banyan::migration::ramp::{decide, Decision, Figures, Gates, RampSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Requests per second on the route.
const RATE: u64 = 50;
/// Simulated time before a ramp that has neither finished nor rolled back counts as stuck.
const HORIZON: Duration = Duration::from_secs(12 * 3600);
const RAMPS: u64 = 100;
/// The default `min_time`.
const MIN_TIME: Duration = Duration::from_secs(300);

/// How one side answers.
#[derive(Clone, Copy)]
struct Side {
    /// Share of answers in the slow tail.
    tail_share: f64,
    /// The tail, uniform between these (ms).
    tail_ms: (f64, f64),
    error_rate: f64,
}

/// A service whose answers mostly take about 5 ms (log-normal), 3% take 20-60 ms, and
/// 1% are 5xx.
const LEGACY: Side = Side {
    tail_share: 0.03,
    tail_ms: (20.0, 60.0),
    error_rate: 0.01,
};

impl Side {
    fn latency_micros(&self, rng: &mut StdRng) -> u64 {
        let ms = if rng.random::<f64>() < self.tail_share {
            self.tail_ms.0 + (self.tail_ms.1 - self.tail_ms.0) * rng.random::<f64>()
        } else {
            // Box-Muller: a standard normal from two uniforms.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            5.0 * (0.4 * z).exp()
        };
        (ms * 1000.0) as u64
    }
}

#[derive(Debug, Default)]
struct Outcome {
    reached_full: bool,
    rolled_back: bool,
    /// New-side requests at each step when it advanced (or rolled back).
    new_requests_per_step: Vec<u64>,
    reason: String,
}

fn simulate(seed: u64, new: Side, legacy: Side, min_time: Duration) -> Outcome {
    let spec = RampSpec {
        steps: vec![10.0, 25.0, 50.0, 100.0],
        min_time,
        min_requests: 100,
        interval: Duration::from_secs(30),
        gates: Gates::default(),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut step: Option<usize> = None;
    let mut failed_in_a_row = 0;
    let mut figures = Figures::default();
    let mut new_latency = LatencyCounts::default();
    let mut legacy_latency = LatencyCounts::default();
    let mut outcome = Outcome::default();
    let mut now = Duration::ZERO;
    while now < HORIZON {
        now += spec.interval;
        figures.elapsed += spec.interval;
        let share = step.map_or(0.0, |s| spec.steps[s]) / 100.0;
        for _ in 0..RATE * spec.interval.as_secs() {
            let on_new = rng.random::<f64>() < share;
            let side = if on_new { new } else { legacy };
            let failed = rng.random::<f64>() < side.error_rate;
            let micros = side.latency_micros(&mut rng);
            if on_new {
                figures.new_requests += 1;
                figures.new_errors += u64::from(failed);
                new_latency.add(micros, 1);
            } else {
                figures.legacy_requests += 1;
                figures.legacy_errors += u64::from(failed);
                legacy_latency.add(micros, 1);
            }
            // A canary copies each request to the other side; the answers agree.
            figures.compared += 1;
            figures.matches += 1;
        }
        figures.new_latency = new_latency.clone();
        figures.legacy_latency = legacy_latency.clone();
        match decide(&spec, step, false, &figures, failed_in_a_row).decision {
            Decision::Hold { failing, .. } => {
                failed_in_a_row = if failing { failed_in_a_row + 1 } else { 0 };
            }
            Decision::Advance { to, .. } => {
                outcome.new_requests_per_step.push(figures.new_requests);
                step = Some(to);
                failed_in_a_row = 0;
                figures = Figures::default();
                new_latency = LatencyCounts::default();
                legacy_latency = LatencyCounts::default();
                if spec.steps[to] == 100.0 {
                    outcome.reached_full = true;
                    return outcome;
                }
            }
            Decision::Rollback { reason, .. } => {
                outcome.new_requests_per_step.push(figures.new_requests);
                outcome.rolled_back = true;
                outcome.reason = reason;
                return outcome;
            }
        }
    }
    outcome
}

/// Ramps out of `RAMPS` that `wanted` says went as they should, and the median new-side
/// requests of the decisive step.
fn run(new: Side, wanted: fn(&Outcome) -> bool, label: &str) -> (u64, Vec<Outcome>) {
    let outcomes: Vec<Outcome> = (0..RAMPS)
        .map(|seed| simulate(seed, new, LEGACY, MIN_TIME))
        .collect();
    let good = outcomes.iter().filter(|o| wanted(o)).count() as u64;
    let mut decisive: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| o.new_requests_per_step.last().copied())
        .collect();
    decisive.sort_unstable();
    eprintln!(
        "{label}: {good} of {RAMPS} as wanted; new-side requests at the deciding step: median {}, max {}",
        decisive.get(decisive.len() / 2).copied().unwrap_or(0),
        decisive.last().copied().unwrap_or(0)
    );
    (good, outcomes)
}

#[test]
fn identical_sides_reach_100_percent() {
    let (good, outcomes) = run(LEGACY, |o| o.reached_full && !o.rolled_back, "identical");
    let false_rollbacks: Vec<&String> = outcomes
        .iter()
        .filter(|o| o.rolled_back)
        .map(|o| &o.reason)
        .collect();
    assert!(
        good >= 99,
        "{good} of {RAMPS}; rolled back: {false_rollbacks:?}"
    );
    // What the gates themselves need at each step: the same ramps with no min_time.
    let quick: Vec<Outcome> = (0..RAMPS)
        .map(|seed| simulate(seed, LEGACY, LEGACY, Duration::from_secs(1)))
        .collect();
    assert!(quick.iter().filter(|o| o.reached_full).count() >= 99);
    for (i, step) in ["10%", "25%", "50%"].iter().enumerate() {
        let mut v: Vec<u64> = quick
            .iter()
            .filter_map(|o| o.new_requests_per_step.get(i + 1).copied())
            .collect();
        v.sort_unstable();
        eprintln!(
            "identical, no min_time: new-side requests before leaving {step}: median {}, 90th percentile {}",
            v.get(v.len() / 2).copied().unwrap_or(0),
            v.get(v.len() * 9 / 10).copied().unwrap_or(0)
        );
    }
}

#[test]
fn a_new_side_twice_as_slow_at_p99_is_rolled_back() {
    let slow = Side {
        tail_ms: (40.0, 120.0),
        ..LEGACY
    };
    let (good, outcomes) = run(slow, |o| o.rolled_back && !o.reached_full, "2x p99");
    assert!(good >= 99, "{good} of {RAMPS}");
    assert!(
        outcomes
            .iter()
            .filter(|o| o.rolled_back)
            .all(|o| o.reason.contains("new p99")),
        "the reason names the latency test"
    );
}

#[test]
fn a_new_side_with_two_points_more_5xx_is_rolled_back() {
    let failing = Side {
        error_rate: LEGACY.error_rate + 0.02,
        ..LEGACY
    };
    let (good, outcomes) = run(
        failing,
        |o| o.rolled_back && !o.reached_full,
        "+2 points 5xx",
    );
    assert!(good >= 99, "{good} of {RAMPS}");
    assert!(outcomes
        .iter()
        .filter(|o| o.rolled_back)
        .all(|o| o.reason.contains("5xx")));
}
