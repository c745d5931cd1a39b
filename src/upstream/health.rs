//! Active health checks: the counting (pure) and the task that probes each endpoint.

use super::pool::Pool;
use super::spec::HealthCheckSpec;
use crate::body;
use bytes::Bytes;
use std::sync::Weak;
use std::time::Duration;

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

/// Probe every endpoint of the pool each interval until the pool is dropped.
pub async fn run(pool: Weak<Pool>, spec: HealthCheckSpec) {
    let endpoints = match pool.upgrade() {
        Some(p) => p.endpoints().len(),
        None => return,
    };
    let mut counters = vec![HealthCounter::default(); endpoints];
    let mut tick = tokio::time::interval(spec.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        // One endpoint after another: a handful each, each bounded by the check's
        // timeout, well inside one interval.
        for (i, counter) in counters.iter_mut().enumerate() {
            let ok = probe(&pool, i, &spec).await;
            if let Some(healthy) = counter.record(ok, &spec) {
                pool.set_healthy(i, healthy);
            }
        }
    }
}

async fn probe(pool: &Pool, index: usize, spec: &HealthCheckSpec) -> bool {
    let endpoint = &pool.endpoints()[index];
    let uri = format!("{}{}", endpoint.spec, spec.path);
    let mut req = http::Request::get(uri);
    if let Some(host) = &pool.spec().host {
        req = req.header(http::header::HOST, host.clone());
    }
    req = req.header(http::header::USER_AGENT, "banyan-health-check");
    let Ok(req) = req.body(body::full(Bytes::new())) else {
        return false;
    };
    let call = pool.client().request(req);
    match tokio::time::timeout(spec.timeout, call).await {
        Ok(Ok(resp)) => {
            let ok = resp.status().is_success() || resp.status().is_redirection();
            // Read the body so the connection can be reused.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                http_body_util::BodyExt::collect(resp.into_body()),
            )
            .await;
            ok
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
