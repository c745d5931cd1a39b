//! When each replayed request is due, from the start of the run: at a fixed rate, at a
//! multiple of the recorded pace, or at once (bounded by the concurrency alone).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the concurrency allows.
    Unpaced,
    /// Requests per second.
    Rate(f64),
    /// A multiple of the recorded pace: 2.0 replays an hour in half an hour.
    Speed(f64),
}

impl Pace {
    /// The due time of the `i`-th request (from 0) recorded `since_first` seconds after
    /// the first one.
    pub fn due(self, i: usize, since_first: f64) -> Duration {
        let secs = match self {
            Pace::Unpaced => 0.0,
            Pace::Rate(r) => i as f64 / r,
            Pace::Speed(x) => since_first.max(0.0) / x,
        };
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times() {
        assert_eq!(Pace::Unpaced.due(10, 5.0), Duration::ZERO);
        assert_eq!(Pace::Rate(4.0).due(6, 99.0), Duration::from_millis(1500));
        assert_eq!(Pace::Speed(2.0).due(3, 10.0), Duration::from_secs(5));
        assert_eq!(Pace::Speed(0.5).due(3, 10.0), Duration::from_secs(20));
        assert_eq!(
            Pace::Speed(1.0).due(0, -3.0),
            Duration::ZERO,
            "out of order times"
        );
    }
}
