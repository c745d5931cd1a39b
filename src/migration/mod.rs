//! Migration control: a route moves by stages from the monolith to its new service
//! (legacy -> shadow -> canary -> new -> retired); in the canary stage a gated ramp moves
//! its share step by step, and rolls it back when the new side stops agreeing with the
//! monolith. The stage model and the ramp's decisions are pure (stage.rs, ramp.rs); the
//! live state of a ramp is state.rs, the loop that evaluates it control.rs.

pub mod analysis;
pub mod control;
pub mod ramp;
pub mod stage;
pub mod state;

pub use stage::Stage;

use crate::ids::UpstreamId;

/// A migrated route, as validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationSpec {
    pub stage: Stage,
    pub legacy: UpstreamId,
    pub new: UpstreamId,
    /// The canary's gated ramp, when it has one.
    pub ramp: Option<ramp::RampSpec>,
}
