//! The versions a running banyan has applied: number, content hash, time, source, text.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;

/// How many versions are kept.
pub const KEPT: usize = 50;

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The config banyan started with.
    Startup,
    /// The config file changed on disk.
    File,
    /// SIGHUP.
    Signal,
    /// The admin API (reload, PUT, rollback).
    Api,
    /// A version another instance of the fleet published.
    Fleet,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::Startup => "startup",
            Origin::File => "file",
            Origin::Signal => "signal",
            Origin::Api => "api",
            Origin::Fleet => "fleet",
        }
    }
}

/// One applied config.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub number: u64,
    /// xxh3-128 of the text, hex.
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub applied_at: f64,
    pub source: Origin,
    /// Where the text came from: a file path, or what the API call was.
    pub detail: String,
    #[serde(skip)]
    pub text: Arc<str>,
}

/// The last `KEPT` versions, newest last.
#[derive(Debug, Default)]
pub struct History {
    versions: VecDeque<Version>,
    next: u64,
}

impl History {
    /// Record a new version and return its number.
    pub fn push(&mut self, text: Arc<str>, source: Origin, detail: String) -> &Version {
        self.next += 1;
        if self.versions.len() == KEPT {
            self.versions.pop_front();
        }
        self.versions.push_back(Version {
            number: self.next,
            hash: content_hash(&text),
            applied_at: crate::clock::now_unix(),
            source,
            detail,
            text,
        });
        self.versions
            .back()
            .unwrap_or_else(|| unreachable!("just pushed"))
    }

    pub fn current(&self) -> Option<&Version> {
        self.versions.back()
    }

    pub fn get(&self, number: u64) -> Option<&Version> {
        self.versions.iter().find(|v| v.number == number)
    }

    /// Newest first.
    pub fn list(&self) -> impl Iterator<Item = &Version> {
        self.versions.iter().rev()
    }
}

pub fn content_hash(text: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_fifty_numbered_in_order() {
        let mut h = History::default();
        for i in 0..60 {
            h.push(Arc::from(format!("v{i}")), Origin::Api, String::new());
        }
        assert_eq!(h.current().map(|v| v.number), Some(60));
        assert_eq!(h.list().count(), KEPT);
        assert!(h.get(10).is_none());
        assert_eq!(h.get(11).map(|v| &*v.text), Some("v10"));
        assert_eq!(h.list().next().map(|v| v.number), Some(60));
        assert_eq!(content_hash("a"), content_hash("a"));
        assert_ne!(content_hash("a"), content_hash("b"));
    }
}
