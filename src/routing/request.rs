//! A borrowed view of the parts of a request that routing looks at.

use http::{HeaderMap, HeaderName, Method};
use std::borrow::Cow;
use std::net::IpAddr;

/// What routing needs to know of a request, borrowed from it: no copies on the hot path.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// The host without its port, as the client sent it (Host header or :authority).
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub client_ip: IpAddr,
}

impl<'a> RequestView<'a> {
    pub fn new(
        method: &'a Method,
        uri: &'a http::Uri,
        headers: &'a HeaderMap,
        client_ip: IpAddr,
    ) -> Self {
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .map(strip_port);
        RequestView {
            method,
            host,
            path: uri.path(),
            query: uri.query(),
            headers,
            client_ip,
        }
    }

    /// Every value of a header, as text (values that are not UTF-8 are skipped).
    pub fn header_values(&self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        let query = self.query?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The value of a cookie, from any of the Cookie headers (HTTP/2 may split them).
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"'))
            })
    }
}

/// `example.com:8080` -> `example.com`, `[::1]:8080` -> `[::1]`.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn view<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView::new(&Method::GET, uri, headers, [127, 0, 0, 1].into())
    }

    #[test]
    fn host_comes_from_host_header_then_authority_without_port() {
        let uri: http::Uri = "http://a.example:81/x".parse().expect("uri");
        let mut headers = HeaderMap::new();
        assert_eq!(view(&uri, &headers).host, Some("a.example"));
        headers.insert("host", HeaderValue::from_static("b.example:8080"));
        assert_eq!(view(&uri, &headers).host, Some("b.example"));
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("plain"), "plain");
    }

    #[test]
    fn query_params_are_decoded_and_cookies_found_across_headers() {
        let uri: http::Uri = "/s?q=red%20shoes&uid=42&uid=7".parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("a=1; sid=\"xyz\""));
        headers.append("cookie", HeaderValue::from_static("beta=on"));
        let v = view(&uri, &headers);
        assert_eq!(v.query_param("q").as_deref(), Some("red shoes"));
        assert_eq!(v.query_param("uid").as_deref(), Some("42"));
        assert_eq!(v.query_param("none"), None);
        assert_eq!(v.cookie("sid"), Some("xyz"));
        assert_eq!(v.cookie("beta"), Some("on"));
        assert_eq!(v.cookie("b"), None);
    }
}
