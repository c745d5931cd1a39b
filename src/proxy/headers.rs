//! Header hygiene between client and upstream: hop-by-hop headers, X-Forwarded-*,
//! x-request-id, Host.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Headers that banyan itself sets (`x-banyan-shadow` marks a copy, `x-banyan-error` its
/// own answers): a client must not be able to forge them.
const OWN_PREFIX: &str = "x-banyan-";

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), and h2c's
/// `HTTP2-Settings` (RFC 7540 3.2.1), which belongs to the upgrade banyan never forwards.
/// A static, not a const: a const array of names would be built and dropped at each use.
static HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HTTP2_SETTINGS,
];

/// Remove hop-by-hop headers, including those the Connection header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over their names costs less than ten lookups.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    remove_hop_by_hop_present(headers);
}

fn remove_hop_by_hop_present(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// The protocol a client asks to switch to, when it asks (`Connection: upgrade`).
pub fn upgrade_request(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if asks {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Whether the request's `TE` lists `trailers`.
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let coding = t.split(';').next().unwrap_or("").trim();
            coding.eq_ignore_ascii_case("trailers")
        })
}

/// What the proxy knows of the client's connection.
pub struct ClientContext<'a> {
    pub ip: IpAddr,
    pub scheme: &'static str,
    pub host: Option<&'a HeaderValue>,
    pub trust_forwarded: bool,
    /// The upgrade to ask the upstream for: what the client asked for and its route
    /// tunnels. Any other upgrade goes no further than banyan.
    pub upgrade: Option<HeaderValue>,
}

/// Prepare a client's request headers for the upstream. Returns whether the client
/// said it reads trailers (`TE: trailers`, removed with the other hop-by-hop headers):
/// an HTTP/2 upstream is told so again (see `Outgoing::request_for`).
pub fn forward_request_headers(headers: &mut HeaderMap, client: &ClientContext<'_>) -> bool {
    // One pass over the names finds both kinds of header to remove (most requests
    // carry neither).
    let (mut hop, mut own) = (false, false);
    for name in headers.keys() {
        hop |= HOP_BY_HOP.contains(name);
        own |= name.as_str().starts_with(OWN_PREFIX);
    }
    let mut trailers = false;
    if hop {
        trailers = accepts_trailers(headers);
        remove_hop_by_hop_present(headers);
    }
    if own {
        remove_own(headers);
    }
    // Room for the four headers set below at once: the map grows (and rehashes) once,
    // not once per insert.
    headers.reserve(4);
    if let Some(protocol) = client.upgrade.clone() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
    append_forwarded_for(headers, client.ip);
    if !client.trust_forwarded || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.scheme));
    }
    if !client.trust_forwarded || !headers.contains_key(&X_FORWARDED_HOST) {
        match client.host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host.clone()),
            None => headers.remove(X_FORWARDED_HOST),
        };
    }
    if !headers.contains_key(&X_REQUEST_ID) {
        headers.insert(X_REQUEST_ID, new_request_id());
    }
    trailers
}

/// Prepare an upstream's response headers for the client.
pub fn forward_response_headers(headers: &mut HeaderMap, switching_protocols: bool) {
    let upgrade = switching_protocols
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    remove_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// Remove every `x-banyan-*` header.
fn remove_own(headers: &mut HeaderMap) {
    let own: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(OWN_PREFIX))
        .cloned()
        .collect();
    for name in own {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    // Written on the stack, copied once into the header value.
    let mut value: smallvec::SmallVec<[u8; 64]> = smallvec::SmallVec::new();
    if let Some(prior) = headers.get(&X_FORWARDED_FOR) {
        let prior = prior.as_bytes().trim_ascii();
        if !prior.is_empty() {
            value.extend_from_slice(prior);
            value.extend_from_slice(b", ");
        }
    }
    write_ip(&mut value, ip);
    if let Ok(v) = HeaderValue::from_bytes(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

/// An address as text, an IPv4 one without the formatting machinery (every request
/// writes one).
fn write_ip(out: &mut smallvec::SmallVec<[u8; 64]>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(*octet).as_bytes());
            }
        }
        IpAddr::V6(_) => out.extend_from_slice(ip.to_string().as_bytes()),
    }
}

