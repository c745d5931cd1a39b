//! Identifiers that every layer passes around. A leaf: it imports nothing of banyan's,
//! so the route's feature specs (shadow, migration, breaker) and routing itself can all
//! name an upstream without importing each other.

/// Index of an upstream in the config's upstream list (and the snapshot's pools).
pub type UpstreamId = usize;

/// A route: its place in the config's route table (and in `config.features`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(u32);

impl RouteId {
    /// The route at `index` of the table. Tables hold far fewer than 2^32 routes.
    pub fn new(index: usize) -> Self {
        RouteId(u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// Its index in the route table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
