//! Connections to one endpoint: made when none is idle, kept idle between requests (the
//! most recently used first, as its buffers are warm), dropped after the upstream's
//! `idle_timeout` or when the upstream closed them meanwhile.

use super::SendError;
use crate::upstream::spec::EndpointSpec;
use bytes::BytesMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A connection's read buffer starts at this and grows as responses need.
const READ_BUFFER: usize = 8 * 1024;
/// TCP keep-alive probes on upstream connections, as the hyper client had them.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// One HTTP/1.1 connection and the buffers it keeps between requests.
pub struct Conn {
    pub stream: TcpStream,
    pub read_buf: BytesMut,
    pub write_buf: Vec<u8>,
    idle_since: Instant,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            read_buf: BytesMut::with_capacity(READ_BUFFER),
            write_buf: Vec::with_capacity(1024),
            idle_since: Instant::now(),
        }
    }

    /// The upstream has not closed it, nor sent anything unasked, while it was idle.
    fn still_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// The idle connections of one endpoint.
pub struct Idle {
    conns: Mutex<Vec<Conn>>,
    max: usize,
    idle_timeout: Duration,
}

impl Idle {
    pub fn new(max: usize, idle_timeout: Duration) -> Self {
        Idle {
            conns: Mutex::new(Vec::new()),
            max,
            idle_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used connection still fit for a request.
    pub fn take(&self) -> Option<Conn> {
        loop {
            let conn = self.lock().pop()?;
            if conn.idle_since.elapsed() < self.idle_timeout && conn.still_open() {
                return Some(conn);
            }
        }
    }

    /// Keep a connection whose response was read whole, for the next request.
    pub fn put(&self, mut conn: Conn) {
        conn.idle_since = Instant::now();
        let mut conns = self.lock();
        // Past the cap, the oldest goes (those idle too long go with the sweeper).
        if conns.len() >= self.max {
            conns.remove(0);
        }
        conns.push(conn);
    }

    /// Close the connections idle longer than the upstream's `idle_timeout`.
    pub fn expire(&self) {
        let timeout = self.idle_timeout;
        self.lock().retain(|c| c.idle_since.elapsed() < timeout);
    }
}

/// Close idle connections as they pass `idle_timeout`, not only when the next request
/// finds them: an upstream should not hold sockets banyan will never use. The client
/// aborts the task when it is dropped.
pub fn sweep(idle: &[Arc<Idle>], idle_timeout: Duration) -> Option<JoinHandle<()>> {
    let lists: Vec<Weak<Idle>> = idle.iter().map(Arc::downgrade).collect();
    let every = (idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(runtime.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut alive = false;
            for list in &lists {
                if let Some(idle) = list.upgrade() {
                    idle.expire();
                    alive = true;
                }
            }
            if !alive {
                return;
            }
        }
    }))
}

/// Open a connection to `endpoint` within `timeout`: its address resolved (unless it is
/// one), each address tried in turn.
pub async fn connect(endpoint: &EndpointSpec, timeout: Duration) -> Result<Conn, SendError> {
    let attempt = async {
        let host = endpoint.authority.host();
        let port = endpoint.authority.port_u16().unwrap_or(80);
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(SendError::Connect)?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(SendError::Connect(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address")
        })))
    };
    let stream = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| SendError::ConnectTimeout)??;
    stream.set_nodelay(true).map_err(SendError::Connect)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    // Best effort: a socket that refuses keep-alive probes still carries requests.
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    Ok(Conn::new(stream))
}
