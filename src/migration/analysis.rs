//! The statistics of canary analysis, pure: confidence bounds for a rate, for the
//! difference of two rates, and for a quantile of a latency distribution. A gate uses
//! them to say "worse, beyond chance", "not worse, beyond chance" or "cannot tell yet",
//! never to compare two point estimates.

use crate::live::latency::LatencyCounts;
use statrs::distribution::{ContinuousCDF, Normal};

/// The one-sided z for a confidence (0.95 -> 1.645).
pub fn z_for(confidence: f64) -> f64 {
    // A standard normal always builds; its quantile is finite inside (0, 1).
    Normal::standard()
        .inverse_cdf(confidence.clamp(0.5, 0.999_999))
        .max(0.0)
}

/// The Wilson score interval of `successes` of `n` at `z`.
pub fn wilson(successes: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let denom = 1.0 + z2 / n;
    Some((
        ((centre - spread) / denom).max(0.0),
        ((centre + spread) / denom).min(1.0),
    ))
}

/// Bounds, at `z` each, on `p1 - p2`, the difference of two rates (`x1` of `n1`, `x2` of
/// `n2`): Newcombe's hybrid score interval, which keeps its coverage with few events,
/// where the textbook one (estimate +- z * standard error) claims far too much.
pub fn difference(x1: u64, n1: u64, x2: u64, n2: u64, z: f64) -> Option<(f64, f64)> {
    let (l1, u1) = wilson(x1, n1, z)?;
    let (l2, u2) = wilson(x2, n2, z)?;
    let p1 = x1 as f64 / n1 as f64;
    let p2 = x2 as f64 / n2 as f64;
    let d = p1 - p2;
    Some((
        d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
        d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
    ))
}

/// The least samples a side needs before its `q` quantile is judged: enough that about
/// ten of them lie above it (p50: 20, p90: 100, p99: 1000). Fewer, and the quantile is
/// one of the slowest few requests: one slow request would move it.
pub fn min_samples(q: f64) -> u64 {
    // Less a hair: 10 / (1 - 0.9) is 100.00000000000001 in floating point.
    (10.0 / (1.0 - q) - 1e-9).ceil() as u64
}

/// A quantile's estimate and its bounds at `z` each, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantileBounds {
    pub low: f64,
    pub estimate: f64,
    /// None when the sample is too small to bound the quantile from above.
    pub high: Option<f64>,
}

/// The `q` quantile of `counts` with distribution-free bounds: the order statistics
/// whose ranks bound it, from the binomial distribution of how many samples fall below
/// the true quantile (normal approximation).
pub fn quantile_bounds(counts: &LatencyCounts, q: f64, z: f64) -> Option<QuantileBounds> {
    let n = counts.count();
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let spread = z * (nf * q * (1.0 - q)).sqrt();
    let low_rank = (nf * q - spread).floor().max(1.0) as u64;
    let high_rank = (nf * q + spread).ceil() as u64 + 1;
    Some(QuantileBounds {
        low: counts.at_rank_ms(low_rank)?,
        estimate: counts.quantile_ms(q)?,
        high: if high_rank <= n {
            counts.at_rank_ms(high_rank)
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_values() {
        assert!((z_for(0.95) - 1.6449).abs() < 1e-3);
        assert!((z_for(0.975) - 1.96).abs() < 1e-3);
        assert!((z_for(0.99) - 2.3263).abs() < 1e-3);
    }

    #[test]
    fn wilson_matches_published_values() {
        // 0 of 10 at 95% (two-sided): 0 to 0.2775.
        let (low, high) = wilson(0, 10, 1.96).expect("interval");
        assert_eq!(low, 0.0);
        assert!((high - 0.2775).abs() < 1e-3, "{high}");
        let (low, high) = wilson(81, 263, 1.96).expect("interval");
        assert!((low - 0.2553).abs() < 1e-3 && (high - 0.3662).abs() < 1e-3);
        assert_eq!(wilson(0, 0, 1.96), None);
    }

    #[test]
    fn newcombe_matches_his_worked_example() {
        // Newcombe (1998), example (a): 56/70 - 48/80, 95%: 0.0524 to 0.3339.
        let (low, high) = difference(56, 70, 48, 80, 1.96).expect("interval");
        assert!((low - 0.0524).abs() < 1e-3, "{low}");
        assert!((high - 0.3339).abs() < 1e-3, "{high}");
        // Few events: 0/10 against 0/20 is not a difference, but bounds it wide.
        let (low, high) = difference(0, 10, 0, 20, 1.96).expect("interval");
        assert!(low < 0.0 && high > 0.2);
    }

    #[test]
    fn quantile_bounds_contain_the_quantile_and_narrow_with_samples() {
        let small = LatencyCounts::of_micros((1..=100).map(|i| i * 1000));
        let b = quantile_bounds(&small, 0.9, 1.645).expect("bounds");
        assert!(b.low < 90.0 && b.high.expect("high") > 90.0, "{b:?}");
        assert!((b.estimate - 90.0).abs() < 6.0, "{b:?}");
        let large = LatencyCounts::of_micros((1..=10_000).map(|i| i * 10));
        let l = quantile_bounds(&large, 0.9, 1.645).expect("bounds");
        let width = |b: QuantileBounds| b.high.expect("high") - b.low;
        assert!(width(l) < width(b) / 3.0, "{l:?} vs {b:?}");
        // Ten samples cannot bound a p99 from above.
        let ten = LatencyCounts::of_micros((1..=10).map(|i| i * 1000));
        assert_eq!(
            quantile_bounds(&ten, 0.99, 1.645).expect("bounds").high,
            None
        );
        assert_eq!(min_samples(0.99), 1000);
        assert_eq!(min_samples(0.9), 100);
        assert_eq!(min_samples(0.5), 20);
    }
}
