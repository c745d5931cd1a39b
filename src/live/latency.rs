//! Latency distributions that can be subtracted and merged: a log-linear histogram (8
//! buckets per doubling, 12.5% wide at most) of microseconds, counted with one atomic add
//! and no floating point. The ramp takes a reading at the start of a step and subtracts
//! it later, so it judges the step's own requests; readings of several instances add up.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets per doubling of the value.
const SUB: u64 = 8;
const SUB_BITS: u32 = 3;
/// Values are capped below 2^36 µs (19 hours).
const MAX_EXPONENT: u32 = 35;
/// Buckets in all: the first SUB values one each, then SUB per doubling.
pub const BUCKETS: usize = (SUB * (MAX_EXPONENT as u64 - SUB_BITS as u64 + 2)) as usize;

/// The bucket of a value in microseconds.
fn bucket_of(micros: u64) -> usize {
    let v = micros.min((1 << (MAX_EXPONENT + 1)) - 1);
    if v < SUB {
        return v as usize;
    }
    let exponent = 63 - v.leading_zeros();
    let sub = (v >> (exponent - SUB_BITS)) & (SUB - 1);
    (SUB * u64::from(exponent - SUB_BITS + 1) + sub) as usize
}

/// The values bucket `b` holds, in microseconds: [low, high).
fn bounds_of(b: usize) -> (f64, f64) {
    let b = b as u64;
    if b < SUB {
        return (b as f64, (b + 1) as f64);
    }
    let exponent = b / SUB + u64::from(SUB_BITS) - 1;
    let width = 1u64 << (exponent - u64::from(SUB_BITS));
    let low = (SUB + b % SUB) * width;
    (low as f64, (low + width) as f64)
}

/// Counted in place by the data plane.
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl LatencyHistogram {
    pub fn record(&self, seconds: f64) {
        // Saturating float-to-int: negative or NaN counts as 0.
        let micros = (seconds * 1e6) as u64;
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> LatencyCounts {
        LatencyCounts {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A reading: counts per bucket. Empty (no buckets) reads as all zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyCounts {
    buckets: Vec<u64>,
}

impl LatencyCounts {
    /// Counts of values in microseconds, for tests and simulations.
    pub fn of_micros(values: impl IntoIterator<Item = u64>) -> Self {
        let mut buckets = vec![0; BUCKETS];
        for v in values {
            buckets[bucket_of(v)] += 1;
        }
        LatencyCounts { buckets }
    }

    /// Counts per bucket, as stored and shared (fleet mode).
    pub fn buckets(&self) -> &[u64] {
        &self.buckets
    }

    /// A reading from stored counts per bucket.
    pub fn from_buckets(buckets: Vec<u64>) -> Self {
        LatencyCounts { buckets }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// What was counted since `earlier` (a reading of the same histogram).
    pub fn since(&self, earlier: &LatencyCounts) -> LatencyCounts {
        LatencyCounts {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// Both readings together (two sides, or two instances).
    pub fn merged(&self, other: &LatencyCounts) -> LatencyCounts {
        let len = self.buckets.len().max(other.buckets.len());
        let at = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
        LatencyCounts {
            buckets: (0..len)
                .map(|i| at(&self.buckets, i) + at(&other.buckets, i))
                .collect(),
        }
    }

    /// Add `n` values of `micros` (simulations).
    pub fn add(&mut self, micros: u64, n: u64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        self.buckets[bucket_of(micros)] += n;
    }

    /// The value of the `rank`-th smallest (1-based) in milliseconds, read off the
    /// histogram by linear interpolation within its bucket; None past the count.
    pub fn at_rank_ms(&self, rank: u64) -> Option<f64> {
        if rank == 0 {
            return None;
        }
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            if *n > 0 && seen + n >= rank {
                let (low, high) = bounds_of(b);
                let within = (rank - seen) as f64 / *n as f64;
                return Some((low + (high - low) * within) / 1000.0);
            }
            seen += n;
        }
        None
    }

    /// The `q` quantile (0 < q < 1) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n = self.count();
        let rank = (q * n as f64).ceil().max(1.0) as u64;
        self.at_rank_ms(rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_at_most_an_eighth_wide() {
        let mut last = 0;
        for v in (0..5000).chain([1 << 20, (1 << 20) + 1, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < BUCKETS, "{v}");
            let (low, high) = bounds_of(b);
            if v < 1 << 36 {
                assert!(
                    low <= v as f64 && (v as f64) < high,
                    "{v} in [{low}, {high})"
                );
                assert!(high - low <= (low / 8.0).max(1.0), "{v}: [{low}, {high})");
            }
            if v < 5000 {
                assert!(b == last || b == last + 1, "{v}: {b} after {last}");
                last = b;
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_read_within_a_bucket_of_the_truth() {
        let h = LatencyHistogram::default();
        for i in 1..=1000 {
            h.record(f64::from(i) / 1e4); // 0.1 ms to 100 ms
        }
        let r = h.read();
        assert_eq!(r.count(), 1000);
        for (q, truth) in [(0.5, 50.0), (0.9, 90.0), (0.99, 99.0)] {
            let got = r.quantile_ms(q).expect("quantile");
            assert!((got - truth).abs() / truth < 0.13, "p{q}: {got} vs {truth}");
        }
        assert_eq!(r.at_rank_ms(1001), None);
    }

    #[test]
    fn readings_subtract_and_merge() {
        let h = LatencyHistogram::default();
        h.record(0.002);
        let before = h.read();
        h.record(0.004);
        h.record(0.004);
        let step = h.read().since(&before);
        assert_eq!(step.count(), 2);
        assert!((step.quantile_ms(0.5).expect("p50") - 4.0).abs() < 0.5);
        assert_eq!(step.merged(&before).count(), 3);
        assert_eq!(LatencyCounts::default().since(&before).count(), 0);
    }
}
