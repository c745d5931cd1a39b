//! A route's `circuit_breaker`.

use super::Compiler;
use crate::breaker::BreakerSpec;
use crate::config::raw::RawBreaker;
use crate::routing::{Action, UpstreamId};
use toml::Spanned;

impl Compiler<'_> {
    pub(super) fn breaker(
        &mut self,
        route: &str,
        raw: &Spanned<RawBreaker>,
        action: &Action,
        legacy: UpstreamId,
    ) -> Option<BreakerSpec> {
        let goes_elsewhere = match action {
            Action::Forward(u) => *u != legacy,
            Action::Split(_) => true,
        };
        if !goes_elsewhere {
            self.error(
                raw.span(),
                format!("route {route:?} has a circuit_breaker but sends its traffic to legacy already: the breaker guards a route to a new service, and opens toward the route's fallback (else the default upstream)"),
            );
            return None;
        }
        let raw = raw.get_ref();
        let d = BreakerSpec::default();
        let error_rate = match &raw.error_rate {
            None => d.error_rate,
            Some(r) if (0.0..1.0).contains(r.get_ref()) => *r.get_ref(),
            Some(r) => {
                self.error(
                    r.span(),
                    "error_rate must be a fraction from 0 up to (not including) 1, such as 0.5",
                );
                d.error_rate
            }
        };
        Some(BreakerSpec {
            error_rate,
            min_requests: self.count(raw.min_requests.as_ref(), d.min_requests, "min_requests"),
            window: self.duration(raw.window.as_ref(), d.window),
            open_for: self.duration(raw.open_for.as_ref(), d.open_for),
            probes: self.count(raw.probes.as_ref(), d.probes, "probes"),
        })
    }
}
