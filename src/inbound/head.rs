//! Checks of a request head that hyper's parser leaves to the application: anything a
//! proxy and the server behind it could read two ways is refused, not forwarded.

use super::{Limits, Refusal};
use http::{header, request::Parts, HeaderMap, Version};

/// Refuse a head that breaks a limit or that could be read two ways.
pub fn check(parts: &Parts, limits: &Limits) -> Result<(), Refusal> {
    let uri_len = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Err(Refusal::UriTooLong);
    }
    if parts.headers.len() > limits.max_headers {
        return Err(Refusal::HeadersTooLarge);
    }
    let headers = &parts.headers;
    // RFC 9112 6.1: a sender must not send both; a proxy that forwards both lets the
    // next hop pick the other framing (the classic CL.TE smuggling).
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        return Err(Refusal::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    check_transfer_encoding(headers)?;
    check_host(parts)
}

/// RFC 9112 6.1: chunked must be the final coding, and banyan decodes no other: anything
/// but one `Transfer-Encoding: chunked` (`gzip, chunked`, `chunked, chunked`, two
/// headers) is a framing another parser may read differently.
fn check_transfer_encoding(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut values = headers.get_all(header::TRANSFER_ENCODING).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(()),
        (Some(v), None) if is_chunked_alone(v.as_bytes()) => Ok(()),
        _ => Err(Refusal::BadRequest(
            "a Transfer-Encoding other than chunked alone",
        )),
    }
}

/// `chunked`, case-insensitive, with optional surrounding whitespace.
pub fn is_chunked_alone(value: &[u8]) -> bool {
    value.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// RFC 9112 3.2: exactly one Host on HTTP/1.1, and in absolute-form it must name the
/// same authority as the target (else a backend routing by Host sees another site).
fn check_host(parts: &Parts) -> Result<(), Refusal> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::BadRequest("more than one Host header"));
    }
    let authority = parts.uri.authority();
    if host.is_some_and(|h| !is_authority(h.as_bytes()))
        || authority.is_some_and(|a| !is_authority(a.as_str().as_bytes()))
    {
        return Err(Refusal::BadRequest(
            "the Host is not a host name or address with an optional port",
        ));
    }
    match (host, authority) {
        (None, None) if parts.version == Version::HTTP_11 => {
            Err(Refusal::BadRequest("no Host header"))
        }
        (Some(host), Some(authority))
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            Err(Refusal::BadRequest("Host differs from the request target"))
        }
        _ => Ok(()),
    }
}

/// RFC 3986 3.2.2 and RFC 9112 3.2: `host[:port]`, the host a name (letters, digits,
/// `-`, `.`, `_`, `~`), an IPv4 address or a bracketed IPv6 address, the port 0 to
/// 65535. No user info (`public@internal`), lists (`a, b`), paths or empty hosts: each
/// is a Host that banyan and the backend could read as two different sites.
pub fn is_authority(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(close) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let ipv6 = std::str::from_utf8(&value[1..close])
            .ok()
            .and_then(|t| t.parse::<std::net::Ipv6Addr>().ok());
        if ipv6.is_none() {
            return false;
        }
        match &value[close + 1..] {
            [] => (None, None),
            [b':', port @ ..] => (None, Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (Some(&value[..colon]), Some(&value[colon + 1..])),
            None => (Some(value), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    });
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p)
                .ok()
                .and_then(|t| t.parse::<u16>().ok())
                .is_some()
    });
    host_ok && port_ok
}

/// The declared body length, when it is over `max`.
pub fn declared_body_too_large(headers: &HeaderMap, max: u64) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(uri: &str, version: Version, headers: &[(&str, &str)]) -> Parts {
        let mut req = Request::builder().uri(uri).version(version);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).expect("request").into_parts().0
    }

    #[test]
    fn refusals() {
        let limits = Limits {
            max_uri_bytes: 16,
            max_headers: 3,
            ..Limits::default()
        };
        let h11 = Version::HTTP_11;
        let cases: Vec<(Parts, Result<(), Refusal>)> = vec![
            (parts("/ok", h11, &[("host", "a")]), Ok(())),
            (
                parts("/a-path-longer-than-16", h11, &[("host", "a")]),
                Err(Refusal::UriTooLong),
            ),
            (
                parts(
                    "/",
                    h11,
                    &[("host", "a"), ("x", "1"), ("y", "2"), ("z", "3")],
                ),
                Err(Refusal::HeadersTooLarge),
            ),
            (
                parts(
                    "/",
                    h11,
                    &[
                        ("host", "a"),
                        ("content-length", "4"),
                        ("transfer-encoding", "chunked"),
                    ],
                ),
                Err(Refusal::BadRequest(
                    "both Content-Length and Transfer-Encoding",
                )),
            ),
            (
                parts("/", h11, &[]),
                Err(Refusal::BadRequest("no Host header")),
            ),
            (parts("/", Version::HTTP_10, &[]), Ok(())),
            (
                parts("/", h11, &[("host", "a"), ("host", "b")]),
                Err(Refusal::BadRequest("more than one Host header")),
            ),
            (
                parts("http://internal/admin", h11, &[("host", "shop")]),
                Err(Refusal::BadRequest("Host differs from the request target")),
            ),
            (parts("http://Shop/x", h11, &[("host", "shop")]), Ok(())),
            // HTTP/2 carries the authority in the target and needs no Host.
            (parts("https://shop/x", Version::HTTP_2, &[]), Ok(())),
            (
                parts(
                    "/",
                    h11,
                    &[("host", "a"), ("transfer-encoding", "gzip, chunked")],
                ),
                Err(Refusal::BadRequest(
                    "a Transfer-Encoding other than chunked alone",
                )),
            ),
            (
                parts(
                    "/",
                    h11,
                    &[
                        ("host", "a"),
                        ("transfer-encoding", "chunked"),
                        ("transfer-encoding", "chunked"),
                    ],
                ),
                Err(Refusal::BadRequest(
                    "a Transfer-Encoding other than chunked alone",
                )),
            ),
            (
                parts(
                    "/",
                    h11,
                    &[("host", "a"), ("transfer-encoding", " Chunked ")],
                ),
                Ok(()),
            ),
            (
                parts("/", h11, &[("host", "public.example@internal.example")]),
                Err(Refusal::BadRequest(
                    "the Host is not a host name or address with an optional port",
                )),
            ),
            (
                parts("http://u@evil/x", h11, &[("host", "u@evil")]),
                Err(Refusal::BadRequest(
                    "the Host is not a host name or address with an optional port",
                )),
            ),
        ];
        for (p, expected) in cases {
            assert_eq!(check(&p, &limits), expected, "{} {:?}", p.uri, p.headers);
        }
    }

    #[test]
    fn authorities() {
        for good in [
            "shop.example",
            "shop.example:8080",
            "Shop-1.example_x~",
            "10.0.0.1:80",
            "[::1]",
            "[::1]:8443",
            "h:65535",
        ] {
            assert!(is_authority(good.as_bytes()), "{good}");
        }
        for bad in [
            "", "a, b", "a,b", "evil/x", "u@evil", "h:99999", "h:abc", "h:", ":80", "a b", "[::1",
            "[zz]", "[::1]x", "h:1:2", "a%2eb", "h:123456",
        ] {
            assert!(!is_authority(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn declared_lengths() {
        let p = parts("/", Version::HTTP_11, &[("content-length", "11")]);
        assert!(declared_body_too_large(&p.headers, 10));
        assert!(!declared_body_too_large(&p.headers, 11));
        let p = parts("/", Version::HTTP_11, &[]);
        assert!(!declared_body_too_large(&p.headers, 0));
    }
}