/// The client's address for routing (client-IP split keys): the TCP peer, or, behind a
/// trusted proxy, the address that proxy appended last to X-Forwarded-For.
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trust_forwarded: bool) -> IpAddr {
    if !trust_forwarded {
        return peer;
    }
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok())
        .unwrap_or(peer)
}

/// A fresh random request id (UUID v4).
pub fn new_request_id() -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forwarded_for_is_appended_as_text() {
        let mut h = map(&[("x-forwarded-for", " 10.0.0.1 ")]);
        append_forwarded_for(&mut h, "192.168.0.254".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.168.0.254");
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "::1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "::1");
        append_forwarded_for(&mut h, "0.0.0.0".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "::1, 0.0.0.0");
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn te_is_removed_and_trailers_remembered() {
        let ctx = ClientContext {
            ip: [10, 1, 2, 3].into(),
            scheme: "http",
            host: None,
            trust_forwarded: false,
            upgrade: None,
        };
        let mut h = map(&[("te", "gzip, Trailers;q=1"), ("connection", "te")]);
        assert!(forward_request_headers(&mut h, &ctx));
        assert!(!h.contains_key("te") && !h.contains_key("connection"));
        let mut h = map(&[("te", "gzip")]);
        assert!(!forward_request_headers(&mut h, &ctx));
        let mut h = map(&[("x-trailers", "te")]);
        assert!(!forward_request_headers(&mut h, &ctx));
    }

    #[test]
    fn forwarded_headers_are_set_and_appended() {
        let host = HeaderValue::from_static("shop.example");
        let ctx = ClientContext {
            ip: [10, 1, 2, 3].into(),
            scheme: "http",
            host: Some(&host),
            trust_forwarded: false,
            upgrade: None,
        };
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        forward_request_headers(&mut h, &ctx);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert_eq!(h["x-request-id"].len(), 36);

        let mut h = map(&[("x-forwarded-proto", "https"), ("x-request-id", "abc")]);
        forward_request_headers(
            &mut h,
            &ClientContext {
                trust_forwarded: true,
                ..ctx
            },
        );
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-request-id"], "abc");
    }

    #[test]
    fn client_ip_from_forwarded_for_only_when_trusted() {
        let peer: IpAddr = [10, 0, 0, 1].into();
        let h = map(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]);
        assert_eq!(client_ip(&h, peer, false), peer);
        assert_eq!(client_ip(&h, peer, true), IpAddr::from([198, 51, 100, 7]));
        let junk = map(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_ip(&junk, peer, true), peer);
        assert_eq!(client_ip(&HeaderMap::new(), peer, true), peer);
    }

    fn local(upgrade: Option<&'static str>) -> ClientContext<'static> {
        ClientContext {
            ip: [127, 0, 0, 1].into(),
            scheme: "http",
            host: None,
            trust_forwarded: false,
            upgrade: upgrade.map(HeaderValue::from_static),
        }
    }

    #[test]
    fn an_allowed_upgrade_survives_hygiene() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert_eq!(
            upgrade_request(&h),
            Some(HeaderValue::from_static("websocket"))
        );
        forward_request_headers(&mut h, &local(Some("websocket")));
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
    }

    #[test]
    fn an_upgrade_the_route_does_not_tunnel_is_removed_with_h2c_settings() {
        let mut h = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ]);
        forward_request_headers(&mut h, &local(None));
        for gone in ["connection", "upgrade", "http2-settings"] {
            assert!(!h.contains_key(gone), "{gone} was forwarded");
        }
        // Without Connection naming it, HTTP2-Settings still goes.
        let mut h = map(&[("http2-settings", "AAMAAABk")]);
        forward_request_headers(&mut h, &local(None));
        assert!(!h.contains_key("http2-settings"));
    }

    #[test]
    fn headers_banyan_owns_are_not_taken_from_clients() {
        let mut h = map(&[
            ("x-banyan-shadow", "1"),
            ("X-Banyan-Error", "forged"),
            ("x-banyanish", "kept"),
        ]);
        forward_request_headers(&mut h, &local(None));
        assert!(!h.contains_key("x-banyan-shadow"));
        assert!(!h.contains_key("x-banyan-error"));
        assert_eq!(h["x-banyanish"], "kept");
    }
}
