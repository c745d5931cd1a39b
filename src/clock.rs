//! Time, as the rest of banyan reads it: wall-clock seconds for what is stored and shown,
//! and a monotonic millisecond count for what is timed in the process (ejections,
//! breakers). A leaf: it imports nothing of banyan's.

use std::sync::LazyLock;
use std::time::{Instant, SystemTime};

/// Seconds since the Unix epoch, with a fraction.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The wall clock now, in Unix seconds.
pub fn now_unix() -> f64 {
    unix_seconds(SystemTime::now())
}

/// Milliseconds on a monotonic clock that starts at 1 (0 can mean "never").
pub fn now_ms() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64 + 1
}
