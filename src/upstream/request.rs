//! A request ready for any endpoint of a pool: the proxy prepares it once (header
//! hygiene, rewrite), the shadow copies it, and only the endpoint and Host are chosen
//! when it is sent.

use crate::upstream::Pool;
use http::uri::PathAndQuery;
use http::{header, HeaderMap, HeaderValue, Method, Request, Uri, Version};

/// A request ready to go to any upstream: only the endpoint and Host are left to choose.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: PathAndQuery,
    pub headers: HeaderMap,
    /// The host the client asked for, sent upstream unless the upstream sets its own.
    pub client_host: Option<HeaderValue>,
    /// The client sent `TE: trailers`. Hop-by-hop, so removed, but an HTTP/2 upstream
    /// is told again: gRPC servers refuse a call without it (RFC 9113 8.2.2 allows this
    /// one value; Envoy and nginx's grpc_pass send it too).
    pub te_trailers: bool,
}

impl Outgoing {
    /// The request for the next endpoint of `pool` (for a copy: no outcome is counted).
    pub fn into_request<B>(self, pool: &Pool, body: B) -> Request<B> {
        let index = pool.pick(&[]);
        self.request_for(pool, index, body)
    }

    /// The Host sent to endpoint `index` of `pool`: the upstream's own, else the
    /// client's, else the endpoint's authority.
    pub fn host_for(&self, pool: &Pool, index: usize) -> Option<HeaderValue> {
        pool.spec()
            .host
            .clone()
            .or_else(|| self.client_host.clone())
            .or_else(|| HeaderValue::from_str(pool.endpoints()[index].spec.authority.as_str()).ok())
    }

    /// The request for endpoint `index` of `pool`.
    pub fn request_for<B>(self, pool: &Pool, index: usize, body: B) -> Request<B> {
        let endpoint = &pool.endpoints()[index];
        let uri = Uri::builder()
            .scheme(endpoint.spec.scheme.clone())
            .authority(endpoint.spec.authority.clone())
            .path_and_query(self.path_and_query)
            .build()
            .unwrap_or_default();
        let mut req = Request::new(body);
        *req.method_mut() = self.method;
        *req.uri_mut() = uri;
        *req.version_mut() = if pool.spec().http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let mut headers = self.headers;
        let host = pool
            .spec()
            .host
            .clone()
            .or(self.client_host)
            .or_else(|| HeaderValue::from_str(endpoint.spec.authority.as_str()).ok());
        if let Some(host) = host {
            headers.insert(header::HOST, host);
        }
        if self.te_trailers && pool.spec().http2 {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        *req.headers_mut() = headers;
        req
    }
}

/// Methods that may be sent twice without changing the outcome (RFC 9110 9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
