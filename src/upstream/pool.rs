//! A pool: the endpoints of one upstream, their health, round-robin over the healthy ones.

use super::client::{self, UpstreamClient};
use super::health::HealthCounter;
use super::outlier::{self, Outlier, Recorded};
use super::spec::HealthCheckSpec;
use super::spec::{EndpointSpec, UpstreamSpec};
use crate::metrics;
use bytes::Bytes;
use prometheus::IntGauge;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;

/// One endpoint, its live health (active checks) and its outlier record (passive).
pub struct Endpoint {
    pub spec: EndpointSpec,
    healthy: AtomicBool,
    gauge: IntGauge,
    pub outlier: Outlier,
    ejected_gauge: IntGauge,
}

impl Endpoint {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Healthy and not ejected: a candidate for the next request.
    fn is_available(&self, now: u64) -> bool {
        self.is_healthy() && !self.outlier.is_ejected(now)
    }
}

/// A live upstream pool. Dropping it stops its health checks.
pub struct Pool {
    spec: UpstreamSpec,
    client: UpstreamClient,
    /// banyan's own HTTP/1.1 client, for the requests it carries (plain HTTP/1.1
    /// upstreams, bodies in memory); None for TLS and HTTP/2 upstreams.
    fast: Option<super::h1::Client>,
    /// Shadow copies have connections of their own: a slow shadow never holds a
    /// connection live traffic to the same upstream needs.
    shadow_client: UpstreamClient,
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    health_task: Option<JoinHandle<()>>,
}

impl Pool {
    /// Build the pool and start its health checks (needs a tokio runtime).
    pub fn start(spec: UpstreamSpec) -> Arc<Pool> {
        let endpoints = spec
            .endpoints
            .iter()
            .map(|e| {
                let gauge = metrics::upstream_healthy(&spec.name, &e.to_string());
                gauge.set(1);
                let ejected_gauge = metrics::upstream_ejected(&spec.name, &e.to_string());
                ejected_gauge.set(0);
                Endpoint {
                    spec: e.clone(),
                    healthy: AtomicBool::new(true),
                    gauge,
                    outlier: Outlier::default(),
                    ejected_gauge,
                }
            })
            .collect();
        let client = client::build(&spec);
        let fast = super::h1::Client::for_upstream(&spec);
        let shadow_client = client::build(&spec);
        let health = spec.health_check.clone();
        Arc::new_cyclic(|weak| Pool {
            health_task: health.map(|h| tokio::spawn(run_health_checks(weak.clone(), h))),
            spec,
            client,
            fast,
            shadow_client,
            endpoints,
            next: AtomicUsize::new(0),
        })
    }

    pub fn spec(&self) -> &UpstreamSpec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// banyan's own HTTP/1.1 client, when this upstream is one it carries.
    pub fn fast_client(&self) -> Option<&super::h1::Client> {
        self.fast.as_ref()
    }

    pub fn shadow_client(&self) -> &UpstreamClient {
        &self.shadow_client
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    pub fn set_healthy(&self, index: usize, healthy: bool) {
        if let Some(e) = self.endpoints.get(index) {
            e.healthy.store(healthy, Ordering::Relaxed);
            e.gauge.set(i64::from(healthy));
            tracing::warn!(upstream = %self.spec.name, endpoint = %e.spec, healthy, "endpoint health changed");
        }
    }

    /// True when every endpoint failed its health check.
    pub fn all_unhealthy(&self) -> bool {
        !self.endpoints.iter().any(Endpoint::is_healthy)
    }

    /// The next endpoint, round-robin over those healthy and not ejected, skipping
    /// `tried` when another is left. When none is available, over all of them (Envoy's
    /// panic mode): a broken health check must not take out an upstream that may serve.
    pub fn pick(&self, tried: &[usize]) -> usize {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Without outlier detection nothing is ever ejected: no clock to read.
        let now = if self.spec.outlier.is_some() {
            outlier::now_ms()
        } else {
            0
        };
        let order = (0..n).map(|k| (start + k) % n);
        let fresh = |i: &usize| !tried.contains(i);
        order
            .clone()
            .find(|i| fresh(i) && self.endpoints[*i].is_available(now))
            .or_else(|| order.clone().find(|i| self.endpoints[*i].is_available(now)))
            .or_else(|| order.clone().find(fresh))
            .unwrap_or(start % n)
    }

    /// Count how a request to endpoint `index` went, for outlier detection.
    pub fn record(&self, index: usize, failed: bool) {
        let (Some(spec), Some(endpoint)) = (&self.spec.outlier, self.endpoints.get(index)) else {
            return;
        };
        let now = outlier::now_ms();
        if !failed {
            endpoint.outlier.success(now, spec);
            return;
        }
        let ejected = self
            .endpoints
            .iter()
            .filter(|e| e.outlier.is_ejected(now))
            .count();
        let may = outlier::may_eject(ejected, self.endpoints.len(), spec.max_ejected_percent);
        if let Recorded::Ejected(length) = endpoint.outlier.failure(now, spec, may) {
            endpoint.ejected_gauge.set(1);
            metrics::outlier_ejection(&self.spec.name, &endpoint.spec.to_string());
            tracing::warn!(upstream = %self.spec.name, endpoint = %endpoint.spec, seconds = length.as_secs_f64(), "endpoint ejected after consecutive failures");
            let gauge = endpoint.ejected_gauge.clone();
            tokio::spawn(async move {
                tokio::time::sleep(length).await;
                gauge.set(0);
            });
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(task) = &self.health_task {
            task.abort();
        }
    }
}

/// Probe every endpoint of the pool each interval until the pool is dropped.
async fn run_health_checks(pool: Weak<Pool>, spec: HealthCheckSpec) {
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
    let Ok(req) = req.body(crate::body::full(Bytes::new())) else {
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
