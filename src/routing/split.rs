//! Sticky percentage splits. A key (a user id, a session cookie, the client IP) hashes to
//! one of 10,000 buckets; buckets below the threshold go to the new side. The bucket of a
//! key never changes, so raising the percentage only moves users from the base to the
//! new side, never back, and every banyan instance agrees (xxh3 is stable and seeded by
//! the route, not by the process).

use super::request::RequestView;
use http::HeaderName;
use std::borrow::Cow;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Buckets per split: a percentage has a resolution of 0.01.
pub const BUCKETS: u32 = 10_000;

/// What identifies a user for a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitKey {
    Header(HeaderName),
    Cookie(String),
    Query(String),
    ClientIp,
}

impl SplitKey {
    /// The key's value for a request; the client IP when the request lacks it, so a
    /// request without the key is still sticky per client.
    pub fn value<'a>(&self, req: &RequestView<'a>) -> (Cow<'a, [u8]>, bool) {
        let found: Option<Cow<'a, [u8]>> = match self {
            SplitKey::Header(name) => req.headers.get(name).map(|v| Cow::Borrowed(v.as_bytes())),
            SplitKey::Cookie(name) => req.cookie(name).map(|v| Cow::Borrowed(v.as_bytes())),
            SplitKey::Query(name) => req.query_param(name).map(|v| match v {
                Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            }),
            SplitKey::ClientIp => None,
        };
        match found {
            Some(v) => (v, true),
            None => (Cow::Owned(req.client_ip.to_string().into_bytes()), false),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SplitKey::Header(h) => format!("header {h}"),
            SplitKey::Cookie(c) => format!("cookie {c}"),
            SplitKey::Query(q) => format!("query parameter {q}"),
            SplitKey::ClientIp => "client IP".into(),
        }
    }
}

/// Percentage in hundredths (0..=10,000) from a percentage (0.0..=100.0).
pub fn threshold(percent: f64) -> u32 {
    (percent * 100.0).round().clamp(0.0, BUCKETS as f64) as u32
}

/// The bucket (0..10,000) of a key under a route's salt.
pub fn bucket(salt: u64, key: &[u8]) -> u32 {
    (xxh3_64_with_seed(key, salt) % u64::from(BUCKETS)) as u32
}

/// The seed for a route: its configured salt, or its name.
pub fn salt_for(route_name: &str, salt: Option<&str>) -> u64 {
    xxh3_64_with_seed(salt.unwrap_or(route_name).as_bytes(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_close_to_the_percentage() {
        let salt = salt_for("items", None);
        for percent in [1.0, 10.0, 33.3, 50.0, 90.0] {
            let t = threshold(percent);
            let new = (0..10_000)
                .filter(|i| bucket(salt, format!("user-{i}").as_bytes()) < t)
                .count();
            let share = new as f64 / 100.0;
            assert!(
                (share - percent).abs() <= 2.0,
                "{percent}% configured, {share}% seen"
            );
        }
    }

    #[test]
    fn raising_the_percentage_never_moves_a_key_back() {
        let salt = salt_for("items", None);
        for i in 0..10_000 {
            let b = bucket(salt, format!("user-{i}").as_bytes());
            let at_10 = b < threshold(10.0);
            let at_20 = b < threshold(20.0);
            assert!(!at_10 || at_20, "user-{i} moved back");
        }
    }

    #[test]
    fn threshold_bounds() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(100.0), BUCKETS);
        assert_eq!(threshold(12.5), 1250);
        assert_ne!(salt_for("a", None), salt_for("b", None));
        assert_eq!(salt_for("a", Some("pinned")), salt_for("b", Some("pinned")));
    }
}
