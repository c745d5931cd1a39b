//! The cap on open client connections (`server.max_connections`): each accepted
//! connection holds a slot until it ends; past the cap a new one is closed at once and
//! counted, so a flood of idle connections cannot take the process's memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Open connections across a banyan's listeners.
#[derive(Debug, Default)]
pub struct Slots {
    open: AtomicUsize,
}

/// One open connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Slots {
    /// A slot, unless `max` are taken.
    pub fn acquire(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let taken = self.open.fetch_add(1, Ordering::AcqRel);
        if taken >= max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            crate::metrics::metrics().connections_refused_total.inc();
            return None;
        }
        crate::metrics::metrics().connections_open.inc();
        Some(Slot(self.clone()))
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::metrics().connections_open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_freed() {
        let slots = Arc::new(Slots::default());
        let a = slots.acquire(2).expect("first");
        let _b = slots.acquire(2).expect("second");
        assert!(slots.acquire(2).is_none());
        assert_eq!(slots.open(), 2);
        drop(a);
        assert!(slots.acquire(2).is_some());
    }
}
