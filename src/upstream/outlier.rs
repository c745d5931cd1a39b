//! Passive outlier detection: an endpoint that fails N requests in a row is ejected
//! from balancing for a back-off period that grows with each ejection (as Envoy's
//! `consecutive_gateway_failure`). Lock-free: the request path only does atomics.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// `outlier_detection = { ... }` of an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutlierSpec {
    /// Failures in a row that eject an endpoint.
    pub consecutive_failures: u32,
    /// The first ejection's length; the n-th lasts n times as long.
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    /// At most this share of a pool's endpoints is ejected at once (at least one may be).
    pub max_ejected_percent: u32,
}

impl Default for OutlierSpec {
    fn default() -> Self {
        OutlierSpec {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 50,
        }
    }
}

pub use crate::clock::now_ms;

/// One endpoint's record.
#[derive(Debug, Default)]
pub struct Outlier {
    consecutive: AtomicU32,
    /// Ejected until this time (ms on `now_ms`'s clock); 0 when never ejected.
    ejected_until: AtomicU64,
    /// Ejections that count toward the next back-off.
    ejections: AtomicU32,
}

/// What a recorded failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Nothing,
    /// The endpoint was ejected for this long.
    Ejected(Duration),
}

impl Outlier {
    pub fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Time left in the current ejection.
    pub fn ejected_for(&self, now: u64) -> Option<Duration> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        (until > now).then(|| Duration::from_millis(until - now))
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(Ordering::Relaxed)
    }

    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    pub fn success(&self, now: u64, spec: &OutlierSpec) {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        // Back for a whole base period and serving: the back-off starts over.
        let until = self.ejected_until.load(Ordering::Relaxed);
        if self.ejections.load(Ordering::Relaxed) != 0
            && now >= until + spec.base_ejection.as_millis() as u64
        {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// Count a failure; eject when it is the N-th in a row and `may_eject` (the pool's
    /// cap on ejected endpoints) allows.
    pub fn failure(&self, now: u64, spec: &OutlierSpec, may_eject: bool) -> Recorded {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if n < spec.consecutive_failures || self.is_ejected(now) || !may_eject {
            return Recorded::Nothing;
        }
        let times = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let length = spec
            .base_ejection
            .saturating_mul(times)
            .min(spec.max_ejection);
        self.ejected_until
            .store(now + length.as_millis() as u64, Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        Recorded::Ejected(length)
    }
}

/// Whether one more of `total` endpoints may be ejected when `ejected` already are.
pub fn may_eject(ejected: usize, total: usize, max_percent: u32) -> bool {
    ejected == 0 || (ejected + 1) * 100 <= total * max_percent as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> OutlierSpec {
        OutlierSpec {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejected_percent: 50,
        }
    }

    #[test]
    fn n_failures_in_a_row_eject_with_growing_back_off() {
        let (o, s) = (Outlier::default(), spec());
        assert_eq!(o.failure(1000, &s, true), Recorded::Nothing);
        assert_eq!(o.failure(1000, &s, true), Recorded::Nothing);
        assert_eq!(
            o.failure(1000, &s, true),
            Recorded::Ejected(Duration::from_secs(10))
        );
        assert!(o.is_ejected(10_999));
        assert!(!o.is_ejected(11_000));
        // Back, and failing again at once: twice as long, then capped.
        for _ in 0..2 {
            o.failure(11_000, &s, true);
        }
        assert_eq!(
            o.failure(11_000, &s, true),
            Recorded::Ejected(Duration::from_secs(20))
        );
        for _ in 0..2 {
            o.failure(31_000, &s, true);
        }
        assert_eq!(
            o.failure(31_000, &s, true),
            Recorded::Ejected(Duration::from_secs(25))
        );
    }

    #[test]
    fn a_success_breaks_the_run_and_a_long_good_spell_resets_the_back_off() {
        let (o, s) = (Outlier::default(), spec());
        o.failure(0, &s, true);
        o.failure(0, &s, true);
        o.success(0, &s);
        assert_eq!(o.failure(0, &s, true), Recorded::Nothing);
        o.failure(0, &s, true);
        assert!(matches!(o.failure(0, &s, true), Recorded::Ejected(_)));
        assert_eq!(o.ejections(), 1);
        o.success(10_000, &s);
        assert_eq!(o.ejections(), 1, "just back: the back-off is kept");
        o.success(20_001, &s);
        assert_eq!(o.ejections(), 0);
    }

    #[test]
    fn the_cap_keeps_most_endpoints_in() {
        let (o, s) = (Outlier::default(), spec());
        for _ in 0..5 {
            assert_eq!(o.failure(0, &s, false), Recorded::Nothing);
        }
        assert!(may_eject(0, 1, 50), "one endpoint may always be ejected");
        assert!(may_eject(1, 4, 50));
        assert!(!may_eject(2, 4, 50));
        assert!(!may_eject(1, 2, 50));
    }
}
