//! A route's circuit breaker toward its new service. While closed, the route's traffic
//! goes where the rules say; when the new side's error rate over a sliding window passes
//! the threshold, the circuit opens and the route's traffic goes to legacy for a while;
//! then a few probe requests go to the new side again, and the circuit closes when all
//! of them succeed (or opens again at the first that fails).

use std::sync::Mutex;
use std::time::Duration;

/// `circuit_breaker = { error_rate = 0.5, min_requests = 20, ... }` of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSpec {
    /// Share of the new side's requests that failed (5xx or no answer), above which the
    /// circuit opens.
    pub error_rate: f64,
    /// Requests in the window before the rate counts.
    pub min_requests: u32,
    pub window: Duration,
    /// How long the circuit stays open before probing.
    pub open_for: Duration,
    /// Successful probes in a row that close it.
    pub probes: u32,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec {
            error_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(30),
            probes: 5,
        }
    }
}

/// Where one request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// To the new side; `probe` while half-open.
    New { probe: bool },
    /// To legacy: the circuit is open (or enough probes are already out).
    Legacy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// The value of the state gauge.
    pub fn gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }
}

/// A change of state and why, for the log, the metrics and the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub to: State,
    pub reason: String,
}

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket-length period of the clock this one counts.
    epoch: u64,
    requests: u32,
    errors: u32,
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: u64 },
    HalfOpen { sent: u32, succeeded: u32 },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    buckets: [Bucket; BUCKETS],
    last: Option<(u64, Transition)>,
}

/// A snapshot of a breaker for the admin API.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    pub requests: u32,
    pub errors: u32,
    /// Milliseconds of the clock at the last transition, and the transition.
    pub last_transition: Option<(u64, Transition)>,
}

#[derive(Debug)]
pub struct Breaker {
    spec: BreakerSpec,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(spec: BreakerSpec) -> Self {
        Breaker {
            spec,
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                buckets: [Bucket::default(); BUCKETS],
                last: None,
            }),
        }
    }

    pub fn spec(&self) -> &BreakerSpec {
        &self.spec
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decide where a request goes at `now` (milliseconds). Also returns a transition
    /// when the decision moved the breaker (open to half-open).
    pub fn admit(&self, now: u64) -> (Admit, Option<Transition>) {
        let mut inner = self.lock();
        let mut moved = None;
        if let Phase::Open { until } = inner.phase {
            if now < until {
                return (Admit::Legacy, None);
            }
            inner.phase = Phase::HalfOpen {
                sent: 0,
                succeeded: 0,
            };
            let t = Transition {
                to: State::HalfOpen,
                reason: format!("open for {:?}: probing the new service", self.spec.open_for),
            };
            inner.last = Some((now, t.clone()));
            moved = Some(t);
        }
        let admit = match &mut inner.phase {
            Phase::Closed => Admit::New { probe: false },
            Phase::HalfOpen { sent, .. } if *sent < self.spec.probes => {
                *sent += 1;
                Admit::New { probe: true }
            }
            _ => Admit::Legacy,
        };
        (admit, moved)
    }

    /// Count the outcome of a request that went to the new side.
    pub fn record(&self, now: u64, probe: bool, failed: bool) -> Option<Transition> {
        let mut inner = self.lock();
        let spec = &self.spec;
        let transition = match (&mut inner.phase, probe) {
            (Phase::HalfOpen { .. }, true) if failed => {
                inner.phase = Phase::Open {
                    until: now + spec.open_for.as_millis() as u64,
                };
                Some(Transition {
                    to: State::Open,
                    reason: "a probe to the new service failed".into(),
                })
            }
            (Phase::HalfOpen { succeeded, .. }, true) => {
                *succeeded += 1;
                (*succeeded >= spec.probes).then(|| {
                    inner.phase = Phase::Closed;
                    inner.buckets = [Bucket::default(); BUCKETS];
                    Transition {
                        to: State::Closed,
                        reason: format!("{} probes in a row succeeded", spec.probes),
                    }
                })
            }
            (Phase::Closed, false) => {
                let bucket_ms = (spec.window.as_millis() as u64 / BUCKETS as u64).max(1);
                let epoch = now / bucket_ms;
                let b = &mut inner.buckets[(epoch % BUCKETS as u64) as usize];
                if b.epoch != epoch {
                    *b = Bucket {
                        epoch,
                        ..Bucket::default()
                    };
                }
                b.requests += 1;
                b.errors += u32::from(failed);
                let (requests, errors) = totals(&inner.buckets, epoch);
                let rate = f64::from(errors) / f64::from(requests.max(1));
                (requests >= spec.min_requests && rate > spec.error_rate).then(|| {
                    inner.phase = Phase::Open {
                        until: now + spec.open_for.as_millis() as u64,
                    };
                    Transition {
                        to: State::Open,
                        reason: format!(
                            "{errors} of {requests} requests to the new service failed in {:?} ({:.0}% > {:.0}%)",
                            spec.window,
                            rate * 100.0,
                            spec.error_rate * 100.0
                        ),
                    }
                })
            }
            // Answers to requests admitted before the state changed.
            _ => None,
        };
        if let Some(t) = &transition {
            inner.last = Some((now, t.clone()));
        }
        transition
    }

    pub fn status(&self, now: u64) -> Status {
        let inner = self.lock();
        let bucket_ms = (self.spec.window.as_millis() as u64 / BUCKETS as u64).max(1);
        let (requests, errors) = totals(&inner.buckets, now / bucket_ms);
        let state = match inner.phase {
            Phase::Closed => State::Closed,
            Phase::Open { until } if now < until => State::Open,
            // Due to probe: it does at the next request.
            Phase::Open { .. } | Phase::HalfOpen { .. } => State::HalfOpen,
        };
        Status {
            state,
            requests,
            errors,
            last_transition: inner.last.clone(),
        }
    }
}

