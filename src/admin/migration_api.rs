//! The migration API: every migrated route's stage and ramp (`GET /api/migration`), manual
//! control of a ramp (`POST /api/migration/{route}/pause|resume|promote|rollback`), and
//! the readiness report (`GET /api/migration/report`, JSON or Markdown).

use super::views::{
    GatesView, MigrationRouteView, MigrationView, RampView, ReadinessView, Regression, ReportView,
    Scope, SideRequests, StageShare, StageSummary,
};
use crate::compare::noise::{wilson, Verdict};
use crate::migration::control;
use crate::migration::state::{Control, RampState};
use crate::migration::{stage, MigrationSpec, Stage};
use crate::routing::{Action, Route, RouteId, UpstreamId};
use crate::shadow::stats::Tally;
use crate::snapshot::Snapshot;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Least comparisons before a match rate says a route is ready.
const READY_COMPARISONS: u64 = 100;
/// Lower bound of the match rate's 95% interval a route needs to be ready, unless its
/// ramp sets its own.
const READY_MATCH_RATE: f64 = 0.95;

/// Requests of a route over 15 minutes.
fn route_requests(route: &str) -> u64 {
    crate::live::existing(route).map_or(0, |r| r.requests(15))
}

/// The share of a route's traffic the new side serves now, in percent.
fn percent_new(snap: &Snapshot, i: RouteId, r: &Route, m: &MigrationSpec) -> f64 {
    if let Some(state) = snap.ramp(i) {
        return state.percent();
    }
    match (&r.action, m.stage) {
        (Action::Split(s), _) => f64::from(s.current_threshold()) / 100.0,
        (_, Stage::New | Stage::Retired) => 100.0,
        _ => 0.0,
    }
}

fn migrated(snap: &Snapshot) -> impl Iterator<Item = (RouteId, &Route, &MigrationSpec)> {
    snap.config.routes.with_ids().filter_map(|(i, r)| {
        snap.config
            .features(i)
            .migration
            .as_ref()
            .map(|m| (i, r, m))
    })
}

/// `GET /api/migration`
pub fn overview(snap: &Snapshot) -> MigrationView {
    let name = |u: UpstreamId| snap.config.upstreams[u].name.clone();
    let routes = migrated(snap)
        .map(|(i, r, m)| MigrationRouteView {
            route: r.name.clone(),
            stage: m.stage.label().to_string(),
            next_stage: m.stage.next().map(|s| s.label().to_string()),
            legacy: name(m.legacy),
            new: name(m.new),
            percent_new: percent_new(snap, i, r, m),
            requests_15m: route_requests(&r.name),
            ramp: snap.ramp(i).map(ramp_view),
        })
        .collect();
    MigrationView {
        routes,
        summary: summary(snap),
    }
}

fn ramp_view(state: &RampState) -> RampView {
    let saved = state.saved();
    let spec = &state.spec;
    RampView {
        steps: spec.steps.clone(),
        step: saved.step,
        paused: saved.paused,
        holding: state.holding(),
        step_seconds: state.step_age().as_secs_f64(),
        min_time: humantime::format_duration(spec.min_time).to_string(),
        min_requests: spec.min_requests,
        interval: humantime::format_duration(spec.interval).to_string(),
        gates: GatesView {
            min_match_rate: spec.gates.min_match_rate,
            min_comparisons: spec.gates.min_comparisons,
            max_error_margin: spec.gates.max_error_margin,
            max_error_rate: spec.gates.max_error_rate,
            latency_quantile: spec.gates.latency_quantile.label().to_string(),
            latency_min_samples: crate::migration::analysis::min_samples(
                spec.gates.latency_quantile.fraction(),
            ),
            max_latency_factor: spec.gates.max_latency_factor,
            confidence: spec.gates.confidence,
            failure_limit: spec.gates.failure_limit,
        },
        judgement: state.last_gates(),
        failed_in_a_row: state.failed_in_a_row(),
        events: saved.events,
    }
}

/// How many routes, and what share of all traffic over 15 minutes, are at each stage;
/// routes that are not migrated count as `unmanaged`.
pub fn summary(snap: &Snapshot) -> StageSummary {
    let labels: Vec<&str> = stage::ALL
        .iter()
        .map(|s| s.label())
        .chain(["unmanaged"])
        .collect();
    let mut counts = vec![(0usize, 0u64); labels.len()];
    let mut total = 0;
    for (i, r) in snap.config.routes.with_ids() {
        let label = snap
            .config
            .features(i)
            .migration
            .as_ref()
            .map_or("unmanaged", |m| m.stage.label());
        let n = route_requests(&r.name);
        total += n;
        if let Some(i) = labels.iter().position(|l| *l == label) {
            counts[i].0 += 1;
            counts[i].1 += n;
        }
    }
    let unmatched = route_requests(crate::metrics::DEFAULT_ROUTE);
    total += unmatched;
    let stages = labels
        .iter()
        .zip(counts)
        .map(|(label, (routes, n))| StageShare {
            stage: label.to_string(),
            routes,
            traffic_share_15m: (total > 0).then(|| n as f64 / total as f64),
        })
        .collect();
    StageSummary {
        stages,
        requests_15m: total,
        unmatched_requests_15m: unmatched,
    }
}

