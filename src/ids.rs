//! Identifiers that every layer passes around. A leaf: it imports nothing of banyan's,
//! so the route's feature specs (shadow, migration, breaker) and routing itself can all
//! name an upstream without importing each other.

/// An upstream: its place in the config's upstream list (and the snapshot's pools, in
/// the same order). Index either with it: `config.upstreams[id]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamId(u32);

impl UpstreamId {
    /// The upstream at `index` of the list.
    pub fn new(index: usize) -> Self {
        UpstreamId(u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// Its index in the upstream list.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl<T> std::ops::Index<UpstreamId> for Vec<T> {
    type Output = T;

    fn index(&self, id: UpstreamId) -> &T {
        &self[id.index()]
    }
}

impl<T> std::ops::Index<UpstreamId> for [T] {
    type Output = T;

    fn index(&self, id: UpstreamId) -> &T {
        &self[id.index()]
    }
}

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
