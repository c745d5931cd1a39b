//! What the resilience machinery is doing, for the admin API: each upstream's endpoints
//! (health, ejection, failures in a row) and each route's circuit breaker.

use super::views::{
    BreakerSettingsView, BreakerView, BreakerWindow, EndpointView, OutlierView, TimeoutsView,
    TransitionView, UpstreamTlsView, UpstreamView, UpstreamsView,
};
use crate::breaker::Breaker;
use crate::clock::now_ms;
use crate::snapshot::Snapshot;

/// `GET /api/upstreams`
pub fn upstreams(snap: &Snapshot) -> UpstreamsView {
    let now = now_ms();
    let duration = |d| humantime::format_duration(d).to_string();
    let upstreams = snap
        .pools
        .iter()
        .map(|pool| {
            let spec = pool.spec();
            let endpoints = pool
                .endpoints()
                .iter()
                .map(|e| EndpointView {
                    endpoint: e.spec.to_string(),
                    healthy: e.is_healthy(),
                    ejected: e.outlier.is_ejected(now),
                    ejected_for_seconds: e.outlier.ejected_for(now).map(|d| d.as_secs_f64()),
                    consecutive_failures: e.outlier.consecutive_failures(),
                    ejections: e.outlier.ejections(),
                })
                .collect();
            UpstreamView {
                name: spec.name.clone(),
                endpoints,
                timeouts: TimeoutsView {
                    connect: duration(spec.connect_timeout),
                    read: duration(spec.read_timeout),
                    write: duration(spec.write_timeout),
                    idle: duration(spec.idle_timeout),
                },
                retries: spec.retries,
                outlier_detection: spec.outlier.as_ref().map(|o| OutlierView {
                    consecutive_failures: o.consecutive_failures,
                    base_ejection: duration(o.base_ejection),
                    max_ejection: duration(o.max_ejection),
                    max_ejected_percent: o.max_ejected_percent,
                }),
                tls: UpstreamTlsView {
                    custom_ca: !spec.tls.roots.is_empty(),
                    insecure_skip_verify: spec.tls.insecure_skip_verify,
                },
            }
        })
        .collect();
    UpstreamsView { upstreams }
}

/// A route's circuit breaker, in `GET /api/routes`.
pub fn breaker(breaker: &Breaker, legacy: &str) -> BreakerView {
    let now = now_ms();
    let status = breaker.status(now);
    let spec = breaker.spec();
    BreakerView {
        state: status.state.label().to_string(),
        legacy: legacy.to_string(),
        window: BreakerWindow {
            requests: status.requests,
            errors: status.errors,
        },
        last_transition: status.last_transition.map(|(at, t)| TransitionView {
            to: t.to.label().to_string(),
            reason: t.reason,
            seconds_ago: now.saturating_sub(at) as f64 / 1000.0,
        }),
        settings: BreakerSettingsView {
            error_rate: spec.error_rate,
            min_requests: spec.min_requests,
            window: humantime::format_duration(spec.window).to_string(),
            open_for: humantime::format_duration(spec.open_for).to_string(),
            probes: spec.probes,
        },
    }
}
