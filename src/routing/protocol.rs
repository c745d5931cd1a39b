//! What a route lets through besides plain requests: the protocol upgrades it tunnels
//! (websocket by default) and the methods refused unless it allows them (CONNECT, TRACE).
//! Pure: the proxy asks, this answers.

use http::{HeaderValue, Method, StatusCode, Version};

/// Upgrades a route tunnels when it says nothing.
pub const DEFAULT_UPGRADES: &[&str] = &["websocket"];

/// Protocols never tunnelled, whatever a route says: an h2c upgrade would hand the
/// client a raw HTTP/2 connection to the backend, past routing, limits and framing.
pub const NEVER_UPGRADED: &[&str] = &["h2c"];

/// Methods refused with 405 unless a route allows them: CONNECT opens a tunnel, TRACE
/// echoes the request (cookies and credentials included) back to whoever sent it.
pub const GUARDED_METHODS: [Method; 2] = [Method::CONNECT, Method::TRACE];

/// A route's policy for upgrades and guarded methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocols {
    /// Upgrade protocol names, lower case, without versions (`websocket`).
    pub upgrades: Vec<String>,
    /// Guarded methods this route forwards.
    pub methods: Vec<Method>,
}

impl Default for Protocols {
    fn default() -> Self {
        Protocols {
            upgrades: DEFAULT_UPGRADES.iter().map(|p| p.to_string()).collect(),
            methods: Vec::new(),
        }
    }
}

/// A tunnel the client asked for and its route allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tunnel {
    /// `Upgrade`: the protocols asked of the upstream.
    Upgrade(HeaderValue),
    /// CONNECT: a 2xx opens the tunnel.
    Connect,
}

impl Tunnel {
    /// Whether the upstream's answer (its status and `Upgrade` header) opens the tunnel.
    pub fn opened_by(&self, status: StatusCode, upgrade: Option<&HeaderValue>) -> bool {
        match self {
            Tunnel::Upgrade(asked) => {
                status == StatusCode::SWITCHING_PROTOCOLS && switch_was_asked(asked, upgrade)
            }
            Tunnel::Connect => status.is_success(),
        }
    }
}

impl Protocols {
    /// The tunnel to ask the upstream for: an HTTP/1.1 CONNECT (the method already
    /// admitted), or the part of the client's `Upgrade` list this route tunnels.
    pub fn tunnel(
        &self,
        method: &Method,
        version: Version,
        asked_upgrade: Option<&HeaderValue>,
    ) -> Option<Tunnel> {
        if version != Version::HTTP_11 {
            return None;
        }
        if method == Method::CONNECT {
            return Some(Tunnel::Connect);
        }
        asked_upgrade
            .and_then(|asked| self.allowed_upgrade(asked))
            .map(Tunnel::Upgrade)
    }

    /// Whether a request with this method may be forwarded.
    pub fn admits_method(&self, method: &Method) -> bool {
        !GUARDED_METHODS.contains(method) || self.methods.contains(method)
    }

    /// The part of a client's `Upgrade` list this route tunnels, as the value to send
    /// upstream; None when it tunnels none of it (the request goes as a plain one).
    pub fn allowed_upgrade(&self, requested: &HeaderValue) -> Option<HeaderValue> {
        let text = requested.to_str().ok()?;
        let kept: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|p| self.tunnels(protocol_name(p)))
            .collect();
        if kept.is_empty() {
            return None;
        }
        HeaderValue::from_str(&kept.join(", ")).ok()
    }

    fn tunnels(&self, name: &str) -> bool {
        !name.is_empty()
            && !NEVER_UPGRADED.iter().any(|n| n.eq_ignore_ascii_case(name))
            && self.upgrades.iter().any(|p| p.eq_ignore_ascii_case(name))
    }
}

