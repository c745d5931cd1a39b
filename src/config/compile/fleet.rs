//! `[fleet]`: the PostgreSQL the instances share, and who this instance is. The URL may
//! hold a password, so it may come from the environment or a file instead of the config,
//! which is kept in the version history and shared with every instance.

use super::Compiler;
use crate::config::raw::RawFleet;
use crate::config::{FleetSettings, Secret, FLEET_POSTGRES_ENV};
use std::str::FromStr;
use std::time::Duration;
use toml::Spanned;

const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);

impl Compiler<'_> {
    pub(super) fn fleet(&mut self, raw: &Spanned<RawFleet>) -> FleetSettings {
        let r = raw.get_ref();
        let from_env = std::env::var(FLEET_POSTGRES_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let postgres = match (from_env, &r.postgres_file, &r.postgres) {
            (Some(url), _, _) => self.postgres_url(raw.span(), url, FLEET_POSTGRES_ENV),
            (None, Some(file), _) => self.postgres_file(file),
            (None, None, Some(url)) => {
                if has_password(url.get_ref()) {
                    self.warning(url.span(), format!("the postgres URL in the config holds a password, and the config is kept in the version history and shared by the fleet: set {FLEET_POSTGRES_ENV} or postgres_file instead"));
                }
                self.postgres_url(url.span(), url.get_ref().clone(), "fleet.postgres")
            }
            (None, None, None) => {
                self.error(raw.span(), format!("[fleet] needs its PostgreSQL: postgres = \"postgres://...\", postgres_file, or {FLEET_POSTGRES_ENV}"));
                None
            }
        };
        let instance = r.instance.as_ref().and_then(|i| {
            let name = i.get_ref().trim();
            if name.is_empty() || name.len() > 200 {
                self.error(
                    i.span(),
                    "fleet.instance must be a name of 1 to 200 characters",
                );
                None
            } else {
                Some(name.to_string())
            }
        });
        FleetSettings {
            postgres,
            instance,
            heartbeat: self.duration(r.heartbeat.as_ref(), DEFAULT_HEARTBEAT),
        }
    }

    fn postgres_file(&mut self, file: &Spanned<String>) -> Option<Secret> {
        if !self.reads_file(file.span()) {
            return None;
        }
        match std::fs::read_to_string(file.get_ref()) {
            Ok(text) => self.postgres_url(file.span(), text.trim().to_string(), "postgres_file"),
            Err(e) => {
                self.error(
                    file.span(),
                    format!("cannot read postgres_file {:?}: {e}", file.get_ref()),
                );
                None
            }
        }
    }

    /// A URL that tokio-postgres accepts; the error never repeats it (it may hold a
    /// password).
    fn postgres_url(
        &mut self,
        span: std::ops::Range<usize>,
        url: String,
        from: &str,
    ) -> Option<Secret> {
        match tokio_postgres::Config::from_str(&url) {
            Ok(_) => Some(Secret(url)),
            Err(e) => {
                self.error(
                    span,
                    format!("the PostgreSQL URL from {from} is not valid: {e}"),
                );
                None
            }
        }
    }
}

/// Whether a `postgres://user:password@host/db` URL (or a `password=` key) holds one.
fn has_password(url: &str) -> bool {
    let before_host = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['@', '/']).next().unwrap_or(""))
        .filter(|_| url.contains('@'));
    before_host.is_some_and(|userinfo| userinfo.contains(':')) || url.contains("password=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_seen() {
        assert!(has_password("postgres://banyan:s3cret@db/banyan"));
        assert!(has_password("host=db user=banyan password=s3cret"));
        assert!(!has_password("postgres://banyan@db:5432/banyan"));
        assert!(!has_password("postgres://db:5432/banyan"));
    }
}
