//! One immutable version of everything a request needs: the compiled config, the live
//! upstream pools and the handles of the live figures. Swapped whole, never mutated.

use crate::access::entry::Names;
use crate::access::AccessLog;
use crate::breaker::Breaker;
use crate::config::Config;
use crate::live::{RouteFigures, SideFigures};
use crate::metrics::DEFAULT_ROUTE;
use crate::migration::state::{Counts, RampState};
use crate::routing::{Action, RouteId, UpstreamId};
use crate::shadow::{self, limits::ShadowLimits};
use crate::store::redact::Redactor;
use crate::store::{Retention, Store};
use crate::telemetry::Telemetry;
use crate::tls::server::CertSet;
use crate::upstream::Pool;
use smallvec::SmallVec;
use std::sync::Arc;

/// The live snapshot, shared by every connection and swapped whole on reload.
pub type SharedSnapshot = Arc<arc_swap::ArcSwap<Snapshot>>;

pub struct Snapshot {
    pub config: Config,
    /// Same order as `config.upstreams`.
    pub pools: Vec<Arc<Pool>>,
    /// One per route, then one for the default upstream.
    live: Vec<RouteLive>,
    /// What shadow copies share: pools, the diff store (open only when a route
    /// shadows), the `[shadow]` settings and limits.
    pub shadow: Arc<shadow::Env>,
    /// Why the store a route needs could not be opened.
    pub store_error: Option<String>,
    /// One per route: its circuit breaker, when it has one.
    breakers: Vec<Option<Arc<Breaker>>>,
    /// The HTTPS listener's certificates.
    pub certs: Option<Arc<CertSet>>,
    /// One per route: the state of its gated ramp, when it has one.
    ramps: Vec<Option<RampState>>,
    /// In a fleet, the fleet's diff store: every snapshot hands it to the next, and
    /// shadowing routes keep their samples there rather than in `shadow.store`'s file.
    fleet_store: Option<Arc<Store>>,
    /// The access log, when `[access_log]` is set, and what masks its query strings.
    pub access_log: Option<AccessLog>,
    /// The capture writer, when a route captures (and it could start).
    pub capture: Option<crate::capture::Env>,
    redactor: Redactor,
    /// The tracer, when `[tracing]` is set.
    pub telemetry: Option<Arc<Telemetry>>,
}

/// What an access-log entry's ids name.
impl Names for Snapshot {
    fn route(&self, route: RouteId) -> &str {
        &self.config.routes.route(route).name
    }

    fn upstream(&self, upstream: UpstreamId) -> &str {
        &self.config.upstreams[upstream].name
    }

    fn endpoint(&self, upstream: UpstreamId, index: usize) -> String {
        self.pools[upstream.index()]
            .endpoints()
            .get(index)
            .map_or_else(String::new, |e| e.spec.authority.to_string())
    }

    fn redacted_target(&self, target: &str) -> String {
        self.redactor.target(target)
    }
}

/// A route's live figures, resolved once per snapshot: the route's own and those of each
/// upstream it can reach, so the request path looks nothing up by name.
pub struct RouteLive {
    pub figures: Arc<RouteFigures>,
    /// The route's key in the per-second rates.
    pub live_key: u64,
    sides: SmallVec<[(UpstreamId, Arc<SideFigures>); 3]>,
}

impl RouteLive {
    fn new(name: &str, upstreams: &[UpstreamId], config: &Config) -> Self {
        let figures = crate::live::route(name);
        let mut sides = SmallVec::new();
        for &u in upstreams {
            if !sides.iter().any(|(id, _)| *id == u) {
                sides.push((u, figures.side(&config.upstreams[u].name)));
            }
        }
        RouteLive {
            figures,
            live_key: crate::metrics::live_key(name),
            sides,
        }
    }

    pub fn name(&self) -> &str {
        &self.figures.name
    }

    /// The figures of an upstream the route can reach, to keep past the request's head.
    pub fn shared_side(&self, upstream: UpstreamId) -> Option<Arc<SideFigures>> {
        self.sides
            .iter()
            .find(|(id, _)| *id == upstream)
            .map(|(_, s)| s.clone())
    }

    /// The figures of an upstream the route can reach.
    pub fn side(&self, upstream: UpstreamId) -> Option<&SideFigures> {
        self.sides
            .iter()
            .find(|(id, _)| *id == upstream)
            .map(|(_, s)| &**s)
    }
}

impl Snapshot {
    /// The diff store's health: None when no route shadows.
    pub fn store_health(&self) -> Option<crate::store::HealthReport> {
        match (&self.shadow.store, &self.store_error) {
            (Some(store), _) => Some(store.health()),
            (None, Some(error)) => Some(crate::store::HealthReport::unavailable(
                &self.config.shadow.store,
                error.clone(),
            )),
            (None, None) => None,
        }
    }

