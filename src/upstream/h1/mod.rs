//! banyan's own HTTP/1.1 client for plain-HTTP upstreams: the request's own task writes
//! the request on a pooled connection and reads the response head, and the response body
//! is read by whoever polls it. No dispatch channel, no connection task, no pool key
//! hashed per request: the cost hyper-util's pooled client adds to every request (see
//! docs/ARCHITECTURE.md, "The data plane's cost").
//!
//! It carries requests whose body is in memory (most are: GETs, and bodies buffered for
//! a fallback) to HTTP/1.1 upstreams without TLS. TLS and HTTP/2 upstreams, streamed
//! request bodies, upgrades, shadow copies and health checks use the hyper client.

pub mod body;
mod conn;
pub mod wire;

use super::request::is_idempotent;
use super::spec::{EndpointSpec, UpstreamSpec};
use bytes::Bytes;
use conn::{Conn, Idle};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use wire::{Malformed, ResponseHead};

pub use body::Body;

/// Idle connections kept per endpoint, at most.
const MAX_IDLE: usize = 256;
/// A body up to this size is copied behind the head and sent with it in one write.
const COALESCE: usize = 16 * 1024;
/// Read into a connection's buffer this much at least.
const READ_CHUNK: usize = 8 * 1024;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting to the upstream: {0}")]
    Connect(std::io::Error),
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    #[error("the upstream did not answer within the read timeout")]
    Timeout,
    #[error("writing the request timed out")]
    WriteTimeout,
    #[error("the upstream closed the connection before its response")]
    Closed,
    #[error("the upstream connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Malformed(#[from] Malformed),
}

impl SendError {
    /// Failed before a connection existed: another endpoint may be tried for any method.
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_) | SendError::ConnectTimeout)
    }

    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            SendError::ConnectTimeout | SendError::Timeout | SendError::WriteTimeout
        )
    }
}

/// The client of one upstream: idle connections per endpoint, and the timeouts.
pub struct Client {
    idle: Vec<Arc<Idle>>,
    /// Closes connections idle too long; stopped with the client.
    sweeper: Option<tokio::task::JoinHandle<()>>,
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(task) = &self.sweeper {
            task.abort();
        }
    }
}

/// A request whose body is in memory.
pub struct Request<'a> {
    pub method: &'a Method,
    pub target: &'a PathAndQuery,
    /// With `host` set.
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

impl Client {
    /// The client for an upstream it can carry: plain HTTP/1.1 on every endpoint.
    pub fn for_upstream(spec: &UpstreamSpec) -> Option<Client> {
        let plain = spec
            .endpoints
            .iter()
            .all(|e| e.scheme == http::uri::Scheme::HTTP);
        if spec.http2 || !plain {
            return None;
        }
        let idle: Vec<Arc<Idle>> = spec
            .endpoints
            .iter()
            .map(|_| Arc::new(Idle::new(MAX_IDLE, spec.idle_timeout)))
            .collect();
        let sweeper = conn::sweep(&idle, spec.idle_timeout);
        Some(Client {
            idle,
            sweeper,
            connect_timeout: spec.connect_timeout,
            read_timeout: spec.read_timeout,
            write_timeout: spec.write_timeout,
        })
    }

    /// Send `req` to endpoint `index` and read the response head. A request on a reused
    /// connection that the upstream had closed meanwhile (it read nothing back) is sent
    /// once more on a new connection, when that is safe: the method is idempotent, or
    /// the request was never written.
    pub async fn send(
        &self,
        index: usize,
        endpoint: &EndpointSpec,
        req: Request<'_>,
    ) -> Result<Response<Body>, SendError> {
        let idle = &self.idle[index];
        let mut reused = idle.take();
        loop {
            let was_reused = reused.is_some();
            let conn = match reused.take() {
                Some(conn) => conn,
                None => conn::connect(endpoint, self.connect_timeout).await?,
            };
            match self.exchange(conn, &req).await {
                Ok((conn, head)) => {
                    let keep = head.reusable.then(|| idle.clone());
                    let mut resp =
                        Response::new(Body::new(conn, head.framing, keep, self.read_timeout));
                    *resp.status_mut() = head.status;
                    *resp.headers_mut() = head.headers;
                    return Ok(resp);
                }
                Err(Exchange { error, written }) => {
                    // A connection the upstream closed while it was idle fails the write,
                    // or reads an end with nothing before it.
                    let stale = if written {
                        matches!(error, SendError::Closed) && is_idempotent(req.method)
                    } else {
                        matches!(error, SendError::Io(_))
                    };
                    if !(was_reused && stale) {
                        return Err(error);
                    }
                    tracing::debug!(error = %error, "upstream connection was closed while idle; sending again on a new one");
                }
            }
        }
    }

    /// Write the request, read the response head.
    async fn exchange(
        &self,
        mut conn: Conn,
        req: &Request<'_>,
    ) -> Result<(Conn, ResponseHead), Exchange> {
        conn.write_buf.clear();
        wire::encode_request_head(
            &mut conn.write_buf,
            req.method,
            req.target,
            req.headers,
            req.body.len(),
        );
        let coalesced = req.body.len() <= COALESCE;
        if coalesced {
            conn.write_buf.extend_from_slice(req.body);
        }
        // Most requests fit the socket's buffer at once: no timer is armed for them.
        let sent = match conn.stream.try_write(&conn.write_buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(Exchange::unwritten(e.into())),
        };
        if sent < conn.write_buf.len() || !coalesced {
            let write = async {
                conn.stream.write_all(&conn.write_buf[sent..]).await?;
                if !coalesced {
                    conn.stream.write_all(req.body).await?;
                }
                Ok::<_, std::io::Error>(())
            };
            match tokio::time::timeout(self.write_timeout, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Exchange::unwritten(e.into())),
                Err(_) => return Err(Exchange::unwritten(SendError::WriteTimeout)),
            }
        }
        let read = read_head(&mut conn, req.method);
        match tokio::time::timeout(self.read_timeout, read).await {
            Ok(Ok(head)) => Ok((conn, head)),
            Ok(Err(error)) => Err(Exchange {
                error,
                written: true,
            }),
            Err(_) => Err(Exchange {
                error: SendError::Timeout,
                written: true,
            }),
        }
    }
}

/// How an exchange failed, and whether the request had been written whole.
struct Exchange {
    error: SendError,
    written: bool,
}

impl Exchange {
    fn unwritten(error: SendError) -> Self {
        Exchange {
            error,
            written: false,
        }
    }
}

/// Read until a response head is complete.
async fn read_head(conn: &mut Conn, method: &Method) -> Result<ResponseHead, SendError> {
    conn.read_buf.clear();
    loop {
        if !conn.read_buf.is_empty() {
            if let Some(head) = wire::parse_response_head(&mut conn.read_buf, method)? {
                return Ok(head);
            }
        }
        conn.read_buf.reserve(READ_CHUNK);
        let nothing_yet = conn.read_buf.is_empty();
        match tokio::io::AsyncReadExt::read_buf(&mut conn.stream, &mut conn.read_buf).await {
            Ok(0) if nothing_yet => return Err(SendError::Closed),
            Ok(0) => {
                return Err(SendError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the upstream closed the connection within the response head",
                )))
            }
            Ok(_) => {}
            Err(e) if nothing_yet && is_reset(&e) => return Err(SendError::Closed),
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}
