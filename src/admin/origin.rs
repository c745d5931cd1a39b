//! Whether a mutating admin call could have been sent by a web page the engineer opened,
//! rather than by the engineer: a cross-site form or fetch (CSRF), or a page on an
//! attacker's name that resolves to this machine (DNS rebinding). A token stops both;
//! without one, these checks are what stands in the way.

use http::{header, HeaderMap};
use std::net::{IpAddr, SocketAddr};

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// The Host must name this admin listener: an IP address (a rebinding page is always on
/// a DNS name), `localhost`, or a name in `admin.allowed_hosts`. A browser's cross-site
/// request (`Origin` of another host, `Origin: null`, `Sec-Fetch-Site` other than
/// `same-origin` or `none`) is refused.
pub fn check(
    headers: &HeaderMap,
    listen: SocketAddr,
    allowed_hosts: &[String],
) -> Result<(), Refused> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or(Refused("the request has no Host header"))?;
    if !host_allowed(host, listen, allowed_hosts) {
        return Err(Refused(
            "the Host is not this admin listener's address, a loopback name or one in admin.allowed_hosts",
        ));
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(Refused("a cross-site request (Sec-Fetch-Site)"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host));
        if !same {
            return Err(Refused(
                "a cross-site request (Origin is not this listener)",
            ));
        }
    }
    Ok(())
}

fn host_allowed(host: &str, listen: SocketAddr, allowed_hosts: &[String]) -> bool {
    let name = strip_port(host);
    if host.eq_ignore_ascii_case(&listen.to_string()) {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return true;
    }
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.split_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hosts() {
        let listen: SocketAddr = ([127, 0, 0, 1], 9090).into();
        let allowed = vec!["banyan-admin.internal".to_string()];
        let ok = |host: &'static str| check(&headers(&[("host", host)]), listen, &allowed).is_ok();
        assert!(ok("127.0.0.1:9090"));
        assert!(ok("localhost:9090"));
        assert!(ok("10.2.3.4:9090"), "a pod IP, as Prometheus scrapes");
        assert!(ok("[::1]:9090"));
        assert!(ok("banyan-admin.internal:9090"));
        assert!(ok("BANYAN-admin.internal"));
        assert!(!ok("evil.example:9090"));
        assert!(!ok("127.0.0.1.evil.example"));
        assert!(check(&HeaderMap::new(), listen, &allowed).is_err());
    }

    #[test]
    fn cross_site_requests() {
        let listen: SocketAddr = ([127, 0, 0, 1], 9090).into();
        let call = |pairs: &[(&'static str, &'static str)]| check(&headers(pairs), listen, &[]);
        assert!(call(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "http://127.0.0.1:9090")
        ])
        .is_ok());
        assert!(call(&[
            ("host", "127.0.0.1:9090"),
            ("sec-fetch-site", "same-origin")
        ])
        .is_ok());
        assert!(call(&[("host", "127.0.0.1:9090"), ("sec-fetch-site", "none")]).is_ok());
        assert!(call(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "http://evil.example")
        ])
        .is_err());
        assert!(call(&[("host", "127.0.0.1:9090"), ("origin", "null")]).is_err());
        assert!(call(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "http://127.0.0.1:9091")
        ])
        .is_err());
        assert!(call(&[("host", "127.0.0.1:9090"), ("sec-fetch-site", "cross-site")]).is_err());
        assert!(call(&[("host", "127.0.0.1:9090"), ("sec-fetch-site", "same-site")]).is_err());
    }
}
