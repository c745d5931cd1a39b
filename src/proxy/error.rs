//! Errors banyan answers itself: one status and one `x-banyan-error` cause each, here only.

use crate::body::{self, ResponseBody};
use crate::grpc;
use crate::inbound::Refusal;
use crate::upstream::failure::UpstreamFailure;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

/// The header that names why banyan, not the upstream, produced a response.
pub const ERROR_HEADER: &str = "x-banyan-error";

/// Why a request could not be served by an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The endpoint refused or dropped the connection attempt.
    UpstreamConnect,
    /// Connecting or waiting for the upstream took longer than its timeout.
    UpstreamTimeout,
    /// The connection failed after it was made (reset, protocol error).
    UpstreamError,
    /// The upstream answered 101 to switch to a protocol the client did not ask for.
    UnrequestedUpgrade,
    /// A gRPC call's deadline (`grpc-timeout`) passed before the upstream answered.
    CallDeadline,
    /// banyan refused the request itself: malformed, ambiguous or over a limit.
    Refused(Refusal),
}

impl From<UpstreamFailure> for ProxyError {
    fn from(f: UpstreamFailure) -> Self {
        match f {
            UpstreamFailure::Connect => ProxyError::UpstreamConnect,
            UpstreamFailure::Timeout => ProxyError::UpstreamTimeout,
            UpstreamFailure::Error => ProxyError::UpstreamError,
        }
    }
}

impl ProxyError {
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::UpstreamConnect
            | ProxyError::UpstreamError
            | ProxyError::UnrequestedUpgrade => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout | ProxyError::CallDeadline => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Refused(r) => match r {
                Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
                Refusal::UriTooLong => StatusCode::URI_TOO_LONG,
                Refusal::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                Refusal::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
                Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            },
        }
    }

    /// The `x-banyan-error` value, also the fallback reason label.
    pub fn cause(self) -> &'static str {
        match self {
            ProxyError::UpstreamConnect => "upstream_connect_failed",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::UpstreamError => "upstream_error",
            ProxyError::UnrequestedUpgrade => "upstream_unrequested_upgrade",
            ProxyError::CallDeadline => "grpc_deadline_exceeded",
            ProxyError::Refused(r) => match r {
                Refusal::BadRequest(_) => "bad_request",
                Refusal::UriTooLong => "uri_too_long",
                Refusal::HeadersTooLarge => "headers_too_large",
                Refusal::BodyTooLarge => "body_too_large",
                Refusal::BodyTimeout => "body_timeout",
                Refusal::MethodNotAllowed => "method_not_allowed",
            },
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            ProxyError::Refused(r) => match r {
                Refusal::BadRequest(why) => why,
                Refusal::UriTooLong => "the request target is too long",
                Refusal::HeadersTooLarge => "the request has too many or too large headers",
                Refusal::BodyTooLarge => "the request body is larger than this route takes",
                Refusal::BodyTimeout => "the request body stopped arriving",
                Refusal::MethodNotAllowed => "this method is not allowed on this route",
            },
            ProxyError::UpstreamConnect => "could not connect to the upstream",
            ProxyError::UpstreamTimeout => "the upstream did not answer in time",
            ProxyError::CallDeadline => {
                "the call's deadline (grpc-timeout) passed before an answer from"
            }
            ProxyError::UpstreamError => "the upstream connection failed",
            ProxyError::UnrequestedUpgrade => {
                "the upstream switched to a protocol the client did not ask for:"
            }
        }
    }

    /// Classify a client error (see `UpstreamFailure::of`).
    pub fn from_client(err: &hyper_util::client::legacy::Error) -> Self {
        UpstreamFailure::of(err).into()
    }

    /// The status a gRPC call gets for this error: a gRPC client reads `grpc-status`,
    /// not the HTTP status, and reports a 502 as "UNAVAILABLE: Received http2 header
    /// with status: 502", which names no cause.
    pub fn grpc_code(self) -> grpc::Code {
        match self {
            ProxyError::UpstreamConnect | ProxyError::UpstreamError => grpc::Code::Unavailable,
            ProxyError::UpstreamTimeout | ProxyError::CallDeadline => grpc::Code::DeadlineExceeded,
            ProxyError::UnrequestedUpgrade => grpc::Code::Internal,
            ProxyError::Refused(r) => match r {
                Refusal::UriTooLong | Refusal::HeadersTooLarge | Refusal::BodyTooLarge => {
                    grpc::Code::ResourceExhausted
                }
                Refusal::BodyTimeout => grpc::Code::DeadlineExceeded,
                Refusal::MethodNotAllowed => grpc::Code::Unimplemented,
                // gRPC's own mapping of an HTTP 400.
                Refusal::BadRequest(_) => grpc::Code::Internal,
            },
        }
    }

    /// banyan's answer to a gRPC call it failed itself: HTTP 200 with the status in the
    /// headers and no body (a trailers-only response), `grpc-message` naming the cause.
    pub fn grpc_response(self, upstream: &str) -> Response<ResponseBody> {
        let message = match self {
            ProxyError::Refused(_) => format!("banyan: {}", self.sentence()),
            _ => format!("banyan: {} {upstream}", self.sentence()),
        };
        let mut resp = Response::new(body::full(Bytes::new()));
        let headers = resp.headers_mut();
        headers.insert(ERROR_HEADER, HeaderValue::from_static(self.cause()));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(
            grpc::STATUS,
            HeaderValue::from_static(self.grpc_code().wire()),
        );
        if let Ok(value) = HeaderValue::try_from(grpc::encode_message(&message)) {
            headers.insert(grpc::MESSAGE, value);
        }
        resp
    }

    pub fn response(self, upstream: &str) -> Response<ResponseBody> {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("");
        let body = match self {
            ProxyError::Refused(_) => {
                format!("{} {reason}: {}\n", status.as_u16(), self.sentence())
            }
            _ => format!(
                "{} {reason}: {} {upstream}\n",
                status.as_u16(),
                self.sentence()
            ),
        };
        let mut resp = Response::new(body::full(body));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(ERROR_HEADER, HeaderValue::from_static(self.cause()));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        resp
    }
}
