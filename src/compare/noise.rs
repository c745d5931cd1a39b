//! Telling regressions from noise, as Diffy does: per field, how often the primary and
//! the shadow differ (raw) against how often two copies of the primary differ (noise).
//! A field is a regression only when raw clearly exceeds noise, relatively and
//! absolutely, over enough samples.

use serde::Serialize;
use std::collections::HashMap;

/// When a field's differences count as a regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// |raw - noise| / (raw + noise) must exceed this (default 20%).
    pub relative: f64,
    /// |raw - noise| / compared must exceed this (default 0.03%).
    pub absolute: f64,
    /// Comparisons needed before any verdict.
    pub min_samples: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            relative: 0.20,
            absolute: 0.0003,
            min_samples: 200,
        }
    }
}

/// What a field's counts say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Regression,
    Noise,
    InsufficientData,
}

/// Counts for one field of one route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FieldCounts {
    /// Comparisons in which primary and shadow differed here.
    pub raw: u64,
    /// Comparisons in which primary and secondary differed here.
    pub noise: u64,
}

/// Counts for one route.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteCounts {
    /// Comparisons made (primary vs shadow).
    pub compared: u64,
    pub matches: u64,
    pub mismatches: u64,
    pub errors: u64,
    pub fields: HashMap<String, FieldCounts>,
}

impl RouteCounts {
    /// Count one comparison: the fields that differed from the shadow and from the
    /// secondary (the same field counts once per comparison).
    pub fn record<'a>(
        &mut self,
        raw: impl IntoIterator<Item = &'a str>,
        noise: impl IntoIterator<Item = &'a str>,
        max_fields: usize,
    ) {
        self.compared += 1;
        let mut raw: Vec<&str> = raw.into_iter().collect();
        let mut noise: Vec<&str> = noise.into_iter().collect();
        raw.sort_unstable();
        raw.dedup();
        noise.sort_unstable();
        noise.dedup();
        if raw.is_empty() {
            self.matches += 1;
        } else {
            self.mismatches += 1;
        }
        for f in raw {
            self.field(f, max_fields).raw += 1;
        }
        for f in noise {
            self.field(f, max_fields).noise += 1;
        }
    }

    fn field(&mut self, name: &str, max_fields: usize) -> &mut FieldCounts {
        let key = if self.fields.contains_key(name) || self.fields.len() < max_fields {
            name
        } else {
            OTHER_FIELD
        };
        self.fields.entry(key.to_string()).or_default()
    }
}

/// Where fields past the per-route cap are counted.
pub const OTHER_FIELD: &str = "_other";

pub fn verdict(counts: FieldCounts, compared: u64, t: &Thresholds) -> Verdict {
    if compared < t.min_samples {
        return Verdict::InsufficientData;
    }
    let (raw, noise) = (counts.raw as f64, counts.noise as f64);
    let excess = raw - noise;
    if excess > 0.0 && excess / (raw + noise) > t.relative && excess / compared as f64 > t.absolute
    {
        Verdict::Regression
    } else {
        Verdict::Noise
    }
}

/// The 95% Wilson score interval of a proportion: sound for small counts and rates near
/// 0 or 1, where the normal approximation is not.
pub fn wilson(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let z = 1.959_963_984_540_054_f64;
    let n = trials as f64;
    let p = successes as f64 / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// The rule that would silence a noisy field.
pub fn suggested_ignore(field: &str) -> String {
    format!("compare.ignore = [\"{field}\"]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let t = Thresholds::default();
        let v = |raw, noise, compared| verdict(FieldCounts { raw, noise }, compared, &t);
        assert_eq!(v(100, 0, 2000), Verdict::Regression, "5% with no noise");
        assert_eq!(
            v(2000, 1990, 2000),
            Verdict::Noise,
            "as noisy as the primary itself"
        );
        assert_eq!(v(1000, 600, 2000), Verdict::Regression, "25% above noise");
        assert_eq!(
            v(1000, 800, 2000),
            Verdict::Noise,
            "11% above noise: under the relative bar"
        );
        assert_eq!(
            v(1, 0, 100_000),
            Verdict::Noise,
            "0.001%: under the absolute bar"
        );
        assert_eq!(v(100, 0, 50), Verdict::InsufficientData);
    }

    #[test]
    fn wilson_interval() {
        let (lo, hi) = wilson(95, 100).expect("interval");
        assert!(
            (lo - 0.8883).abs() < 0.001 && (hi - 0.9785).abs() < 0.001,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(0, 10).expect("interval");
        assert_eq!(lo, 0.0);
        assert!((hi - 0.2775).abs() < 0.001, "{hi}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn fields_past_the_cap_are_pooled() {
        let mut c = RouteCounts::default();
        c.record(["$.a", "$.b", "$.a"], ["$.c"], 2);
        c.record(["$.d"], [], 2);
        assert_eq!(c.compared, 2);
        assert_eq!(c.fields["$.a"].raw, 1, "counted once per comparison");
        assert_eq!(c.fields["$.b"].raw, 1);
        assert_eq!(c.fields[OTHER_FIELD].noise, 1);
        assert_eq!(c.fields[OTHER_FIELD].raw, 1);
        assert_eq!(c.mismatches, 2);
    }
}
