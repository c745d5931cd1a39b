//! The live state of a route's ramp: its step, whether it is paused, the figures at the
//! start of the step (to count what happened since), and the history of its moves. It
//! outlives a reload that leaves the route's migration unchanged, and is saved to the
//! embedded store so a restart resumes where the ramp stood.

use super::ramp::{Decision, Figures, GateReport, RampSpec};
use crate::live::latency::LatencyCounts;
use crate::live::{ComparisonTotals, SideTotals};
use crate::routing::split::threshold;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Moves kept per route in memory and in the store.
const HISTORY: usize = 100;

/// Cumulative counts, read at the start of a step and subtracted later.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub new_requests: u64,
    pub new_errors: u64,
    pub legacy_requests: u64,
    pub legacy_errors: u64,
    pub compared: u64,
    pub matches: u64,
    pub fields: HashMap<String, u64>,
    pub new_latency: LatencyCounts,
    pub legacy_latency: LatencyCounts,
}

impl Counts {
    /// What a route has seen so far, cumulative: requests and 5xx by side (its `new` and
    /// `legacy` upstreams), comparisons.
    pub fn new(new: SideTotals, legacy: SideTotals, shadow: ComparisonTotals) -> Self {
        Counts {
            new_requests: new.requests,
            new_errors: new.errors,
            legacy_requests: legacy.requests,
            legacy_errors: legacy.errors,
            compared: shadow.compared,
            matches: shadow.matches,
            fields: shadow.fields,
            new_latency: new.latency,
            legacy_latency: legacy.latency,
        }
    }
}

/// One move of the ramp, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// `advance`, `rollback`, `pause`, `resume`, `promote`, `manual_rollback`.
    pub kind: String,
    pub from_percent: f64,
    pub to_percent: f64,
    pub reason: String,
}

/// What is saved and restored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub step: Option<usize>,
    pub paused: bool,
    pub events: VecDeque<Event>,
}

#[derive(Debug)]
struct Inner {
    saved: Saved,
    step_started: Instant,
    baseline: Counts,
    last_eval: Option<Instant>,
    /// The last decision that held the ramp, for the API.
    holding: Option<String>,
    /// Judgements in a row with a failed gate (reset by any other, and by a move).
    failed_in_a_row: u32,
    /// The gates' reports at the last judgement.
    last_gates: Vec<GateReport>,
    /// Moved here since the fleet last took the state (fleet mode publishes it).
    moved_here: bool,
}

/// A ramp in force. Cloned into the next snapshot when the route's migration did not
/// change, pointing at that snapshot's split.
#[derive(Debug, Clone)]
pub struct RampState {
    pub route: String,
    pub spec: RampSpec,
    /// What identifies the migration across reloads and restarts.
    pub fingerprint: String,
    live: Arc<AtomicU32>,
    inner: Arc<Mutex<Inner>>,
}

/// A manual control call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Promote,
    Rollback,
}

