//! The two body types of the proxy: what goes upstream and what goes back to the client.
//! Enums rather than boxed trait objects: no allocation per request.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Errors from either kind of body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project_lite::pin_project! {
    /// A request body on its way upstream: streamed from the client, or buffered whole
    /// (so it can be sent again to a fallback).
    #[project = RequestBodyProj]
    pub enum RequestBody {
        Streaming { #[pin] body: Incoming },
        Buffered { #[pin] body: Full<Bytes> },
    }
}

impl RequestBody {
    pub fn buffered(bytes: Bytes) -> Self {
        RequestBody::Buffered {
            body: Full::new(bytes),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            RequestBodyProj::Streaming { body } => body.poll_frame(cx).map_err(Into::into),
            RequestBodyProj::Buffered { body } => body.poll_frame(cx).map_err(|e| match e {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streaming { body } => body.is_end_stream(),
            RequestBody::Buffered { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streaming { body } => body.size_hint(),
            RequestBody::Buffered { body } => body.size_hint(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body on its way to the client: the upstream's, streamed, or one banyan
    /// wrote itself (errors, admin pages).
    #[project = ResponseBodyProj]
    pub enum ResponseBody {
        Upstream { #[pin] body: Incoming },
        Local { #[pin] body: Full<Bytes> },
    }
}

impl ResponseBody {
    pub fn local(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Local {
            body: Full::new(bytes.into()),
        }
    }

    pub fn empty() -> Self {
        Self::local(Bytes::new())
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            ResponseBodyProj::Upstream { body } => body.poll_frame(cx).map_err(Into::into),
            ResponseBodyProj::Local { body } => body.poll_frame(cx).map_err(|e| match e {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream { body } => body.is_end_stream(),
            ResponseBody::Local { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream { body } => body.size_hint(),
            ResponseBody::Local { body } => body.size_hint(),
        }
    }
}
