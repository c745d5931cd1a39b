//! Sending a prepared request to an upstream pool, and the fallback to legacy.

use super::error::ProxyError;
use crate::body::{self, RequestBody};
use crate::upstream::Pool;
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

/// A request ready to go to any upstream: only the endpoint and Host are left to choose.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: PathAndQuery,
    pub headers: HeaderMap,
    /// The host the client asked for, sent upstream unless the upstream sets its own.
    pub client_host: Option<HeaderValue>,
}

impl Outgoing {
    /// The request for the next endpoint of `pool`.
    pub fn into_request(self, pool: &Pool, body: RequestBody) -> Request<RequestBody> {
        let endpoint = pool.pick();
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
        *req.headers_mut() = headers;
        req
    }
}

/// Send one request to a pool and wait for the response headers.
pub async fn send(
    pool: &Pool,
    req: Request<RequestBody>,
) -> Result<Response<Incoming>, ProxyError> {
    pool.client()
        .request(req)
        .await
        .map_err(|e| {
            let err = ProxyError::from_client(&e);
            tracing::debug!(upstream = %pool.name(), error = %e, cause = err.cause(), "upstream request failed");
            err
        })
}

/// Methods that may be sent twice without changing the outcome (RFC 9110 9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Why a first attempt should go to the fallback, if it should: the label of the count.
pub fn fallback_reason(result: &Result<Response<Incoming>, ProxyError>) -> Option<&'static str> {
    match result {
        Err(ProxyError::UpstreamConnect) => Some("connect_failed"),
        Err(ProxyError::UpstreamTimeout) => Some("timeout"),
        Err(_) => None,
        Ok(resp) => match resp.status() {
            StatusCode::BAD_GATEWAY => Some("status_502"),
            StatusCode::SERVICE_UNAVAILABLE => Some("status_503"),
            StatusCode::GATEWAY_TIMEOUT => Some("status_504"),
            _ => None,
        },
    }
}

/// Try `primary`, then `fallback` (with the request as the client sent it and the same
/// buffered body) when the first failed in a
/// way that allows it. Returns the result and whether the fallback answered.
pub async fn send_with_fallback(
    primary: &Pool,
    fallback: &Pool,
    outgoing: Outgoing,
    fallback_request: Outgoing,
    body: Bytes,
    mut count: impl FnMut(&'static str),
) -> (Result<Response<Incoming>, ProxyError>, bool) {
    if primary.all_unhealthy() {
        count("unhealthy");
        let req = fallback_request.into_request(fallback, body::full(body));
        return (send(fallback, req).await, true);
    }
    let first = outgoing.into_request(primary, body::full(body.clone()));
    let result = send(primary, first).await;
    match fallback_reason(&result) {
        None => (result, false),
        Some(reason) => {
            count(reason);
            drop(result);
            let req = fallback_request.into_request(fallback, body::full(body));
            (send(fallback, req).await, true)
        }
    }
}
