//! The access log: one line per request (JSON or Apache's combined format), written by a
//! thread of its own behind a bounded queue (writer.rs) from entries the request path
//! fills without formatting anything (entry.rs). Sampled per route; errors always kept.

pub mod entry;
pub mod writer;

use crate::config::AccessLogSettings;
use std::sync::Arc;
use writer::Queue;

/// A snapshot's access log: the writer (carried from the previous snapshot while the
/// settings stay the same) and the settings it was started with.
pub struct AccessLog {
    queue: Arc<Queue>,
    settings: AccessLogSettings,
}

impl AccessLog {
    /// The access log for `settings`: the previous one's writer when its settings are
    /// the same, else a new writer (the old one ends once its last snapshot is gone).
    pub fn new(
        settings: &AccessLogSettings,
        previous: Option<&AccessLog>,
    ) -> std::io::Result<Self> {
        let queue = match previous {
            Some(p) if p.settings == *settings => p.queue.clone(),
            _ => Arc::new(Queue::start(settings)?),
        };
        Ok(AccessLog {
            queue,
            settings: settings.clone(),
        })
    }

    pub fn push(&self, entry: entry::Entry) {
        self.queue.push(entry);
    }

    /// Reopen the file (SIGUSR1).
    pub fn reopen(&self) {
        self.queue.reopen();
    }
}

/// Whether a request is written: an error always (a 5xx, or an answer of banyan's own
/// with a cause); else with the route's share.
pub fn sampled(share: Option<f64>, error: bool) -> bool {
    match share {
        _ if error => true,
        None => true,
        Some(s) if s >= 1.0 => true,
        Some(s) if s <= 0.0 => false,
        Some(s) => rand::random::<f64>() < s,
    }
}

#[cfg(test)]
mod tests {
    use super::sampled;

    #[test]
    fn errors_are_always_sampled_and_shares_hold_roughly() {
        assert!(sampled(Some(0.0), true));
        assert!(!sampled(Some(0.0), false));
        assert!(sampled(None, false));
        let kept = (0..10_000).filter(|_| sampled(Some(0.1), false)).count();
        assert!((800..1200).contains(&kept), "{kept}");
    }
}
