//! Who may change things: mutating admin calls need `Authorization: Bearer <token>` when
//! a token is set (`BANYAN_ADMIN_TOKEN`, else the config's `admin.token_file`).

use crate::config::AdminSettings;
use http::HeaderMap;

/// The environment variable that holds the admin token.
pub const TOKEN_ENV: &str = "BANYAN_ADMIN_TOKEN";

/// The token in force: the environment's (read once, at start), else the config's.
pub fn expected<'a>(env_token: Option<&'a str>, settings: &'a AdminSettings) -> Option<&'a str> {
    env_token.or(settings.token.as_ref().map(|t| t.0.as_str()))
}

/// The token from the environment, if set and not empty.
pub fn from_env() -> Option<String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// A warning when the admin listener is reachable beyond this machine and no token guards
/// its mutating calls.
pub fn exposure_warning(settings: &AdminSettings, env_token: Option<&str>) -> Option<String> {
    let exposed = !settings.listen.ip().is_loopback();
    (exposed && expected(env_token, settings).is_none()).then(|| {
        format!(
            "admin listens on {} (not loopback) with no token: anyone who reaches it can change the rules; set {TOKEN_ENV} or admin.token_file",
            settings.listen
        )
    })
}

/// Whether the request may mutate: always when no token is set.
pub fn authorized(headers: &HeaderMap, expected: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq(given.trim().as_bytes(), expected.as_bytes())
}

/// Compare without an early exit, so timing does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use http::HeaderValue;

    #[test]
    fn exposed_admin_without_a_token_is_flagged() {
        let mut settings = AdminSettings {
            listen: ([0, 0, 0, 0], 9090).into(),
            token: None,
            allowed_hosts: vec![],
        };
        assert!(exposure_warning(&settings, None).is_some());
        assert!(exposure_warning(&settings, Some("t")).is_none());
        settings.listen = ([127, 0, 0, 1], 9090).into();
        assert!(exposure_warning(&settings, None).is_none());
    }

    #[test]
    fn bearer_token_checks() {
        let settings = AdminSettings {
            listen: ([127, 0, 0, 1], 0).into(),
            token: Some(Secret("from-file".into())),
            allowed_hosts: vec![],
        };
        assert_eq!(expected(Some("env"), &settings), Some("env"));
        assert_eq!(expected(None, &settings), Some("from-file"));
        let mut h = HeaderMap::new();
        assert!(authorized(&h, None));
        assert!(!authorized(&h, Some("s3cret")));
        h.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        assert!(authorized(&h, Some("s3cret")));
        assert!(!authorized(&h, Some("s3cret2")));
        h.insert("authorization", HeaderValue::from_static("Basic s3cret"));
        assert!(!authorized(&h, Some("s3cret")));
    }
}
