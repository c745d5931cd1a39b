//! Compiled conditions of a route: host, method, path, headers, query, cookies.
//! Each check says which condition failed, so `banyan explain` can tell why.

use super::request::RequestView;
use super::template::Template;
use http::{HeaderName, Method};
use regex::Regex;

/// `shop.example.com`, or `*.example.com` for any subdomain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Exact(String),
    /// Stored as the suffix with its dot: `.example.com`.
    Wildcard(String),
}

impl HostMatch {
    pub fn parse(pattern: &str) -> Self {
        let lower = pattern.to_ascii_lowercase();
        match lower.strip_prefix('*') {
            Some(suffix) => HostMatch::Wildcard(suffix.to_string()),
            None => HostMatch::Exact(lower),
        }
    }

    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

impl std::fmt::Display for HostMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// A condition on one value (a header, a query parameter, a cookie).
#[derive(Debug, Clone)]
pub enum ValueMatch {
    Present,
    Absent,
    Equals(String),
    /// Must match the whole value.
    Regex(Regex),
}

impl ValueMatch {
    /// True when any of the values satisfies the condition (or none exists, for `Absent`).
    pub fn matches<'v>(&self, mut values: impl Iterator<Item = &'v str>) -> bool {
        match self {
            ValueMatch::Present => values.next().is_some(),
            ValueMatch::Absent => values.next().is_none(),
            ValueMatch::Equals(want) => values.any(|v| v == want),
            ValueMatch::Regex(re) => values.any(|v| re.is_match(v)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ValueMatch::Present => "is present".into(),
            ValueMatch::Absent => "is absent".into(),
            ValueMatch::Equals(v) => format!("equals {v:?}"),
            ValueMatch::Regex(re) => format!("matches /{}/", unanchored(re.as_str())),
        }
    }
}

/// A header condition.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    pub name: HeaderName,
    pub value: ValueMatch,
}

/// A query parameter or cookie condition.
#[derive(Debug, Clone)]
pub struct ParamMatch {
    pub name: String,
    pub value: ValueMatch,
}

/// How a route matches the path.
#[derive(Debug, Clone)]
pub enum PathMatch {
    Exact(String),
    /// A plain string prefix, as in nginx and Envoy: `/api` also matches `/apis`.
    Prefix(String),
    Template(Template),
    /// Must match the whole path.
    Regex(Regex),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Template(t) => t.matches(path),
            PathMatch::Regex(re) => re.is_match(path),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PathMatch::Exact(p) => format!("exact {p}"),
            PathMatch::Prefix(p) => format!("prefix {p}"),
            PathMatch::Template(t) => format!("template {}", t.pattern()),
            PathMatch::Regex(re) => format!("regex /{}/", unanchored(re.as_str())),
        }
    }
}

/// Compile a user's regex so that it must match the whole input, as Envoy's do.
pub fn full_match_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

fn unanchored(anchored: &str) -> &str {
    anchored
        .strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(anchored)
}

/// The first condition of a route that a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Host,
    Method,
    Path,
    Header(usize),
    Query(usize),
    Cookie(usize),
}

/// All conditions of one route; a request must meet every one.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub hosts: Vec<HostMatch>,
    pub methods: Vec<Method>,
    pub path: Option<PathMatch>,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<ParamMatch>,
    pub cookies: Vec<ParamMatch>,
    /// Set by `match.grpc`, which the path, method and content-type conditions above
    /// carry out; kept for what the route says of its calls.
    pub grpc: Option<GrpcMatch>,
}

/// A route's gRPC service and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcMatch {
    pub service: String,
    pub method: Option<String>,
    /// The method may be called twice (declared `idempotent`): a failed call may go
    /// to the route's fallback.
    pub idempotent: bool,
}

impl RouteMatch {
    /// Check every condition.
    pub fn check(&self, req: &RequestView<'_>) -> Result<(), Mismatch> {
        if let Some(path) = &self.path {
            if !path.matches(req.path) {
                return Err(Mismatch::Path);
            }
        }
        self.check_except_path(req)
    }

    /// Check every condition but the path, which the path index has already matched.
    pub fn check_except_path(&self, req: &RequestView<'_>) -> Result<(), Mismatch> {
        if !self.methods.is_empty() && !self.methods.contains(req.method) {
            return Err(Mismatch::Method);
        }
        if !self.hosts.is_empty() {
            let host = req.host.unwrap_or("");
            if !self.hosts.iter().any(|h| h.matches(host)) {
                return Err(Mismatch::Host);
            }
        }
        for (i, h) in self.headers.iter().enumerate() {
            if !h.value.matches(req.header_values(&h.name)) {
                return Err(Mismatch::Header(i));
            }
        }
        for (i, q) in self.query.iter().enumerate() {
            let value = req.query_param(&q.name);
            if !q.value.matches(value.as_deref().into_iter()) {
                return Err(Mismatch::Query(i));
            }
        }
        for (i, c) in self.cookies.iter().enumerate() {
            if !c.value.matches(req.cookie(&c.name).into_iter()) {
                return Err(Mismatch::Cookie(i));
            }
        }
        Ok(())
    }

