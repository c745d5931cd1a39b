//! `[upstreams.NAME]`: endpoints, timeouts, TLS, retries, health checks and outlier
//! detection of each pool.

use super::{is_name, Compiler};
use crate::config::raw::{RawHealthCheck, RawOutlier, RawUpstream};
use crate::upstream::outlier::OutlierSpec;
use crate::upstream::spec::{EndpointSpec, HealthCheckSpec, UpstreamSpec, UpstreamTls};
use http::HeaderValue;
use std::time::Duration;
use toml::Spanned;

/// One more attempt on another endpoint, as nginx's `proxy_next_upstream` does by default.
const DEFAULT_RETRIES: u32 = 1;
const MAX_RETRIES: u32 = 5;

impl Compiler<'_> {
    pub(super) fn upstreams(
        &mut self,
        raw: &std::collections::BTreeMap<String, RawUpstream>,
    ) -> Vec<UpstreamSpec> {
        if raw.is_empty() {
            self.error(
                0..0,
                "no upstreams are defined: define at least the monolith, as [upstreams.legacy]",
            );
        }
        raw.iter().map(|(name, u)| self.upstream(name, u)).collect()
    }

    fn upstream(&mut self, name: &str, raw: &RawUpstream) -> UpstreamSpec {
        // Tables written as [headers] carry no span of their own: point at the endpoints.
        let span = raw.endpoints.span();
        if !is_name(name) {
            self.error(
                span.clone(),
                format!("upstream name {name:?} may hold only letters, digits, '-', '_' and '.'"),
            );
        }
        if raw.endpoints.get_ref().is_empty() {
            self.error(
                raw.endpoints.span(),
                format!("upstream {name:?} has no endpoints: list at least one, such as \"http://127.0.0.1:8000\""),
            );
        }
        let endpoints = raw
            .endpoints
            .get_ref()
            .iter()
            .filter_map(|e| match EndpointSpec::parse(e.get_ref()) {
                Ok(ep) => Some(ep),
                Err(msg) => {
                    self.error(e.span(), format!("upstream {name:?}: {msg}"));
                    None
                }
            })
            .collect();
        let host = raw
            .host
            .as_ref()
            .and_then(|h| match HeaderValue::from_str(h.get_ref()) {
                Ok(v) if !h.get_ref().is_empty() => Some(v),
                _ => {
                    self.error(
                        h.span(),
                        format!(
                            "upstream {name:?}: host {:?} is not a valid Host header",
                            h.get_ref()
                        ),
                    );
                    None
                }
            });
        let health_check = raw
            .health_check
            .as_ref()
            .map(|h| self.health_check(name, h));
        UpstreamSpec {
            name: name.to_string(),
            endpoints,
            host,
            connect_timeout: self.duration(raw.connect_timeout.as_ref(), Duration::from_secs(5)),
            read_timeout: self.duration(raw.read_timeout.as_ref(), Duration::from_secs(60)),
            write_timeout: self.duration(raw.write_timeout.as_ref(), Duration::from_secs(60)),
            idle_timeout: self.duration(raw.idle_timeout.as_ref(), Duration::from_secs(90)),
            http2: raw.http2,
            health_check,
            retries: self.retries(name, raw.retries.as_ref()),
            outlier: self.outlier(raw.outlier_detection.as_ref()),
            tls: self.upstream_tls(name, raw),
        }
    }

    fn retries(&mut self, upstream: &str, raw: Option<&Spanned<i64>>) -> u32 {
        let Some(raw) = raw else {
            return DEFAULT_RETRIES;
        };
        match u32::try_from(*raw.get_ref()) {
            Ok(n) if n <= MAX_RETRIES => n,
            _ => {
                self.error(
                    raw.span(),
                    format!("upstream {upstream:?}: retries must be 0 to {MAX_RETRIES}"),
                );
                DEFAULT_RETRIES
            }
        }
    }

    fn outlier(&mut self, raw: Option<&Spanned<RawOutlier>>) -> Option<OutlierSpec> {
        let d = OutlierSpec::default();
        let Some(raw) = raw else { return Some(d) };
        let raw = raw.get_ref();
        let spec = OutlierSpec {
            consecutive_failures: self.count(
                raw.consecutive_failures.as_ref(),
                d.consecutive_failures,
                "consecutive_failures",
            ),
            base_ejection: self.duration(raw.base_ejection.as_ref(), d.base_ejection),
            max_ejection: self.duration(raw.max_ejection.as_ref(), d.max_ejection),
            max_ejected_percent: match &raw.max_ejected_percent {
                None => d.max_ejected_percent,
                Some(p) => match u32::try_from(*p.get_ref()) {
                    Ok(n) if n <= 100 => n,
                    _ => {
                        self.error(p.span(), "max_ejected_percent must be 0 to 100");
                        d.max_ejected_percent
                    }
                },
            },
        };
        if spec.max_ejection < spec.base_ejection {
            if let Some(m) = &raw.max_ejection {
                self.error(
                    m.span(),
                    "max_ejection must not be shorter than base_ejection",
                );
            }
        }
        raw.enabled.then_some(spec)
    }

    fn upstream_tls(&mut self, upstream: &str, raw: &RawUpstream) -> UpstreamTls {
        let insecure = raw.insecure_skip_verify.as_ref().filter(|v| *v.get_ref());
        if let Some(flag) = insecure {
            self.warning(
                flag.span(),
                format!("upstream {upstream:?}: insecure_skip_verify = true: its endpoints' TLS certificates are not verified, so anyone on the path can read and change its traffic"),
            );
        }
        let roots = match &raw.ca_file {
            None => Vec::new(),
            Some(file) if !self.reads_file(file.span()) => Vec::new(),
            Some(file) => match crate::tls::read_certificates(std::path::Path::new(file.get_ref()))
            {
                Ok(certs) => certs,
                Err(e) => {
                    self.error(file.span(), format!("upstream {upstream:?}: ca_file: {e}"));
                    Vec::new()
                }
            },
        };
        UpstreamTls {
            roots,
            insecure_skip_verify: insecure.is_some(),
        }
    }

    fn health_check(&mut self, upstream: &str, raw: &Spanned<RawHealthCheck>) -> HealthCheckSpec {
        let raw = raw.get_ref();
        if !raw.path.get_ref().starts_with('/')
            || raw
                .path
                .get_ref()
                .parse::<http::uri::PathAndQuery>()
                .is_err()
        {
            self.error(
                raw.path.span(),
                format!("upstream {upstream:?}: health check path {:?} must be a path starting with '/'", raw.path.get_ref()),
            );
        }
        let interval = self.duration(raw.interval.as_ref(), Duration::from_secs(5));
        let timeout = self.duration(raw.timeout.as_ref(), Duration::from_secs(2));
        HealthCheckSpec {
            path: raw.path.get_ref().clone(),
            interval,
            timeout,
            healthy_threshold: self.count(raw.healthy_threshold.as_ref(), 2, "healthy_threshold"),
            unhealthy_threshold: self.count(
                raw.unhealthy_threshold.as_ref(),
                3,
                "unhealthy_threshold",
            ),
        }
    }
}
