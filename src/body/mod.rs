//! The proxy's body type, both ways: a body streamed from a peer (the client's request,
//! the upstream's response), or one held in memory (a request buffered for a fallback,
//! an answer banyan writes itself). An `Either`, not a boxed trait object: no allocation
//! per request.

pub mod error;
pub mod from_client;
pub mod tap;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tap::{Capture, Tap};

pub use error::BoxError;

/// A streamed or in-memory body. A streamed one may be copied for a shadow as it passes.
pub type ProxyBody<B = Incoming> = Either<Tap<B>, Full<Bytes>>;

/// What goes back to the client.
pub type ResponseBody = ProxyBody<crate::upstream::UpstreamBody>;

/// A body streamed from a peer as it arrives.
pub fn streamed<B: http_body::Body>(body: B) -> ProxyBody<B> {
    Either::Left(Tap::plain(body))
}

/// A body streamed from a peer, copied into `capture` as it passes.
pub fn tapped<B: http_body::Body>(body: B, capture: Capture) -> ProxyBody<B> {
    Either::Left(Tap::new(body, capture))
}

/// A body held whole in memory.
pub fn full<B>(bytes: impl Into<Bytes>) -> ProxyBody<B> {
    Either::Right(Full::new(bytes.into()))
}
