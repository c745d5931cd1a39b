//! `action = "migrate"`: a route's migration stage, the action and shadow it stands
//! for, and its gated ramp.

use super::Compiler;
use crate::config::raw::{RawRamp, RawRoute};
use crate::migration::ramp::{Gates, Quantile, RampSpec};
use crate::migration::{MigrationSpec, Stage};
use crate::routing::split::{salt_for, threshold, SplitKey};
use crate::routing::{Action, Split, UpstreamId};
use crate::shadow::spec::ShadowSpec;
use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

impl Compiler<'_> {
    /// The action a migrated route's stage stands for, and its migration.
    pub(super) fn migration(
        &mut self,
        route: &str,
        raw: &RawRoute,
        ids: &HashMap<&str, UpstreamId>,
        default: Option<UpstreamId>,
    ) -> Option<(Action, MigrationSpec)> {
        let Some(spanned) = &raw.migration else {
            self.error(raw.action.span(), format!("route {route:?} migrates but has no migration table: add migration = {{ stage = \"shadow\", new = \"...\" }}"));
            return None;
        };
        if let Some(split) = &raw.split {
            self.error(split.span(), format!("route {route:?} migrates: its split follows from its stage, so it takes no split table (a canary's share is migration.percent or its ramp)"));
        }
        if let Some(to) = raw.shadow.as_ref().and_then(|s| s.get_ref().to.as_ref()) {
            self.error(to.span(), format!("route {route:?} migrates: its stage decides where copies go, so its shadow table takes no to (the other settings apply)"));
        }
        let m = spanned.get_ref();
        let legacy = match &raw.upstream {
            Some(u) => self.upstream_ref(ids, u, &format!("route {route:?}")),
            None => default,
        };
        let new = self.upstream_ref(ids, &m.new, &format!("route {route:?}: migration.new"));
        let stage = Stage::parse(m.stage.get_ref());
        if stage.is_none() {
            self.error(m.stage.span(), format!("route {route:?}: stage {:?} is not one of legacy, shadow, canary, new, retired", m.stage.get_ref()));
        }
        if let (Some(l), Some(n)) = (legacy, new) {
            if l == n {
                self.error(
                    m.new.span(),
                    format!(
                        "route {route:?}: the new service {:?} is its legacy upstream too",
                        m.new.get_ref()
                    ),
                );
            }
        }
        let ramp = raw.ramp.as_ref().and_then(|r| self.ramp(route, r));
        let canary = stage == Some(Stage::Canary);
        if let (Some(r), false) = (&raw.ramp, canary) {
            self.error(r.span(), format!("route {route:?}: a ramp moves the canary stage: set stage = \"canary\" or remove the ramp"));
        }
        match (&m.percent, canary, raw.ramp.is_some()) {
            (Some(p), false, _) => self.error(p.span(), format!("route {route:?}: percent is the canary's share: only stage = \"canary\" takes it")),
            (Some(p), true, true) => self.error(p.span(), format!("route {route:?}: the ramp sets the canary's share: remove percent")),
            (Some(p), true, false) if !(0.0..=100.0).contains(p.get_ref()) => {
                self.error(p.span(), format!("route {route:?}: percent {} is outside 0-100", p.get_ref()));
            }
            _ => {}
        }
        let key = match &m.key {
            Some(k) => self.split_key(route, k)?,
            None => SplitKey::ClientIp,
        };
        let (stage, legacy, new) = (stage?, legacy?, new?);
        let action = match stage {
            Stage::Legacy | Stage::Shadow => Action::Forward(legacy),
            Stage::New | Stage::Retired => Action::Forward(new),
            Stage::Canary => Action::Split(Split {
                base: legacy,
                to: new,
                threshold: threshold(m.percent.as_ref().map_or(0.0, |p| *p.get_ref())),
                key,
                salt: salt_for(route, None),
                // The ramp moves it; the state restores where it stood.
                live: ramp.as_ref().map(|_| Arc::new(AtomicU32::new(0))),
            }),
        };
        Some((
            action,
            MigrationSpec {
                stage,
                legacy,
                new,
                ramp,
            },
        ))
    }

    /// A migrated route's shadow: every request the monolith serves is copied to the new
    /// service (shadow, canary), every one the new service serves to legacy (canary,
    /// new); the route's shadow table, without `to`, sets the rest (percent, limits,
    /// noise).
    pub(super) fn migration_shadow(
        &mut self,
        route: &str,
        raw: &RawRoute,
        m: &MigrationSpec,
    ) -> Option<ShadowSpec> {
        let to = match m.stage {
            Stage::Shadow | Stage::Canary => m.new,
            Stage::New => m.legacy,
            Stage::Legacy | Stage::Retired => return None,
        };
        let settings = raw.shadow.as_ref().map(|s| s.get_ref());
        let mut spec = self.shadow_spec(route, raw, settings, to)?;
        spec.new = m.new;
        if m.stage == Stage::Canary {
            // The new-served share is copied back to legacy: every request is compared,
            // at 100% as at 1%.
            spec.back = Some(m.legacy);
        }
        Some(spec)
    }

    fn ramp(&mut self, route: &str, raw: &Spanned<RawRamp>) -> Option<RampSpec> {
        let r = raw.get_ref();
        let steps = r.steps.get_ref().clone();
        let rising = steps.windows(2).all(|w| w[0] < w[1]);
        let in_range = steps.iter().all(|s| *s > 0.0 && *s <= 100.0);
        if steps.is_empty() || !rising || !in_range || steps.last() != Some(&100.0) {
            self.error(r.steps.span(), format!("route {route:?}: ramp steps must be rising percentages above 0 that end at 100, such as [1, 5, 25, 50, 100]"));
        }
        let d = Gates::default();
        let fraction = |c: &mut Self, v: &Option<Spanned<f64>>, default: f64, what: &str| match v {
            Some(x) if (0.0..=1.0).contains(x.get_ref()) => *x.get_ref(),
            Some(x) => {
                c.error(
                    x.span(),
                    format!("route {route:?}: {what} must be a fraction from 0 to 1"),
                );
                default
            }
            None => default,
        };
        let min_match_rate = fraction(self, &r.min_match_rate, d.min_match_rate, "min_match_rate");
        let max_error_margin = fraction(
            self,
            &r.max_error_margin,
            d.max_error_margin,
            "max_error_margin",
        );
        let max_error_rate = fraction(self, &r.max_error_rate, d.max_error_rate, "max_error_rate");
        let latency_quantile = match &r.latency_quantile {
            Some(q) => Quantile::parse(q.get_ref()).unwrap_or_else(|| {
                self.error(
                    q.span(),
                    format!("route {route:?}: latency_quantile is p50, p90 or p99"),
                );
                d.latency_quantile
            }),
            None => d.latency_quantile,
        };
        let confidence = match &r.confidence {
            Some(c) if (0.5..1.0).contains(c.get_ref()) => *c.get_ref(),
            Some(c) => {
                self.error(
                    c.span(),
                    format!("route {route:?}: confidence is a fraction from 0.5 to below 1, such as 0.95"),
                );
                d.confidence
            }
            None => d.confidence,
        };
        let max_latency_factor = match &r.max_latency_factor {
            Some(x) if *x.get_ref() >= 1.0 => *x.get_ref(),
            Some(x) => {
                self.error(
                    x.span(),
                    format!("route {route:?}: max_latency_factor must be 1 or more"),
                );
                d.max_latency_factor
            }
            None => d.max_latency_factor,
        };
        Some(RampSpec {
            steps,
            min_time: self.duration(r.min_time.as_ref(), Duration::from_secs(300)),
            min_requests: self.count::<u64>(r.min_requests.as_ref(), 100, "min_requests"),
            interval: self.duration(r.interval.as_ref(), Duration::from_secs(30)),
            gates: Gates {
                min_match_rate,
                min_comparisons: self.count::<u64>(
                    r.min_comparisons.as_ref(),
                    d.min_comparisons,
                    "min_comparisons",
                ),
                max_error_margin,
                max_error_rate,
                latency_quantile,
                max_latency_factor,
                confidence,
                failure_limit: self.count::<u32>(
                    r.failure_limit.as_ref(),
                    d.failure_limit,
                    "failure_limit",
                ),
            },
        })
    }
}
