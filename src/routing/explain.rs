//! Why a request takes the route it takes: a linear walk over the routes that says, for
//! each one before the match, which condition failed. Slow on purpose; for people.

use super::{Action, RequestView, RouteTable, UpstreamId};
use std::fmt::Write;

/// The verdict of one route on the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub route: String,
    /// None when the route matched, else why not.
    pub failed: Option<String>,
}

/// How a split chose its side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitTrace {
    pub key: String,
    pub value: String,
    /// The key was absent and the client IP stood in.
    pub used_client_ip: bool,
    pub bucket: u32,
    pub threshold: u32,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub steps: Vec<Step>,
    pub route: Option<usize>,
    pub upstream: UpstreamId,
    pub split: Option<SplitTrace>,
    pub rewritten_path: Option<String>,
    pub fallback: Option<UpstreamId>,
}

pub fn explain(table: &RouteTable, req: &RequestView<'_>) -> Explanation {
    let mut steps = Vec::new();
    for (i, route) in table.routes().iter().enumerate() {
        match route.matches.check(req) {
            Err(why) => steps.push(Step {
                route: route.name.clone(),
                failed: Some(route.matches.explain(why, req)),
            }),
            Ok(()) => {
                steps.push(Step {
                    route: route.name.clone(),
                    failed: None,
                });
                let (upstream, split) = match &route.action {
                    Action::Forward(u) => (*u, None),
                    Action::Split(s) => {
                        let (value, found) = s.key.value(req);
                        let (upstream, bucket) = s.choose(req);
                        let trace = SplitTrace {
                            key: s.key.describe(),
                            value: String::from_utf8_lossy(&value).into_owned(),
                            used_client_ip: !found,
                            bucket,
                            threshold: s.current_threshold(),
                        };
                        (upstream, Some(trace))
                    }
                };
                return Explanation {
                    steps,
                    route: Some(i),
                    upstream,
                    split,
                    rewritten_path: route.rewrite.path(req.path),
                    fallback: route.fallback.filter(|f| *f != upstream),
                };
            }
        }
    }
    Explanation {
        steps,
        route: None,
        upstream: table.default_upstream(),
        split: None,
        rewritten_path: None,
        fallback: None,
    }
}

impl Explanation {
    /// Plain text for a terminal; `name` gives an upstream's name and endpoints.
    pub fn render(&self, name: impl Fn(UpstreamId) -> String) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let _ = match &step.failed {
                Some(why) => writeln!(out, "  no   route {:?}: {why}", step.route),
                None => writeln!(out, "  YES  route {:?} matches", step.route),
            };
        }
        if self.route.is_none() {
            let _ = writeln!(out, "no route matches: the default upstream takes it");
        }
        if let Some(s) = &self.split {
            let side = if s.bucket < s.threshold {
                "new side"
            } else {
                "base side"
            };
            let _ = writeln!(
                out,
                "split by {} = {:?}{}: bucket {} of 10000, {} go to the new side: {side}",
                s.key,
                s.value,
                if s.used_client_ip {
                    " (key absent: client IP used)"
                } else {
                    ""
                },
                s.bucket,
                if s.threshold == 0 {
                    "none".to_string()
                } else {
                    format!("buckets below {}", s.threshold)
                },
            );
        }
        if let Some(p) = &self.rewritten_path {
            let _ = writeln!(out, "path rewritten to {p}");
        }
        let _ = writeln!(out, "=> upstream {}", name(self.upstream));
        if let Some(f) = self.fallback {
            let _ = writeln!(
                out,
                "   falls back to {} if it fails an idempotent request",
                name(f)
            );
        }
        out
    }
}
