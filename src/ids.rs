//! Identifiers that every layer passes around. A leaf: it imports nothing of banyan's,
//! so the route's feature specs (shadow, migration, breaker) and routing itself can all
//! name an upstream without importing each other.

/// Index of an upstream in the config's upstream list (and the snapshot's pools).
pub type UpstreamId = usize;
