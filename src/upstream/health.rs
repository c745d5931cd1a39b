//! Active health checks, the counting: consecutive probe results and the verdict they
//! lead to. Pure; the pool runs the probes (pool.rs).

use super::spec::HealthCheckSpec;

/// Consecutive results of one endpoint and the verdict they lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCounter {
    pub healthy: bool,
    successes: u32,
    failures: u32,
}

impl Default for HealthCounter {
    /// Endpoints start healthy: a restart must not refuse traffic until checks pass.
    fn default() -> Self {
        HealthCounter {
            healthy: true,
            successes: 0,
            failures: 0,
        }
    }
}

impl HealthCounter {
    /// Count one probe result; returns the new verdict when it changed.
    pub fn record(&mut self, ok: bool, spec: &HealthCheckSpec) -> Option<bool> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if !self.healthy && self.successes >= spec.healthy_threshold {
                self.healthy = true;
                return Some(true);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.healthy && self.failures >= spec.unhealthy_threshold {
                self.healthy = false;
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn thresholds_flip_the_verdict() {
        let spec = HealthCheckSpec {
            path: "/h".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        };
        let mut c = HealthCounter::default();
        assert_eq!(c.record(false, &spec), None);
        assert_eq!(c.record(false, &spec), None);
        assert_eq!(c.record(true, &spec), None);
        assert_eq!(c.record(false, &spec), None);
        assert_eq!(c.record(false, &spec), None);
        assert_eq!(c.record(false, &spec), Some(false));
        assert_eq!(c.record(true, &spec), None);
        assert_eq!(c.record(true, &spec), Some(true));
        assert!(c.healthy);
    }
}