/// Requests and errors in the buckets of the window that ends at `epoch`.
fn totals(buckets: &[Bucket; BUCKETS], epoch: u64) -> (u32, u32) {
    buckets
        .iter()
        .filter(|b| b.epoch + (BUCKETS as u64) > epoch && b.epoch <= epoch)
        .fold((0, 0), |(r, e), b| (r + b.requests, e + b.errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSpec {
            error_rate: 0.5,
            min_requests: 4,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
            probes: 2,
        })
    }

    #[test]
    fn opens_past_the_error_rate_once_enough_requests_were_seen() {
        let b = breaker();
        // At the rate exactly, it stays closed.
        for t in 0..4 {
            assert_eq!(b.record(t, false, t % 2 == 0), None);
        }
        let b = breaker();
        assert_eq!(b.admit(0).0, Admit::New { probe: false });
        assert_eq!(b.record(0, false, true), None);
        assert_eq!(b.record(10, false, true), None);
        assert_eq!(
            b.record(20, false, true),
            None,
            "3 requests: below min_requests"
        );
        let t = b.record(30, false, false).expect("3 of 4 failed: open");
        assert_eq!(t.to, State::Open);
        assert!(t.reason.contains("3 of 4"), "{}", t.reason);
        assert_eq!(b.admit(100).0, Admit::Legacy);
        assert_eq!(b.status(100).state, State::Open);
    }

    #[test]
    fn errors_leave_the_window_as_time_passes() {
        let b = breaker();
        for t in 0..3 {
            b.record(t, false, true);
        }
        // 11 s later the old errors are out of the 10 s window.
        for t in 0..3 {
            assert_eq!(b.record(11_000 + t, false, false), None);
        }
        assert_eq!(b.record(11_100, false, true), None);
        assert_eq!(b.status(11_100).requests, 4);
    }

    #[test]
    fn half_open_probes_close_or_reopen() {
        let b = breaker();
        for t in 0..4 {
            b.record(t, false, true);
        }
        assert_eq!(b.admit(4_999).0, Admit::Legacy);
        let (admit, moved) = b.admit(5_100);
        assert_eq!(admit, Admit::New { probe: true });
        assert_eq!(moved.map(|t| t.to), Some(State::HalfOpen));
        assert_eq!(b.admit(5_101).0, Admit::New { probe: true });
        assert_eq!(b.admit(5_102).0, Admit::Legacy, "only `probes` at a time");
        assert_eq!(b.record(5_200, true, false), None);
        let closed = b.record(5_300, true, false).expect("closes");
        assert_eq!(closed.to, State::Closed);
        assert_eq!(b.admit(5_400).0, Admit::New { probe: false });

        // Open again, and a failed probe reopens at once.
        for t in 0..4 {
            b.record(6_000 + t, false, true);
        }
        assert_eq!(b.admit(11_100).0, Admit::New { probe: true });
        let reopened = b.record(11_200, true, true).expect("reopens");
        assert_eq!(reopened.to, State::Open);
        assert_eq!(b.admit(11_300).0, Admit::Legacy);
    }
}
