//! The proxy's body type, both ways: a body streamed from a peer (the client's request,
//! the upstream's response), or one held in memory (a request buffered for a fallback,
//! an answer banyan writes itself). An `Either`, not a boxed trait object: no allocation
//! per request.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// A streamed or in-memory body.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// What goes upstream.
pub type RequestBody = ProxyBody;

/// What goes back to the client.
pub type ResponseBody = ProxyBody;

/// A body streamed from a peer as it arrives.
pub fn streamed(body: Incoming) -> ProxyBody {
    Either::Left(body)
}

/// A body held whole in memory.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Either::Right(Full::new(bytes.into()))
}
