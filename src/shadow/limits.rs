//! Limits on shadow requests in flight: one for all routes, one per route. Taken without
//! waiting: when a limit is full the shadow is dropped, never queued.

use crate::ids::RouteId;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The global and per-route semaphores of a snapshot. A reload keeps the ones whose
/// limit did not change, so in-flight shadows still count against them.
#[derive(Default)]
pub struct ShadowLimits {
    global: Option<(usize, Arc<Semaphore>)>,
    /// By route index; None for routes that do not shadow.
    routes: Vec<Option<(String, usize, Arc<Semaphore>)>>,
}

/// Both permits of one shadow; released when the shadow task ends.
pub struct Permits {
    _global: OwnedSemaphorePermit,
    _route: OwnedSemaphorePermit,
}

impl ShadowLimits {
    /// `routes`: each route's name and per-route limit (None when it does not shadow).
    pub fn new(
        global: usize,
        routes: &[(String, Option<usize>)],
        previous: Option<&ShadowLimits>,
    ) -> Self {
        let reuse_global = previous
            .and_then(|p| p.global.as_ref())
            .filter(|(limit, _)| *limit == global)
            .cloned();
        let old: HashMap<&str, (usize, &Arc<Semaphore>)> = previous
            .map(|p| {
                p.routes
                    .iter()
                    .flatten()
                    .map(|(n, l, s)| (n.as_str(), (*l, s)))
                    .collect()
            })
            .unwrap_or_default();
        ShadowLimits {
            global: Some(
                reuse_global.unwrap_or_else(|| (global, Arc::new(Semaphore::new(global)))),
            ),
            routes: routes
                .iter()
                .map(|(name, limit)| {
                    let limit = (*limit)?;
                    let sem = match old.get(name.as_str()) {
                        Some((l, s)) if *l == limit => Arc::clone(s),
                        _ => Arc::new(Semaphore::new(limit)),
                    };
                    Some((name.clone(), limit, sem))
                })
                .collect(),
        }
    }

    /// Both permits for a route, or None when either limit is full.
    pub fn acquire(&self, route: RouteId) -> Option<Permits> {
        let (_, route_sem) = self
            .routes
            .get(route.index())?
            .as_ref()
            .map(|(_, l, s)| (l, s))?;
        let (_, global) = self.global.as_ref()?;
        let route_permit = route_sem.clone().try_acquire_owned().ok()?;
        let global_permit = global.clone().try_acquire_owned().ok()?;
        Some(Permits {
            _global: global_permit,
            _route: route_permit,
        })
    }

    /// Shadows in flight across all routes.
    pub fn in_flight(&self) -> usize {
        self.global
            .as_ref()
            .map_or(0, |(limit, s)| limit - s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_without_waiting_and_survive_a_reload() {
        let routes = vec![("a".to_string(), Some(2)), ("b".to_string(), None)];
        let limits = ShadowLimits::new(3, &routes, None);
        let p1 = limits.acquire(RouteId::new(0)).expect("1");
        let _p2 = limits.acquire(RouteId::new(0)).expect("2");
        assert!(limits.acquire(RouteId::new(0)).is_none(), "route limit");
        assert!(
            limits.acquire(RouteId::new(1)).is_none(),
            "b does not shadow"
        );
        assert_eq!(limits.in_flight(), 2);
        let next = ShadowLimits::new(3, &routes, Some(&limits));
        assert!(
            next.acquire(RouteId::new(0)).is_none(),
            "in-flight shadows still count after a reload"
        );
        drop(p1);
        assert!(next.acquire(RouteId::new(0)).is_some());
    }
}
