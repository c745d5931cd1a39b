//! A cumulative latency histogram with fixed bounds, as Prometheus exports it: one atomic
//! add for the bucket and one for the sum per observation, no locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds in seconds (the `le` labels), the same for every (route, upstream).
pub const BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// What a histogram holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramReading {
    /// Cumulative counts, one per bound in `BOUNDS`.
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let i = BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int: a negative or NaN duration adds nothing.
        self.sum_nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }

    pub fn read(&self) -> HistogramReading {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(BOUNDS.len());
        for b in &self.buckets[..BOUNDS.len()] {
            running += b.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let count = running + self.buckets[BOUNDS.len()].load(Ordering::Relaxed);
        HistogramReading {
            cumulative,
            count,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::default();
        for s in [0.0005, 0.001, 0.003, 0.2, 40.0] {
            h.observe(s);
        }
        let r = h.read();
        assert_eq!(r.count, 5);
        assert_eq!(&r.cumulative[..4], &[2, 2, 3, 3]);
        assert_eq!(r.cumulative[7], 4, "0.2 s is under 0.25");
        assert_eq!(*r.cumulative.last().expect("last"), 4, "40 s is past 30 s");
        assert!((r.sum_seconds - 40.2045).abs() < 1e-6, "{}", r.sum_seconds);
    }
}
