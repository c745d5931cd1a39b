//! The config file as written: plain serde structs that mirror the TOML, with spans kept
//! on every value a later check may need to point at. Nothing here is interpreted yet.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    /// Name of the upstream (the monolith) that takes every request no route matches.
    pub default: Spanned<String>,
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    pub trust_forwarded_headers: bool,
    pub fallback_max_body: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Spanned<String>>,
    /// A file holding the bearer token mutating admin calls need.
    pub token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub endpoints: Spanned<Vec<Spanned<String>>>,
    pub host: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub read_timeout: Option<Spanned<String>>,
    pub write_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub http2: bool,
    pub health_check: Option<Spanned<RawHealthCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: Spanned<String>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub healthy_threshold: Option<Spanned<i64>>,
    pub unhealthy_threshold: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Spanned<String>,
    #[serde(rename = "match", default)]
    pub matches: RawMatch,
    pub action: Spanned<RawAction>,
    pub upstream: Option<Spanned<String>>,
    pub split: Option<Spanned<RawSplit>>,
    pub rewrite: Option<Spanned<RawRewrite>>,
    pub fallback: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawAction {
    Forward,
    Split,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    pub path: Option<Spanned<RawPath>>,
    #[serde(default)]
    pub headers: Vec<Spanned<RawKeyMatch>>,
    #[serde(default)]
    pub query: Vec<Spanned<RawKeyMatch>>,
    #[serde(default)]
    pub cookies: Vec<Spanned<RawKeyMatch>>,
}

/// `path = { exact = "/" }`, `{ prefix = "/api/" }`, `{ template = "/items/{id}" }`,
/// `{ regex = "/v[0-9]+/.*" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum RawPath {
    Exact(String),
    Prefix(String),
    Template(String),
    Regex(String),
}

/// One header, query parameter or cookie condition: exactly one of `present`, `equals`,
/// `regex`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyMatch {
    pub name: String,
    pub present: Option<bool>,
    pub equals: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplit {
    pub to: Spanned<String>,
    pub percent: Spanned<f64>,
    pub key: Spanned<RawSplitKey>,
    pub salt: Option<String>,
}

/// `key = { header = "x-user-id" }`, `{ cookie = "sid" }`, `{ query = "uid" }`, or
/// `"client_ip"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSplitKey {
    Header(String),
    Cookie(String),
    Query(String),
    ClientIp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    /// Replace the prefix the route matched with this one.
    pub prefix: Option<Spanned<String>>,
    /// Build the path from this template, with the parameters the route's template matched.
    pub template: Option<Spanned<String>>,
    #[serde(default)]
    pub set_headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub remove_headers: Vec<Spanned<String>>,
}
