//! What an upstream is, as validated config: pure data, comparable, so a reload can tell
//! which pools did not change.

use http::uri::{Authority, Scheme};
use http::HeaderValue;
use std::fmt;
use std::time::Duration;

/// One named pool of endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamSpec {
    pub name: String,
    pub endpoints: Vec<EndpointSpec>,
    /// Host header sent instead of the client's.
    pub host: Option<HeaderValue>,
    pub connect_timeout: Duration,
    /// Longest wait for the upstream to send anything (headers or the next body bytes).
    pub read_timeout: Duration,
    /// Longest wait for the upstream to accept the next request bytes.
    pub write_timeout: Duration,
    /// How long an unused pooled connection is kept.
    pub idle_timeout: Duration,
    /// Speak HTTP/2 (prior knowledge) to the endpoints instead of HTTP/1.1.
    pub http2: bool,
    pub health_check: Option<HealthCheckSpec>,
    /// Further attempts of an idempotent request that could not connect (other endpoints).
    pub retries: u32,
    /// Passive outlier detection; None when turned off.
    pub outlier: Option<crate::upstream::outlier::OutlierSpec>,
    pub tls: UpstreamTls,
}

/// How the endpoints' certificates are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// The CAs of `ca_file`; the system's roots when empty.
    pub roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub insecure_skip_verify: bool,
}

/// `http://10.0.0.5:8000` or `https://items.internal` (port 443 implied).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointSpec {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl fmt::Display for EndpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

impl EndpointSpec {
    /// Parse `scheme://host[:port]`; a path other than `/` is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("endpoint {text:?} is not a URL: {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("endpoint {text:?} needs a scheme: http:// or https://"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!(
                "endpoint {text:?} has scheme {scheme}: only http and https are supported"
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("endpoint {text:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("endpoint {text:?} must not carry credentials"));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(format!(
                "endpoint {text:?} has a path: give only scheme, host and port"
            ));
        }
        let authority = if authority.port().is_some() {
            authority
        } else {
            let port = if scheme == Scheme::HTTPS { 443 } else { 80 };
            format!("{}:{port}", authority.host())
                .parse()
                .map_err(|e| format!("endpoint {text:?}: {e}"))?
        };
        Ok(EndpointSpec { scheme, authority })
    }
}

/// Active HTTP health checking of every endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheckSpec {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy endpoint healthy again.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_default_ports() {
        let e = EndpointSpec::parse("http://127.0.0.1:8001").expect("ok");
        assert_eq!(e.to_string(), "http://127.0.0.1:8001");
        let e = EndpointSpec::parse("https://items.internal").expect("ok");
        assert_eq!(e.to_string(), "https://items.internal:443");
        let e = EndpointSpec::parse("http://[::1]").expect("ok");
        assert_eq!(e.to_string(), "http://[::1]:80");
        for bad in [
            "127.0.0.1:80",
            "ftp://x",
            "http://x/api",
            "http://u:p@x",
            "not a url",
        ] {
            assert!(EndpointSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