/// Whether an upstream's `101 Switching Protocols` switched to a protocol that was asked
/// for (`asked`, the list sent upstream). A 101 to anything else is not tunnelled.
pub fn switch_was_asked(asked: &HeaderValue, switched: Option<&HeaderValue>) -> bool {
    let (Ok(asked), Some(Ok(switched))) = (asked.to_str(), switched.map(|s| s.to_str())) else {
        return false;
    };
    let switched = protocol_name(switched.split(',').next().unwrap_or("").trim());
    !switched.is_empty()
        && asked
            .split(',')
            .any(|p| protocol_name(p.trim()).eq_ignore_ascii_case(switched))
}

/// `websocket` of `websocket/13`.
fn protocol_name(token: &str) -> &str {
    token.split('/').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn websocket_by_default_and_h2c_never() {
        let p = Protocols::default();
        assert_eq!(p.allowed_upgrade(&v("websocket")), Some(v("websocket")));
        assert_eq!(p.allowed_upgrade(&v("WebSocket")), Some(v("WebSocket")));
        assert_eq!(p.allowed_upgrade(&v("h2c")), None);
        assert_eq!(
            p.allowed_upgrade(&v("h2c, websocket")),
            Some(v("websocket"))
        );
        assert_eq!(p.allowed_upgrade(&v("foo/2")), None);
        let everything = Protocols {
            upgrades: vec!["h2c".into(), "foo".into()],
            methods: vec![],
        };
        assert_eq!(everything.allowed_upgrade(&v("h2c")), None);
        assert_eq!(everything.allowed_upgrade(&v("foo/2")), Some(v("foo/2")));
        let none = Protocols {
            upgrades: vec![],
            methods: vec![],
        };
        assert_eq!(none.allowed_upgrade(&v("websocket")), None);
    }

    #[test]
    fn a_switch_must_be_to_what_was_asked() {
        assert!(switch_was_asked(&v("websocket"), Some(&v("WebSocket"))));
        assert!(switch_was_asked(
            &v("foo/2, websocket"),
            Some(&v("websocket"))
        ));
        assert!(!switch_was_asked(&v("websocket"), Some(&v("h2c"))));
        assert!(!switch_was_asked(&v("websocket"), None));
        assert!(!switch_was_asked(&v("websocket"), Some(&v(""))));
    }

    #[test]
    fn tunnels() {
        let p = Protocols::default();
        let ws = v("websocket");
        let h11 = Version::HTTP_11;
        assert_eq!(
            p.tunnel(&Method::GET, h11, Some(&ws)),
            Some(Tunnel::Upgrade(v("websocket")))
        );
        assert_eq!(p.tunnel(&Method::GET, h11, Some(&v("h2c"))), None);
        assert_eq!(p.tunnel(&Method::GET, Version::HTTP_2, Some(&ws)), None);
        assert_eq!(p.tunnel(&Method::CONNECT, h11, None), Some(Tunnel::Connect));
        let upgrade = Tunnel::Upgrade(ws.clone());
        assert!(upgrade.opened_by(StatusCode::SWITCHING_PROTOCOLS, Some(&ws)));
        assert!(!upgrade.opened_by(StatusCode::SWITCHING_PROTOCOLS, Some(&v("h2c"))));
        assert!(!upgrade.opened_by(StatusCode::OK, Some(&ws)));
        assert!(Tunnel::Connect.opened_by(StatusCode::OK, None));
        assert!(!Tunnel::Connect.opened_by(StatusCode::FORBIDDEN, None));
    }

    #[test]
    fn guarded_methods() {
        let p = Protocols::default();
        assert!(p.admits_method(&Method::GET));
        assert!(!p.admits_method(&Method::CONNECT));
        assert!(!p.admits_method(&Method::TRACE));
        let trace = Protocols {
            methods: vec![Method::TRACE],
            ..Protocols::default()
        };
        assert!(trace.admits_method(&Method::TRACE));
        assert!(!trace.admits_method(&Method::CONNECT));
    }
}
