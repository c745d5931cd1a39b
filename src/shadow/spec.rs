//! A route's shadow settings, compiled.

use crate::compare::Rules;
use crate::ids::UpstreamId;
use crate::routing::split::SplitKey;
use http::Method;
use std::sync::Arc;
use std::time::Duration;

/// Methods shadowed unless a route opts others in: they are safe to run twice.
pub const SAFE_METHODS: [Method; 3] = [Method::GET, Method::HEAD, Method::OPTIONS];

/// How one route mirrors its traffic and compares the answers.
#[derive(Debug, Clone)]
pub struct ShadowSpec {
    pub to: UpstreamId,
    /// Where a copy goes when `to` serves the request itself: a canary compares both
    /// ways, so every request is compared whichever side serves it.
    pub back: Option<UpstreamId>,
    /// The new service of the two (`to` for a plain shadow, the migration's `new`):
    /// `compare.allow_extra` lets its answers add fields.
    pub new: UpstreamId,
    /// Hundredths of a percent of requests shadowed (0..=10,000).
    pub threshold: u32,
    /// Sample by this key, so a user is shadowed always or never; at random when None.
    pub key: Option<SplitKey>,
    pub salt: u64,
    pub methods: Vec<Method>,
    pub max_in_flight: usize,
    /// From the request's arrival to the end of the comparison.
    pub timeout: Duration,
    /// Largest body captured per side; past it the comparison is skipped.
    pub max_body: usize,
    /// Send a second copy to the primary to learn which fields are noise.
    pub noise: bool,
    pub rules: Arc<Rules>,
    /// JSON paths (globs) whose values are hashed before a sample is stored.
    pub redact: Vec<String>,
    /// The route's gRPC calls have no side effects (declared, or by the descriptor
    /// set): they are shadowed, and copied for noise, though they are POSTs.
    pub grpc_idempotent: bool,
}

impl ShadowSpec {
    pub fn shadows_method(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }
}
