//! The live figures as Prometheus families, built at each scrape: requests by status
//! class and latency per (route, upstream), shadow copies by outcome per route.

use super::{histogram::BOUNDS, routes, ShadowOutcome, STATUS_CLASSES};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Counter, Histogram, LabelPair, Metric, MetricFamily, MetricType};

const REQUESTS: (&str, &str) = (
    "banyan_requests_total",
    "Requests proxied, by route, upstream that answered, and status class.",
);
const DURATION: (&str, &str) = (
    "banyan_request_duration_seconds",
    "Time from the request's arrival to the response headers, by route and upstream.",
);
const GRPC: (&str, &str) = (
    "banyan_grpc_calls_total",
    "gRPC calls by route, upstream that answered, and grpc-status (its name).",
);
const SHADOW: (&str, &str) = (
    "banyan_shadow_requests_total",
    "Shadowed requests by outcome: match, mismatch, error, timeout, dropped (a limit was full), skipped_body_too_large, skipped.",
);

pub struct LiveCollector {
    descs: Vec<Desc>,
}

impl LiveCollector {
    pub fn new() -> Self {
        let desc = |(name, help): (&str, &str), labels: &[&str]| {
            Desc::new(
                name.into(),
                help.into(),
                labels.iter().map(|l| l.to_string()).collect(),
                Default::default(),
            )
        };
        // The names and labels above are valid; a failure is a programming error that
        // any test of the metrics endpoint catches.
        #[allow(clippy::expect_used)]
        let descs = [
            desc(REQUESTS, &["route", "upstream", "status_class"]),
            desc(DURATION, &["route", "upstream"]),
            desc(SHADOW, &["route", "outcome"]),
            desc(GRPC, &["route", "upstream", "grpc_status"]),
        ]
        .into_iter()
        .map(|d| d.expect("valid metric description"))
        .collect();
        LiveCollector { descs }
    }
}

/// Label pairs sorted by name, as the text format prints them.
fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    let mut pairs = pairs.to_vec();
    pairs.sort_by_key(|(name, _)| *name);
    pairs
        .into_iter()
        .map(|(name, value)| {
            let mut l = LabelPair::default();
            l.set_name(name.into());
            l.set_value(value.into());
            l
        })
        .collect()
}

fn family((name, help): (&str, &str), kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn counter(pairs: &[(&str, &str)], value: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::default();
    m.set_label(labels(pairs));
    m.set_counter(c);
    m
}

impl Collector for LiveCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (mut requests, mut durations, mut shadows) = (Vec::new(), Vec::new(), Vec::new());
        let mut calls = Vec::new();
        for route in routes() {
            let r = route.name.as_str();
            for (upstream, side) in route.sides() {
                let u = upstream.as_str();
                for (class, n) in STATUS_CLASSES.iter().zip(side.by_class()) {
                    requests.push(counter(
                        &[("route", r), ("upstream", u), ("status_class", class)],
                        n,
                    ));
                }
                for (code, n) in crate::grpc::status::ALL.iter().zip(side.grpc_calls()) {
                    if n > 0 {
                        let status = code.name();
                        calls.push(counter(
                            &[("route", r), ("upstream", u), ("grpc_status", status)],
                            n,
                        ));
                    }
                }
                let reading = side.duration.read();
                let mut h = Histogram::default();
                h.set_sample_count(reading.count);
                h.set_sample_sum(reading.sum_seconds);
                h.set_bucket(
                    BOUNDS
                        .iter()
                        .zip(&reading.cumulative)
                        .map(|(le, n)| {
                            let mut b = Bucket::default();
                            b.set_upper_bound(*le);
                            b.set_cumulative_count(*n);
                            b
                        })
                        .collect(),
                );
                let mut m = Metric::default();
                m.set_label(labels(&[("route", r), ("upstream", u)]));
                m.set_histogram(h);
                durations.push(m);
            }
            // Like a labelled counter, an outcome appears once it has happened.
            for (outcome, n) in ShadowOutcome::ALL.iter().zip(route.shadow.outcomes()) {
                if n > 0 {
                    shadows.push(counter(&[("route", r), ("outcome", outcome.label())], n));
                }
            }
        }
        [
            family(REQUESTS, MetricType::COUNTER, requests),
            family(DURATION, MetricType::HISTOGRAM, durations),
            family(SHADOW, MetricType::COUNTER, shadows),
            family(GRPC, MetricType::COUNTER, calls),
        ]
        .into_iter()
        .filter(|f| !f.get_metric().is_empty())
        .collect()
    }
}