impl Control {
    pub fn parse(text: &str) -> Option<Control> {
        match text {
            "pause" => Some(Control::Pause),
            "resume" => Some(Control::Resume),
            "promote" => Some(Control::Promote),
            "rollback" => Some(Control::Rollback),
            _ => None,
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl RampState {
    /// A ramp at `saved` (from the store, or a fresh one at 0%).
    pub fn new(
        route: &str,
        spec: RampSpec,
        fingerprint: String,
        live: Arc<AtomicU32>,
        saved: Saved,
    ) -> Self {
        let state = RampState {
            route: route.to_string(),
            spec,
            fingerprint,
            live,
            inner: Arc::new(Mutex::new(Inner {
                saved,
                step_started: Instant::now(),
                baseline: Counts::default(),
                last_eval: None,
                holding: None,
                failed_in_a_row: 0,
                last_gates: Vec::new(),
                moved_here: false,
            })),
        };
        state.publish();
        state
    }

    /// The same ramp, driving the split of a newer snapshot.
    pub fn carried(&self, live: Arc<AtomicU32>) -> Self {
        let state = RampState {
            live,
            ..self.clone()
        };
        state.publish();
        state
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn percent_of(&self, step: Option<usize>) -> f64 {
        step.and_then(|s| self.spec.steps.get(s))
            .copied()
            .unwrap_or(0.0)
    }

    /// Put the step's share into the split.
    fn publish(&self) {
        let percent = self.percent();
        self.live.store(threshold(percent), Ordering::Relaxed);
        crate::metrics::migration_percent(&self.route).set(percent);
    }

    pub fn percent(&self) -> f64 {
        let step = self.lock().saved.step;
        self.percent_of(step)
    }

    pub fn saved(&self) -> Saved {
        self.lock().saved.clone()
    }

    pub fn holding(&self) -> Option<String> {
        self.lock().holding.clone()
    }

    /// The gates' reports at the last judgement.
    pub fn last_gates(&self) -> Vec<GateReport> {
        self.lock().last_gates.clone()
    }

    /// Judgements in a row with a failed gate.
    pub fn failed_in_a_row(&self) -> u32 {
        self.lock().failed_in_a_row
    }

    pub fn step_age(&self) -> Duration {
        self.lock().step_started.elapsed()
    }

    /// Whether the gates are due for evaluation; marks them evaluated.
    pub fn due(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        let due = inner
            .last_eval
            .is_none_or(|t| now.duration_since(t) >= self.spec.interval);
        if due {
            inner.last_eval = Some(now);
        }
        due
    }

    /// The figures since the step began, from cumulative `now`.
    pub fn figures(&self, now: &Counts) -> Figures {
        let inner = self.lock();
        let b = &inner.baseline;
        let mut top_fields: Vec<(String, u64)> = now
            .fields
            .iter()
            .map(|(f, n)| (f.clone(), n.saturating_sub(*b.fields.get(f).unwrap_or(&0))))
            .filter(|(_, n)| *n > 0)
            .collect();
        top_fields.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Figures {
            elapsed: inner.step_started.elapsed(),
            new_requests: now.new_requests.saturating_sub(b.new_requests),
            new_errors: now.new_errors.saturating_sub(b.new_errors),
            legacy_requests: now.legacy_requests.saturating_sub(b.legacy_requests),
            legacy_errors: now.legacy_errors.saturating_sub(b.legacy_errors),
            new_latency: now.new_latency.since(&b.new_latency),
            legacy_latency: now.legacy_latency.since(&b.legacy_latency),
            compared: now.compared.saturating_sub(b.compared),
            matches: now.matches.saturating_sub(b.matches),
            top_fields,
        }
    }

    /// Evaluate the gates and move. Returns the move made, if any.
    pub fn evaluate(&self, figures: &Figures, now: Counts) -> Option<Event> {
        let (step, paused, failed_in_a_row) = {
            let inner = self.lock();
            (inner.saved.step, inner.saved.paused, inner.failed_in_a_row)
        };
        let judgement = super::ramp::decide(&self.spec, step, paused, figures, failed_in_a_row);
        self.lock().last_gates = judgement.gates;
        match judgement.decision {
            Decision::Hold { why, failing } => {
                let mut inner = self.lock();
                inner.holding = Some(why);
                inner.failed_in_a_row = if failing { failed_in_a_row + 1 } else { 0 };
                None
            }
            Decision::Advance { to, reason } => {
                Some(self.move_to(Some(to), "advance", reason, now, None))
            }
            Decision::Rollback { to, reason } => {
                // A failed gate also pauses: the ramp does not climb back by itself.
                Some(self.move_to(to, "rollback", reason, now, Some(true)))
            }
        }
    }

    /// A manual call; None when it changes nothing (promote at the last step...).
    pub fn control(&self, call: Control, now: Counts) -> Option<Event> {
        let (step, paused) = {
            let inner = self.lock();
            (inner.saved.step, inner.saved.paused)
        };
        let last = self.spec.steps.len().checked_sub(1)?;
        match call {
            Control::Pause if !paused => Some(self.mark("pause", Some(true))),
            Control::Resume if paused => Some(self.mark("resume", Some(false))),
            Control::Promote if step != Some(last) => {
                let to = step.map_or(0, |s| s + 1);
                Some(self.move_to(Some(to), "promote", "by hand".into(), now, None))
            }
            Control::Rollback if step.is_some() => {
                let to = step.and_then(|s| s.checked_sub(1));
                Some(self.move_to(to, "manual_rollback", "by hand".into(), now, Some(true)))
            }
            _ => None,
        }
    }

    fn mark(&self, kind: &str, paused: Option<bool>) -> Event {
        let percent = self.percent();
        let mut inner = self.lock();
        inner.moved_here = true;
        if let Some(p) = paused {
            inner.saved.paused = p;
        }
        let event = Event {
            at: unix_now(),
            kind: kind.into(),
            from_percent: percent,
            to_percent: percent,
            reason: "by hand".into(),
        };
        push(&mut inner.saved.events, event.clone());
        event
    }

    fn move_to(
        &self,
        to: Option<usize>,
        kind: &str,
        reason: String,
        now: Counts,
        paused: Option<bool>,
    ) -> Event {
        let event = {
            let mut inner = self.lock();
            let from = self.percent_of(inner.saved.step);
            inner.saved.step = to;
            if let Some(p) = paused {
                inner.saved.paused = p;
            }
            inner.step_started = Instant::now();
            inner.baseline = now;
            inner.holding = None;
            inner.failed_in_a_row = 0;
            inner.moved_here = true;
            let event = Event {
                at: unix_now(),
                kind: kind.into(),
                from_percent: from,
                to_percent: self.percent_of(to),
                reason,
            };
            push(&mut inner.saved.events, event.clone());
            event
        };
        self.publish();
        event
    }

    /// The state, when it moved here since the last call (fleet mode publishes it).
    pub fn take_moved(&self) -> Option<Saved> {
        let mut inner = self.lock();
        if !inner.moved_here {
            return None;
        }
        inner.moved_here = false;
        Some(inner.saved.clone())
    }

    /// Take the state the fleet decided (another instance moved the ramp): a new step
    /// starts counting from `now`.
    pub fn adopt(&self, saved: Saved, now: Counts) {
        {
            let mut inner = self.lock();
            if inner.saved == saved {
                return;
            }
            if inner.saved.step != saved.step {
                inner.step_started = Instant::now();
                inner.baseline = now;
                inner.failed_in_a_row = 0;
                inner.holding = None;
            }
            inner.saved = saved;
        }
        self.publish();
    }

    /// Start counting the step from `now` (after a restart or a new ramp).
    pub fn rebase(&self, now: Counts) {
        let mut inner = self.lock();
        inner.baseline = now;
        inner.step_started = Instant::now();
    }
}

fn push(events: &mut VecDeque<Event>, event: Event) {
    if events.len() == HISTORY {
        events.pop_front();
    }
    events.push_back(event);
}
