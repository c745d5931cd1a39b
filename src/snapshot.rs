//! One immutable version of everything a request needs: the compiled config, the live
//! upstream pools and the pre-resolved metric handles. Swapped whole, never mutated.

use crate::config::Config;
use crate::metrics::{RouteUpstreamMetrics, DEFAULT_ROUTE};
use crate::routing::{Action, UpstreamId};
use crate::upstream::Pool;
use smallvec::SmallVec;
use std::sync::Arc;

pub struct Snapshot {
    pub config: Config,
    /// Same order as `config.upstreams`.
    pub pools: Vec<Arc<Pool>>,
    /// One per route, then one for the default upstream.
    route_metrics: Vec<RouteMetrics>,
}

/// Metric handles of one route, for each upstream it can reach.
pub struct RouteMetrics {
    pub name: String,
    pub live_key: u64,
    targets: SmallVec<[(UpstreamId, RouteUpstreamMetrics); 3]>,
}

impl RouteMetrics {
    fn new(name: &str, upstreams: &[UpstreamId], config: &Config) -> Self {
        let mut targets = SmallVec::new();
        for &u in upstreams {
            if !targets.iter().any(|(id, _)| *id == u) {
                targets.push((
                    u,
                    RouteUpstreamMetrics::new(name, &config.upstreams[u].name),
                ));
            }
        }
        RouteMetrics {
            name: name.to_string(),
            live_key: crate::metrics::live_key(name),
            targets,
        }
    }

    pub fn for_upstream(&self, upstream: UpstreamId) -> Option<&RouteUpstreamMetrics> {
        self.targets
            .iter()
            .find(|(id, _)| *id == upstream)
            .map(|(_, m)| m)
    }
}

impl Snapshot {
    /// Start the pools of a config, reusing those of `previous` whose definition did not
    /// change (they keep their connections and health state).
    pub fn build(config: Config, previous: Option<&Snapshot>) -> Snapshot {
        let pools = config
            .upstreams
            .iter()
            .map(|spec| {
                previous
                    .and_then(|p| p.pools.iter().find(|pool| pool.spec() == spec))
                    .cloned()
                    .unwrap_or_else(|| Pool::start(spec.clone()))
            })
            .collect();
        let mut route_metrics: Vec<RouteMetrics> = config
            .routes
            .routes()
            .iter()
            .map(|r| {
                let mut reach: SmallVec<[UpstreamId; 3]> = match &r.action {
                    Action::Forward(u) => [*u].into_iter().collect(),
                    Action::Split(s) => [s.base, s.to].into_iter().collect(),
                };
                reach.extend(r.fallback);
                RouteMetrics::new(&r.name, &reach, &config)
            })
            .collect();
        route_metrics.push(RouteMetrics::new(
            DEFAULT_ROUTE,
            &[config.routes.default_upstream()],
            &config,
        ));
        Snapshot {
            config,
            pools,
            route_metrics,
        }
    }

    pub fn route_metrics(&self, route: Option<usize>) -> &RouteMetrics {
        let default = self.route_metrics.len() - 1;
        &self.route_metrics[route.unwrap_or(default)]
    }

    pub fn pool(&self, id: UpstreamId) -> &Pool {
        &self.pools[id]
    }
}