    /// Start the pools of a config, reusing those of `previous` whose definition did not
    /// change (they keep their connections and health state).
    pub fn build(config: Config, previous: Option<&Snapshot>) -> Snapshot {
        let fleet_store = previous.and_then(|p| p.fleet_store.clone());
        Snapshot::build_with(config, previous, fleet_store)
    }

    /// The first snapshot of a fleet member, whose samples go to `fleet_store`.
    pub fn first_in_fleet(config: Config, fleet_store: Arc<Store>) -> Snapshot {
        Snapshot::build_with(config, None, Some(fleet_store))
    }

    fn build_with(
        config: Config,
        previous: Option<&Snapshot>,
        fleet_store: Option<Arc<Store>>,
    ) -> Snapshot {
        let pools: Vec<Arc<Pool>> = config
            .upstreams
            .iter()
            .map(|spec| {
                previous
                    .and_then(|p| p.pools.iter().find(|pool| pool.spec() == spec))
                    .cloned()
                    .unwrap_or_else(|| Pool::start(spec.clone()))
            })
            .collect();
        let mut live: Vec<RouteLive> = config
            .routes
            .routes()
            .iter()
            .enumerate()
            .map(|(i, r)| RouteLive::new(&r.name, &config.reachable(RouteId::new(i)), &config))
            .collect();
        live.push(RouteLive::new(
            DEFAULT_ROUTE,
            &[config.routes.default_upstream()],
            &config,
        ));
        let shadowing: Vec<(String, Option<usize>)> = config
            .routes
            .routes()
            .iter()
            .zip(&config.features)
            .map(|(r, f)| (r.name.clone(), f.shadow.as_ref().map(|s| s.max_in_flight)))
            .collect();
        let shadow_limits = ShadowLimits::new(
            config.shadow.max_in_flight,
            &shadowing,
            previous.map(|p| &p.shadow.limits),
        );
        let (store, store_error) = if shadowing.iter().any(|(_, s)| s.is_some()) {
            let store = match &fleet_store {
                Some(store) => Ok(store.clone()),
                None => open_store(&config, previous),
            };
            match store {
                Ok(store) => (Some(store), None),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        let breakers = breakers(&config, previous);
        let certs = certificates(&config, previous);
        let shadow = Arc::new(shadow::Env {
            pools: pools.clone(),
            store,
            settings: config.shadow.clone(),
            limits: shadow_limits,
        });
        let access_log = config.access_log.as_ref().and_then(|settings| {
            let previous = previous.and_then(|p| p.access_log.as_ref());
            AccessLog::new(settings, previous)
                .inspect_err(|e| tracing::error!(error = %e, "cannot start the access log writer"))
                .ok()
        });
        let capture = config
            .features
            .iter()
            .any(|f| f.capture.is_some())
            .then(|| {
                let previous = previous.and_then(|p| p.capture.as_ref());
                crate::capture::Env::new(&config.capture, &config.shadow.redact, previous)
                    .inspect_err(|e| tracing::error!(dir = %config.capture.dir.display(), error = %e, "cannot start the capture writer: nothing is captured"))
                    .ok()
            })
            .flatten();
        let redactor = Redactor::new(&config.shadow.redact);
        let telemetry = config.tracing.as_ref().and_then(|settings| {
            let previous = previous.and_then(|p| p.telemetry.as_ref());
            Telemetry::new(settings, previous)
                .inspect_err(|e| tracing::error!(error = %e, "traces are not exported"))
                .ok()
        });
        let mut snapshot = Snapshot {
            config,
            pools,
            live,
            shadow,
            store_error,
            breakers,
            certs,
            ramps: Vec::new(),
            fleet_store,
            access_log,
            capture,
            redactor,
            telemetry,
        };
        snapshot.ramps = ramps(&snapshot, previous);
        snapshot
    }

    /// A route's live figures; the default upstream's for None.
    pub fn live(&self, route: Option<RouteId>) -> &RouteLive {
        let default = self.live.len() - 1;
        &self.live[route.map_or(default, RouteId::index)]
    }

    pub fn pool(&self, id: UpstreamId) -> &Pool {
        &self.pools[id]
    }

    /// The routes with a gated ramp, and their states.
    pub fn ramps(&self) -> impl Iterator<Item = (RouteId, &RampState)> {
        self.ramps
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (RouteId::new(i), r)))
    }