/// `POST /api/migration/{route}/{call}`: the move made, or why none was.
pub fn control_call(snap: &Snapshot, route: &str, call: &str) -> Result<Value, (u16, String)> {
    let call = Control::parse(call).ok_or((
        404,
        format!("no such call {call:?}: pause, resume, promote or rollback"),
    ))?;
    let Some((i, _)) = snap.config.routes.with_ids().find(|(_, r)| r.name == route) else {
        return Err((404, format!("no route named {route:?}")));
    };
    let Some(state) = snap.ramp(i) else {
        return Err((409, format!("route {route:?} has no ramp to control")));
    };
    let counts = control::counts(snap, i);
    match state.control(call, counts) {
        Some(event) => {
            control::moved(snap, state, &event, &Default::default());
            Ok(
                json!({ "route": route, "event": event, "percent_new": state.percent(), "paused": state.saved().paused }),
            )
        }
        None => Err((
            409,
            format!(
                "{call:?} changes nothing for route {route:?} at {}%",
                state.percent()
            ),
        )),
    }
}

/// `GET /api/migration/report`: per migrated route, where it stands and whether it is
/// ready for its next stage. `examples` maps a field to a stored sample's id.
pub fn report(
    snap: &Snapshot,
    tallies: &[(String, Tally)],
    scope: Scope,
    examples: &BTreeMap<(String, String), i64>,
) -> ReportView {
    let thresholds = &snap.config.shadow.thresholds;
    let stats =
        crate::shadow::stats::report(tallies.iter().map(|(r, t)| (r.as_str(), t)), thresholds);
    let name = |u: UpstreamId| snap.config.upstreams[u].name.as_str();
    let routes = migrated(snap)
        .map(|(i, r, m)| {
            let s = stats.iter().find(|s| s.route == r.name);
            let (compared, matches) = s.map_or((0, 0), |s| (s.compared, s.matches));
            let interval = wilson(matches, compared);
            let regressions: Vec<Regression> = s
                .into_iter()
                .flat_map(|s| &s.fields)
                .filter(|f| f.verdict == Verdict::Regression)
                .map(|f| Regression {
                    field: f.field.clone(),
                    count: f.raw,
                    rate: f.raw_rate,
                    example_id: examples.get(&(r.name.clone(), f.field.clone())).copied(),
                })
                .collect();
            let percent = percent_new(snap, i, r, m);
            let standing = Standing {
                stage: m.stage,
                percent_new: percent,
                compared,
                match_low: interval.map(|(low, _)| low),
                regressions: regressions.len(),
                wanted: snap
                    .ramp(i)
                    .map_or(READY_MATCH_RATE, |r| r.spec.gates.min_match_rate),
            };
            let (ready, why) = standing.readiness();
            let requests = |u| {
                crate::live::existing(&r.name)
                    .and_then(|f| f.existing_side(name(u)))
                    .map_or(0, |s| s.window.figures(15).requests)
            };
            ReadinessView {
                route: r.name.clone(),
                stage: m.stage.label().to_string(),
                next_stage: m.stage.next().map(|s| s.label().to_string()),
                percent_new: percent,
                requests_15m: SideRequests {
                    legacy: requests(m.legacy),
                    new: requests(m.new),
                },
                compared,
                match_rate: (compared > 0).then(|| matches as f64 / compared as f64),
                match_rate_ci95: interval.map(|(l, h)| [l, h]),
                regressions,
                ready,
                why,
            }
        })
        .collect();
    ReportView {
        routes,
        summary: summary(snap),
        scope,
    }
}

/// Where a migrated route stands, as far as its readiness for the next stage goes.
struct Standing {
    stage: Stage,
    percent_new: f64,
    compared: u64,
    /// The lower bound of the match rate's 95% interval.
    match_low: Option<f64>,
    regressions: usize,
    /// The match rate the route's ramp gates on, else [`READY_MATCH_RATE`].
    wanted: f64,
}

