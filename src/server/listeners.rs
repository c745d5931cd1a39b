//! Where the listening sockets come from: bound by banyan, passed by systemd (socket
//! activation), or handed over by the banyan being upgraded. Inherited sockets are
//! matched to their role by name (systemd's `FileDescriptorName=`, or the handover's own
//! names) and otherwise by address.

use std::net::SocketAddr;

/// What a listening socket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Proxy,
    Admin,
    Tls,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Proxy => "proxy",
            Role::Admin => "admin",
            Role::Tls => "tls",
        }
    }
}

/// Listening sockets received from outside, not yet taken.
#[derive(Debug, Default)]
pub struct Inherited {
    sockets: Vec<(Option<String>, std::net::TcpListener)>,
}

impl Inherited {
    pub fn new(sockets: Vec<(Option<String>, std::net::TcpListener)>) -> Self {
        Inherited { sockets }
    }

    /// The sockets systemd passed (`LISTEN_FDS`, for this process), named by
    /// `LISTEN_FDNAMES` when the unit gives names.
    pub fn from_systemd() -> std::io::Result<Self> {
        let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
            .map(|v| v.split(':').map(str::to_string).collect())
            .unwrap_or_default();
        let mut fds = listenfd::ListenFd::from_env();
        let mut sockets = Vec::new();
        for i in 0..fds.len() {
            if let Some(listener) = fds.take_tcp_listener(i)? {
                let name = names.get(i).filter(|n| !n.is_empty() && *n != "unknown");
                sockets.push((name.cloned(), listener));
            }
        }
        for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
            // Not for our children (the demo backends, a later `--upgrade`).
            std::env::remove_var(var);
        }
        Ok(Inherited { sockets })
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The socket for `role`: by name, else the one bound to `addr`.
    pub fn take(&mut self, role: Role, addr: SocketAddr) -> Option<std::net::TcpListener> {
        let by_name = self
            .sockets
            .iter()
            .position(|(n, _)| n.as_deref() == Some(role.name()));
        let by_addr = || {
            self.sockets
                .iter()
                .position(|(n, l)| n.is_none() && l.local_addr().ok() == Some(addr))
        };
        let i = by_name.or_else(by_addr)?;
        Some(self.sockets.remove(i).1)
    }

    /// What was not claimed by any role, to warn about.
    pub fn leftover(&self) -> Vec<String> {
        self.sockets
            .iter()
            .map(|(n, l)| match (n, l.local_addr()) {
                (Some(n), _) => n.clone(),
                (None, Ok(a)) => a.to_string(),
                (None, Err(_)) => "?".into(),
            })
            .collect()
    }
}

/// A tokio listener for `role`: inherited when one was passed, else bound now.
pub async fn listen(
    inherited: &mut Inherited,
    role: Role,
    addr: SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    match inherited.take(role, addr) {
        Some(std_listener) => {
            std_listener.set_nonblocking(true)?;
            let actual = std_listener.local_addr().ok();
            tracing::info!(role = role.name(), addr = ?actual, "listening on an inherited socket");
            if let Some(actual) = actual.filter(|a| differs(addr, *a)) {
                tracing::warn!(
                    role = role.name(),
                    "the config asks for {addr}, but the inherited socket listens on {actual}: it keeps serving there; an address moves only on a restart without --upgrade"
                );
            }
            tokio::net::TcpListener::from_std(std_listener)
        }
        None => tokio::net::TcpListener::bind(addr).await,
    }
}

/// Whether an inherited socket listens elsewhere than the config asks (port 0: any port).
fn differs(configured: SocketAddr, actual: SocketAddr) -> bool {
    let port_differs = configured.port() != 0 && configured.port() != actual.port();
    let ip_differs = !configured.ip().is_unspecified() && configured.ip() != actual.ip();
    port_differs || ip_differs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_address_is_told() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(!differs(a("127.0.0.1:0"), a("127.0.0.1:4242")));
        assert!(!differs(a("0.0.0.0:8080"), a("10.0.0.1:8080")));
        assert!(!differs(a("127.0.0.1:8080"), a("127.0.0.1:8080")));
        assert!(differs(a("127.0.0.1:8081"), a("127.0.0.1:8080")));
        assert!(differs(a("127.0.0.2:8080"), a("127.0.0.1:8080")));
    }

    #[test]
    fn sockets_are_matched_by_name_then_by_address() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let b = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let b_addr = b.local_addr().expect("addr");
        let mut inherited = Inherited::new(vec![(Some("admin".into()), a), (None, b)]);
        assert!(inherited
            .take(Role::Proxy, "127.0.0.1:1".parse().expect("addr"))
            .is_none());
        let admin = inherited.take(Role::Admin, "0.0.0.0:9090".parse().expect("addr"));
        assert!(admin.is_some(), "by name, whatever the address");
        assert!(inherited.take(Role::Proxy, b_addr).is_some(), "by address");
        assert!(inherited.is_empty());
    }
}