    /// What a migrated route has seen so far, cumulative: requests and 5xx of its new
    /// and legacy sides, and its comparisons.
    pub fn migration_counts(&self, route: RouteId) -> Counts {
        let Some(m) = &self.config.features(route).migration else {
            return Counts::default();
        };
        let live = self.live(Some(route));
        let side = |u| live.side(u).map(SideFigures::totals).unwrap_or_default();
        Counts::new(side(m.new), side(m.legacy), live.figures.shadow.totals())
    }

    pub fn ramp(&self, route: RouteId) -> Option<&RampState> {
        self.ramps.get(route.index())?.as_ref()
    }

    pub fn breaker(&self, route: Option<RouteId>) -> Option<&Breaker> {
        self.breakers.get(route?.index())?.as_deref()
    }
}

/// The ramps' states: carried from the previous snapshot when the route's migration is
/// unchanged (same fingerprint), else restored from the store, else new at 0%.
fn ramps(snap: &Snapshot, previous: Option<&Snapshot>) -> Vec<Option<RampState>> {
    let config = &snap.config;
    config
        .routes
        .with_ids()
        .map(|(i, r)| {
            let m = config.features(i).migration.as_ref()?;
            crate::metrics::migration_stage(&r.name, m.stage);
            let spec = m.ramp.clone()?;
            let Action::Split(split) = &r.action else {
                return None;
            };
            let live = split.live.clone()?;
            let fingerprint = format!(
                "{}|{}|{}|{:?}",
                r.name, config.upstreams[m.legacy].name, config.upstreams[m.new].name, spec
            );
            let carried = previous.and_then(|p| {
                p.ramps
                    .iter()
                    .flatten()
                    .find(|s| s.fingerprint == fingerprint)
            });
            if let Some(state) = carried {
                return Some(state.carried(live));
            }
            let saved =
                crate::store::ramp_store::restore(&config.shadow.store, &r.name, &fingerprint)
                    .unwrap_or_default();
            let state = RampState::new(&r.name, spec, fingerprint, live, saved);
            state.rebase(snap.migration_counts(i));
            Some(state)
        })
        .collect()
}

/// The HTTPS certificates: those of the previous snapshot, read again, when the files
/// are the same (a reload re-reads them); else loaded afresh.
fn certificates(config: &Config, previous: Option<&Snapshot>) -> Option<Arc<CertSet>> {
    let paths = &config.server.tls.as_ref()?.certificates;
    if let Some(set) = previous
        .and_then(|p| p.certs.as_ref())
        .filter(|c| c.paths() == paths.as_slice())
    {
        set.reload();
        return Some(set.clone());
    }
    match CertSet::load(paths.clone()) {
        Ok(set) => Some(set),
        Err(e) => {
            tracing::error!(error = %e, "TLS certificates unavailable");
            None
        }
    }
}

/// The routes' breakers, keeping the state of a route whose name, breaker and legacy
/// upstream did not change: a reload must not close an open circuit.
fn breakers(config: &Config, previous: Option<&Snapshot>) -> Vec<Option<Arc<Breaker>>> {
    let legacy_name = |c: &Config, r: &crate::routing::Route| c.upstreams[r.legacy].name.clone();
    config
        .routes
        .routes()
        .iter()
        .zip(&config.features)
        .map(|(r, features)| {
            let spec = features.breaker.as_ref()?;
            let kept = previous.and_then(|p| {
                let routes = p.config.routes.routes();
                let i = routes.iter().position(|old| old.name == r.name)?;
                let same_legacy = legacy_name(&p.config, &routes[i]) == legacy_name(config, r);
                p.breakers[i]
                    .as_ref()
                    .filter(|b| same_legacy && b.spec() == spec)
                    .cloned()
            });
            Some(kept.unwrap_or_else(|| {
                crate::metrics::breaker_state(&r.name).set(0);
                Arc::new(Breaker::new(spec.clone()))
            }))
        })
        .collect()
}

/// The previous snapshot's store when the path is the same, else a new one. A store that
/// cannot open is logged and its error kept: shadows still compare and count, samples are
/// not kept.
fn open_store(config: &Config, previous: Option<&Snapshot>) -> Result<Arc<Store>, String> {
    let settings = &config.shadow;
    if let Some(store) = previous
        .and_then(|p| p.shadow.store.as_ref())
        .filter(|s| s.path() == Some(settings.store.as_path()))
    {
        return Ok(store.clone());
    }
    let retention = Retention {
        samples: settings.retention_samples,
        age: settings.retention_age,
    };
    match Store::open(&settings.store, retention) {
        Ok(store) => Ok(Arc::new(store)),
        Err(e) => {
            let why = match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            };
            tracing::error!(error = %why, "diff store unavailable; mismatch samples will not be kept");
            Err(why)
        }
    }
}