impl Standing {
    /// Ready for the next stage, and why (or why not).
    fn readiness(&self) -> (bool, String) {
        let verdict = match self.stage {
            Stage::Legacy => Ok(()),
            Stage::Shadow | Stage::New => self.agreeing(),
            Stage::Canary if self.percent_new < 100.0 => {
                Err(format!("the canary serves {}%, not 100%", self.percent_new))
            }
            Stage::Canary => self.agreeing(),
            Stage::Retired => Err("retired: the migration is done".into()),
        };
        match verdict {
            Ok(()) => (
                true,
                format!("ready for {}", self.stage.next().map_or("-", Stage::label)),
            ),
            Err(why) => (false, why),
        }
    }

    /// The new service agrees with legacy well enough, on enough comparisons.
    fn agreeing(&self) -> Result<(), String> {
        let compared = self.compared;
        if compared < READY_COMPARISONS {
            return Err(format!(
                "{compared} of {READY_COMPARISONS} comparisons so far"
            ));
        }
        let low = self.match_low.unwrap_or(0.0);
        if low < self.wanted {
            return Err(format!(
                "match rate lower bound {:.1}% is under {:.1}%",
                100.0 * low,
                100.0 * self.wanted
            ));
        }
        if self.regressions > 0 {
            return Err(format!("{} open regression(s)", self.regressions));
        }
        Ok(())
    }
}

/// The report as Markdown, for a pull request or a chat.
pub fn markdown(report: &ReportView) -> String {
    let mut out = String::from("# Migration readiness\n\n");
    out.push_str(match report.scope {
        Scope::Instance => "",
        Scope::Fleet => "Comparisons of the whole fleet, as of each instance's last flush.\n\n",
        Scope::InstanceFleetUnreachable => {
            "**The fleet's PostgreSQL could not be read: comparisons of this instance only.**\n\n"
        }
    });
    out.push_str(
        "| route | stage | new share | compared | match rate (95% CI) | regressions | ready |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | --- | --- | --- |\n");
    for r in &report.routes {
        let rate = match (r.match_rate, r.match_rate_ci95) {
            (Some(rate), Some([low, high])) => format!(
                "{:.2}% ({:.2}-{:.2}%)",
                100.0 * rate,
                100.0 * low,
                100.0 * high
            ),
            _ => "-".into(),
        };
        let regressions: Vec<String> = r
            .regressions
            .iter()
            .map(|g| {
                let example = g
                    .example_id
                    .map_or(String::new(), |id| format!(", e.g. #{id}"));
                format!("`{}` x{}{example}", g.field, g.count)
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {:?}% | {} | {} | {} | {}: {} |\n",
            r.route,
            r.stage,
            r.percent_new,
            r.compared,
            rate,
            if regressions.is_empty() {
                "none".into()
            } else {
                regressions.join("; ")
            },
            if r.ready { "yes" } else { "no" },
            r.why,
        ));
    }
    out.push_str("\n| stage | routes | traffic share (15 min) |\n| --- | ---: | ---: |\n");
    for s in &report.summary.stages {
        let share = s
            .traffic_share_15m
            .map_or("-".into(), |f| format!("{:.1}%", 100.0 * f));
        out.push_str(&format!("| {} | {} | {share} |\n", s.stage, s.routes));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(stage: Stage) -> Standing {
        Standing {
            stage,
            percent_new: 0.0,
            compared: 1000,
            match_low: Some(0.99),
            regressions: 0,
            wanted: 0.95,
        }
    }

    #[test]
    fn readiness_needs_agreement_and_a_full_canary() {
        assert_eq!(
            standing(Stage::Legacy).readiness(),
            (true, "ready for shadow".into())
        );
        assert_eq!(
            standing(Stage::Shadow).readiness(),
            (true, "ready for canary".into())
        );
        let few = Standing {
            compared: 40,
            ..standing(Stage::Shadow)
        };
        assert_eq!(
            few.readiness(),
            (false, "40 of 100 comparisons so far".into())
        );
        let disagreeing = Standing {
            match_low: Some(0.9),
            ..standing(Stage::New)
        };
        assert_eq!(
            disagreeing.readiness(),
            (false, "match rate lower bound 90.0% is under 95.0%".into())
        );
        let regressed = Standing {
            regressions: 2,
            ..standing(Stage::Shadow)
        };
        assert_eq!(
            regressed.readiness(),
            (false, "2 open regression(s)".into())
        );
        let partial = Standing {
            percent_new: 25.0,
            ..standing(Stage::Canary)
        };
        assert_eq!(
            partial.readiness(),
            (false, "the canary serves 25%, not 100%".into())
        );
        let full = Standing {
            percent_new: 100.0,
            ..standing(Stage::Canary)
        };
        assert_eq!(full.readiness(), (true, "ready for new".into()));
        assert!(!standing(Stage::Retired).readiness().0);
    }
}
