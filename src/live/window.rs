//! Figures over the last minutes without locks: a ring of per-minute slots, each with a
//! request count, an error count and a log-scale latency histogram. The admin API reads
//! them for "the last 1 and 15 minutes", the ramp for the minutes of a step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Minutes kept (one more than the longest window, for the minute in progress).
pub const SLOTS: usize = 16;
/// Latency buckets: bucket i holds latencies up to 50 µs * 1.5^i (about 50 µs to 1 h).
const BUCKETS: usize = 44;

struct Slot {
    minute: AtomicU64,
    count: AtomicU64,
    errors: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

impl Slot {
    fn new() -> Self {
        Slot {
            minute: AtomicU64::new(0),
            count: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The ring of one (route, side).
pub struct Window {
    slots: [Slot; SLOTS],
}

/// Figures over a span of minutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Figures {
    pub requests: u64,
    pub requests_per_second: f64,
    pub errors: u64,
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

fn bucket_of(seconds: f64) -> usize {
    let micros = (seconds * 1e6).max(1.0);
    let i = ((micros / 50.0).ln() / 1.5f64.ln()).ceil();
    (i.max(0.0) as usize).min(BUCKETS - 1)
}

fn bucket_upper_ms(i: usize) -> f64 {
    0.05 * 1.5f64.powi(i as i32)
}

pub fn now_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or(0)
}

impl Default for Window {
    fn default() -> Self {
        Window {
            slots: std::array::from_fn(|_| Slot::new()),
        }
    }
}

impl Window {
    /// Count one request at `minute`.
    pub fn record_at(&self, minute: u64, seconds: f64, error: bool) {
        let slot = &self.slots[(minute % SLOTS as u64) as usize];
        let seen = slot.minute.load(Ordering::Relaxed);
        if seen != minute
            && slot
                .minute
                .compare_exchange(seen, minute, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            // First in this minute: clear what the slot held 16 minutes ago. A request
            // racing this reset may be lost; the figures are for eyes, not billing.
            slot.count.store(0, Ordering::Relaxed);
            slot.errors.store(0, Ordering::Relaxed);
            for b in &slot.latency {
                b.store(0, Ordering::Relaxed);
            }
        }
        slot.count.fetch_add(1, Ordering::Relaxed);
        if error {
            // Released after the count: a reader that sees this error sees its request.
            slot.errors.fetch_add(1, Ordering::Release);
        }
        slot.latency[bucket_of(seconds)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, seconds: f64, error: bool) {
        self.record_at(now_minute(), seconds, error);
    }

    /// Figures over the last `minutes` (the current one included).
    pub fn figures_at(&self, now: u64, minutes: u64) -> Figures {
        let mut f = Figures::default();
        let mut hist = [0u64; BUCKETS];
        for slot in &self.slots {
            let m = slot.minute.load(Ordering::Relaxed);
            if m + minutes <= now || m > now {
                continue;
            }
            // Errors first, as in `series_at`.
            f.errors += slot.errors.load(Ordering::Acquire);
            f.requests += slot.count.load(Ordering::Relaxed);
            for (h, b) in hist.iter_mut().zip(&slot.latency) {
                *h += b.load(Ordering::Relaxed);
            }
        }
        let seconds_covered = (minutes * 60) as f64;
        f.requests_per_second = f.requests as f64 / seconds_covered;
        f.error_rate = if f.requests == 0 {
            0.0
        } else {
            f.errors as f64 / f.requests as f64
        };
        let total: u64 = hist.iter().sum();
        let quantile = |q: f64| -> Option<f64> {
            if total == 0 {
                return None;
            }
            let rank = (q * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            hist.iter().enumerate().find_map(|(i, n)| {
                seen += n;
                (seen >= rank).then(|| bucket_upper_ms(i))
            })
        };
        f.p50_ms = quantile(0.5);
        f.p99_ms = quantile(0.99);
        f
    }

    pub fn figures(&self, minutes: u64) -> Figures {
        self.figures_at(now_minute(), minutes)
    }

    /// Requests per minute over the last `minutes`, oldest first (for sparklines).
    pub fn series_at(&self, now: u64, minutes: u64) -> Vec<(u64, u64)> {
        (0..minutes)
            .rev()
            .map(|back| {
                let m = now.saturating_sub(back);
                let slot = &self.slots[(m % SLOTS as u64) as usize];
                let (count, errors) = if slot.minute.load(Ordering::Relaxed) == m {
                    // Errors first: read after them, the count holds every error read
                    // (read the other way, a request counted between the two loads could
                    // make errors exceed the count).
                    let errors = slot.errors.load(Ordering::Acquire);
                    (slot.count.load(Ordering::Relaxed), errors)
                } else {
                    (0, 0)
                };
                (count, errors)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_quantiles_and_expiry() {
        let w = Window::default();
        for i in 0..100 {
            w.record_at(1000, 0.001 * f64::from(i + 1), i >= 95);
        }
        let f = w.figures_at(1000, 1);
        assert_eq!((f.requests, f.errors), (100, 5));
        let p50 = f.p50_ms.expect("p50");
        assert!((40.0..80.0).contains(&p50), "{p50}");
        let p99 = f.p99_ms.expect("p99");
        assert!((99.0..160.0).contains(&p99), "{p99}");
        w.record_at(1005, 0.002, false);
        assert_eq!(w.figures_at(1005, 1).requests, 1);
        assert_eq!(w.figures_at(1005, 15).requests, 101);
        assert_eq!(w.figures_at(1020, 15).requests, 0, "all expired");
        w.record_at(1000 + SLOTS as u64, 0.001, false);
        assert_eq!(
            w.figures_at(1000 + SLOTS as u64, 1).requests,
            1,
            "slot reused"
        );
        let series = w.series_at(1005, 6);
        assert_eq!(series.len(), 6);
        assert_eq!(series[5], (1, 0));
    }
}
