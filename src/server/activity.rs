//! What a connection's watchdog reads of it: when bytes last moved, requests in flight,
//! since when a request head has been arriving, and whether the watchdog asked it to
//! close (banyan's own HTTP/1 path reads that; hyper is told with `graceful_shutdown`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// `Activity::head_since` when no request head is on its way.
const NO_HEAD: u64 = u64::MAX;

#[derive(Debug)]
pub struct Activity {
    started: Instant,
    /// Milliseconds after `started`.
    last: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` at which the head now arriving began (0, the
    /// connection's start, for its first request), or `NO_HEAD`.
    head_since: AtomicU64,
    /// Wakes the watchdog when a head begins, to time it.
    pub head_began: Notify,
    /// The watchdog asked the connection to close once no request is in flight.
    closing: AtomicBool,
}

impl Activity {
    /// `timed_heads`: the connection's heads are followed (HTTP/1), so the first one is
    /// awaited from the start.
    pub fn new(timed_heads: bool) -> Arc<Self> {
        Arc::new(Activity {
            started: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head_since: AtomicU64::new(if timed_heads { 0 } else { NO_HEAD }),
            head_began: Notify::new(),
            closing: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// After each read: whether a head is part-way in.
    pub fn heading(&self, in_head: bool) {
        let since = self.head_since.load(Ordering::Relaxed);
        if in_head && since == NO_HEAD {
            self.head_since.store(self.now_ms(), Ordering::Relaxed);
            self.head_began.notify_one();
        } else if !in_head && since != NO_HEAD {
            self.head_since.store(NO_HEAD, Ordering::Relaxed);
        }
    }

    /// When the head now arriving must be complete.
    pub fn head_deadline(&self, header_timeout: Duration) -> Option<Instant> {
        let since = self.head_since.load(Ordering::Relaxed);
        (since != NO_HEAD).then(|| self.started + Duration::from_millis(since) + header_timeout)
    }

    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// Ask the connection to finish the request in flight, if any, and close.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }
}

/// Counts a request in flight until dropped.
pub struct InFlight(Arc<Activity>);

impl InFlight {
    pub fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}
