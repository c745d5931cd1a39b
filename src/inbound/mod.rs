//! What comes in from clients, checked as hostile: the limits a client's request must
//! keep, and what checks them. Pure checks of a request head (head.rs), the one strict
//! parse of an HTTP/1 head on banyan's own server path (parse.rs), a strict HTTP/1
//! framing reader in front of hyper's parser for the connections hyper serves
//! (framing.rs), the client's body with its size and time limits (client_body.rs).

pub mod client_body;
pub mod framing;
pub mod head;
pub mod parse;

use std::time::Duration;

/// Limits on what a client may send, from `[server]` (and `max_body` per route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The request line and headers together (HTTP/1), or the header list (HTTP/2).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
    /// HTTP/2 streams a client may have open on one connection at a time.
    pub max_concurrent_streams: u32,
    /// Default largest request body; a route may set its own.
    pub max_body: u64,
    /// From waiting for a request's head (a new connection, or an idle keep-alive one)
    /// to having all of it: slow-header (slowloris) clients are cut off.
    pub header_timeout: Duration,
    /// Longest gap between two pieces of a request body.
    pub body_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            // nginx's http2_max_concurrent_streams.
            max_concurrent_streams: 128,
            max_body: 100 * 1024 * 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Why banyan refuses a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed or ambiguous: it could be read two ways.
    BadRequest(&'static str),
    UriTooLong,
    HeadersTooLarge,
    BodyTooLarge,
    /// The client stopped sending its body.
    BodyTimeout,
    /// CONNECT or TRACE, which the route does not allow.
    MethodNotAllowed,
}
