//! Routing: which route a request takes and where it goes. Pure: no I/O, no clock.

pub mod explain;
pub mod index;
pub mod matcher;
pub mod normalize;
pub mod protocol;
pub mod request;
pub mod rewrite;
pub mod split;
pub mod template;

use index::PathIndex;
use matcher::RouteMatch;
pub use request::RequestView;
use rewrite::Rewrite;
use split::SplitKey;

pub use crate::ids::{RouteId, UpstreamId};

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matches: RouteMatch,
    pub action: Action,
    pub rewrite: Rewrite,
    /// Where a failed idempotent request to another upstream is retried.
    pub fallback: Option<UpstreamId>,
    /// Largest request body, when the route sets its own (else the server's).
    pub max_body: Option<u64>,
    /// The monolith for this route: its fallback, else the default upstream.
    pub legacy: UpstreamId,
    /// The upgrades it tunnels and the guarded methods it forwards.
    pub protocols: protocol::Protocols,
}

/// What a route does with a request.
#[derive(Debug, Clone)]
pub enum Action {
    Forward(UpstreamId),
    Split(Split),
}

/// A sticky percentage of `to`, the rest to `base`.
#[derive(Debug, Clone)]
pub struct Split {
    pub base: UpstreamId,
    pub to: UpstreamId,
    /// Hundredths of a percent sent to `to` (0..=10,000), as configured.
    pub threshold: u32,
    pub key: SplitKey,
    pub salt: u64,
    /// Set by a gated ramp (migration): the threshold in force, moved at run time.
    pub live: Option<std::sync::Arc<std::sync::atomic::AtomicU32>>,
}

impl Split {
    /// The threshold in force: the ramp's, else the configured one.
    pub fn current_threshold(&self) -> u32 {
        self.live.as_ref().map_or(self.threshold, |t| {
            t.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// The upstream for a request and the bucket its key fell in.
    pub fn choose(&self, req: &RequestView<'_>) -> (UpstreamId, u32) {
        let (key, _) = self.key.value(req);
        let bucket = split::bucket(self.salt, &key);
        let upstream = if bucket < self.current_threshold() {
            self.to
        } else {
            self.base
        };
        (upstream, bucket)
    }
}

/// Where one request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The matching route, or None for the default upstream.
    pub route: Option<RouteId>,
    pub upstream: UpstreamId,
}

/// Every route, in order, with the index that finds the first match quickly.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    index: PathIndex,
    default_upstream: UpstreamId,
    /// The policy for requests no route matches.
    default_protocols: protocol::Protocols,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>, default_upstream: UpstreamId) -> Self {
        let index = PathIndex::build(routes.iter().map(|r| r.matches.path.as_ref()));
        RouteTable {
            routes,
            index,
            default_upstream,
            default_protocols: protocol::Protocols::default(),
        }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn default_upstream(&self) -> UpstreamId {
        self.default_upstream
    }

    /// The upgrades and guarded methods a request that took `route` may use.
    pub fn protocols(&self, route: Option<RouteId>) -> &protocol::Protocols {
        route.map_or(&self.default_protocols, |id| &self.route(id).protocols)
    }

    /// Every route with its id, in order.
    pub fn with_ids(&self) -> impl Iterator<Item = (RouteId, &Route)> {
        self.routes
            .iter()
            .enumerate()
            .map(|(i, r)| (RouteId::new(i), r))
    }

    /// The route `id` names.
    pub fn route(&self, id: RouteId) -> &Route {
        &self.routes[id.index()]
    }

    /// The routes whose path condition `path` may meet, in order (see PathIndex).
    pub fn candidates(&self, path: &str) -> index::Candidates {
        self.index.candidates(path)
    }

    /// The first route the request matches.
    pub fn find(&self, req: &RequestView<'_>) -> Option<RouteId> {
        self.index
            .candidates(req.path)
            .into_iter()
            .find(|&i| {
                let m = &self.routes[i].matches;
                if self.index.needs_path_check(i) {
                    m.check(req).is_ok()
                } else {
                    m.check_except_path(req).is_ok()
                }
            })
            .map(RouteId::new)
    }

    /// The route and upstream for a request.
    pub fn decide(&self, req: &RequestView<'_>) -> Decision {
        match self.find(req) {
            None => Decision {
                route: None,
                upstream: self.default_upstream,
            },
            Some(id) => Decision {
                route: Some(id),
                upstream: match &self.route(id).action {
                    Action::Forward(u) => *u,
                    Action::Split(s) => s.choose(req).0,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matcher::{HeaderMatch, PathMatch, ValueMatch};
    use super::*;
    use http::{HeaderMap, HeaderName, HeaderValue, Method};

    fn route(name: &str, path: Option<PathMatch>, upstream: UpstreamId) -> Route {
        Route {
            name: name.into(),
            matches: RouteMatch {
                path,
                ..Default::default()
            },
            action: Action::Forward(upstream),
            rewrite: Rewrite::default(),
            fallback: None,
            max_body: None,
            legacy: UpstreamId::new(0),
            protocols: Default::default(),
        }
    }

    #[test]
    fn first_match_wins_and_unmatched_goes_to_default() {
        let mut beta = route(
            "beta",
            Some(PathMatch::Prefix("/api/".into())),
            UpstreamId::new(2),
        );
        beta.matches.headers.push(HeaderMatch {
            name: HeaderName::from_static("x-beta"),
            value: ValueMatch::Present,
        });
        let table = RouteTable::new(
            vec![
                beta,
                route(
                    "api",
                    Some(PathMatch::Prefix("/api/".into())),
                    UpstreamId::new(1),
                ),
                route(
                    "api-items",
                    Some(PathMatch::Exact("/api/items".into())),
                    UpstreamId::new(3),
                ),
            ],
            UpstreamId::new(0),
        );
        let method = Method::GET;
        let mut headers = HeaderMap::new();
        let ip = [127, 0, 0, 1].into();
        let decide = |uri: &str, headers: &HeaderMap| {
            let uri: http::Uri = uri.parse().expect("uri");
            table.decide(&RequestView::new(&method, &uri, headers, ip))
        };
        assert_eq!(decide("/api/items", &headers).upstream, UpstreamId::new(1));
        assert_eq!(decide("/other", &headers).route, None);
        assert_eq!(decide("/other", &headers).upstream, UpstreamId::new(0));
        headers.insert("x-beta", HeaderValue::from_static("1"));
        assert_eq!(decide("/api/items", &headers).upstream, UpstreamId::new(2));
    }
}