    /// A sentence saying why a request failed this route.
    pub fn explain(&self, why: Mismatch, req: &RequestView<'_>) -> String {
        match why {
            Mismatch::Host => format!(
                "host {:?} is not one of {}",
                req.host.unwrap_or(""),
                self.hosts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Mismatch::Method => format!(
                "method {} is not one of {}",
                req.method,
                self.methods
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Mismatch::Path => match &self.path {
                Some(p) => format!("path {} does not match {}", req.path, p.describe()),
                None => "path does not match".into(),
            },
            Mismatch::Header(i) => {
                let h = &self.headers[i];
                format!("header {} {} is not true", h.name, h.value.describe())
            }
            Mismatch::Query(i) => {
                let q = &self.query[i];
                format!(
                    "query parameter {} {} is not true",
                    q.name,
                    q.value.describe()
                )
            }
            Mismatch::Cookie(i) => {
                let c = &self.cookies[i];
                format!("cookie {} {} is not true", c.name, c.value.describe())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    struct Req {
        method: Method,
        uri: http::Uri,
        headers: HeaderMap,
    }

    impl Req {
        fn new(method: &str, uri: &str, headers: &[(&'static str, &'static str)]) -> Self {
            let mut map = HeaderMap::new();
            for (k, v) in headers {
                map.append(*k, HeaderValue::from_static(v));
            }
            Req {
                method: method.parse().expect("method"),
                uri: uri.parse().expect("uri"),
                headers: map,
            }
        }
        fn view(&self) -> RequestView<'_> {
            RequestView::new(&self.method, &self.uri, &self.headers, [10, 0, 0, 1].into())
        }
    }

    fn regex(p: &str) -> Regex {
        full_match_regex(p).expect("regex")
    }

    #[test]
    fn host_patterns() {
        let exact = HostMatch::parse("Shop.Example.com");
        assert!(exact.matches("shop.example.COM"));
        assert!(!exact.matches("x.shop.example.com"));
        let wild = HostMatch::parse("*.example.com");
        assert!(wild.matches("api.example.com"));
        assert!(wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("badexample.com"));
    }

    #[test]
    fn path_kinds() {
        let cases: Vec<(PathMatch, &str, bool)> = vec![
            (PathMatch::Exact("/a".into()), "/a", true),
            (PathMatch::Exact("/a".into()), "/a/", false),
            (PathMatch::Prefix("/api/".into()), "/api/x", true),
            (PathMatch::Prefix("/api/".into()), "/api", false),
            (PathMatch::Regex(regex(r"/v[0-9]+/.*")), "/v2/items", true),
            (PathMatch::Regex(regex(r"/v[0-9]+/")), "/v2/items", false),
            (
                PathMatch::Template(Template::parse("/items/{id}").expect("t")),
                "/items/7",
                true,
            ),
            (
                PathMatch::Template(Template::parse("/items/{id}").expect("t")),
                "/items/7/reviews",
                false,
            ),
            (
                PathMatch::Template(Template::parse("/static/{*rest}").expect("t")),
                "/static/css/app.css",
                true,
            ),
        ];
        for (m, path, want) in cases {
            assert_eq!(m.matches(path), want, "{} on {path}", m.describe());
        }
    }

    #[test]
    fn each_condition_reports_itself() {
        let m = RouteMatch {
            hosts: vec![HostMatch::parse("shop.example")],
            methods: vec![Method::GET],
            path: Some(PathMatch::Prefix("/api/".into())),
            headers: vec![HeaderMatch {
                name: HeaderName::from_static("x-beta"),
                value: ValueMatch::Equals("1".into()),
            }],
            query: vec![ParamMatch {
                name: "v".into(),
                value: ValueMatch::Regex(regex("[23]")),
            }],
            cookies: vec![ParamMatch {
                name: "tier".into(),
                value: ValueMatch::Present,
            }],
            grpc: None,
        };
        let ok = [
            ("host", "shop.example"),
            ("x-beta", "1"),
            ("cookie", "tier=gold"),
        ];
        let cases: Vec<(Req, Result<(), Mismatch>)> = vec![
            (Req::new("GET", "/api/x?v=2", &ok), Ok(())),
            (Req::new("POST", "/api/x?v=2", &ok), Err(Mismatch::Method)),
            (Req::new("GET", "/other?v=2", &ok), Err(Mismatch::Path)),
            (
                Req::new("GET", "/api/x?v=2", &[("host", "evil.example")]),
                Err(Mismatch::Host),
            ),
            (
                Req::new(
                    "GET",
                    "/api/x?v=2",
                    &[("host", "shop.example"), ("x-beta", "0")],
                ),
                Err(Mismatch::Header(0)),
            ),
            (Req::new("GET", "/api/x?v=4", &ok), Err(Mismatch::Query(0))),
            (
                Req::new(
                    "GET",
                    "/api/x?v=3",
                    &[("host", "shop.example"), ("x-beta", "1")],
                ),
                Err(Mismatch::Cookie(0)),
            ),
        ];
        for (req, want) in cases {
            assert_eq!(m.check(&req.view()), want, "{} {}", req.method, req.uri);
        }
    }

    #[test]
    fn absent_and_multi_valued_headers() {
        let absent = ValueMatch::Absent;
        assert!(absent.matches(std::iter::empty()));
        assert!(!absent.matches(["x"].into_iter()));
        let eq = ValueMatch::Equals("b".into());
        assert!(eq.matches(["a", "b"].into_iter()));
    }
}
