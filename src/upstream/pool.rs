//! A pool: the endpoints of one upstream, their health, round-robin over the healthy ones.

use super::client::{self, UpstreamClient};
use super::health;
use super::spec::{EndpointSpec, UpstreamSpec};
use crate::metrics;
use prometheus::IntGauge;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// One endpoint and its live health.
pub struct Endpoint {
    pub spec: EndpointSpec,
    healthy: AtomicBool,
    gauge: IntGauge,
}

impl Endpoint {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// A live upstream pool. Dropping it stops its health checks.
pub struct Pool {
    spec: UpstreamSpec,
    client: UpstreamClient,
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
                Endpoint {
                    spec: e.clone(),
                    healthy: AtomicBool::new(true),
                    gauge,
                }
            })
            .collect();
        let client = client::build(&spec);
        let shadow_client = client::build(&spec);
        let health = spec.health_check.clone();
        Arc::new_cyclic(|weak| Pool {
            health_task: health.map(|h| tokio::spawn(health::run(weak.clone(), h))),
            spec,
            client,
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

    /// The next endpoint, round-robin over the healthy ones. When none is healthy, over
    /// all of them (Envoy's panic mode): a broken health check must not take the whole
    /// upstream out when it may still serve.
    pub fn pick(&self) -> &Endpoint {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.endpoints[(start + k) % n])
            .find(|e| e.is_healthy())
            .unwrap_or(&self.endpoints[start % n])
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(task) = &self.health_task {
            task.abort();
        }
    }
}
