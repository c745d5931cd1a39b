//! `[server]`: the proxy listener, its lifecycle and the limits on what clients send.

use super::Compiler;
use crate::config::raw::{RawServer, RawTls};
use crate::config::{ServerSettings, TlsSettings, DEFAULT_FALLBACK_MAX_BODY};
use crate::inbound::Limits;
use crate::routing::normalize::{EncodedSlash, PathNormalization};
use crate::tls::server::CertificatePaths;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
const DEFAULT_DRAIN_PERIOD: Duration = Duration::from_secs(10);
/// Open client connections, at most: at about 32 KB per idle keep-alive connection
/// (loadtest/idle_connections.py), 10,000 take about 320 MB.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// hyper's HTTP/1 parser needs at least this much room for a head.
const MIN_HEADER_BYTES: i64 = 8192;

impl Compiler<'_> {
    pub(super) fn server(&mut self, raw: &RawServer) -> ServerSettings {
        let fallback_max_body = match &raw.fallback_max_body {
            None => DEFAULT_FALLBACK_MAX_BODY,
            Some(v) if *v.get_ref() >= 0 => *v.get_ref() as u64,
            Some(v) => {
                self.error(v.span(), "fallback_max_body must be 0 or more bytes");
                0
            }
        };
        let upgrade_socket = raw.upgrade_socket.as_ref().and_then(|p| {
            if p.get_ref().is_empty() {
                self.error(
                    p.span(),
                    "upgrade_socket must be a path, such as \"/run/banyan/upgrade.sock\"",
                );
                None
            } else {
                Some(PathBuf::from(p.get_ref()))
            }
        });
        ServerSettings {
            listen: self.socket_addr(raw.listen.as_ref(), DEFAULT_LISTEN),
            trust_forwarded_headers: raw.trust_forwarded_headers,
            fallback_max_body,
            drain_period: self.duration(raw.drain_period.as_ref(), DEFAULT_DRAIN_PERIOD),
            upgrade_socket,
            limits: self.limits(raw),
            max_connections: match &raw.max_connections {
                None => DEFAULT_MAX_CONNECTIONS,
                Some(v) if *v.get_ref() >= 1 => *v.get_ref() as usize,
                Some(v) => {
                    self.error(v.span(), "max_connections must be a whole number above 0");
                    DEFAULT_MAX_CONNECTIONS
                }
            },
            path_normalization: self.path_normalization(raw),
            tls: raw.tls.as_ref().and_then(|t| self.tls(t)),
        }
    }

    fn path_normalization(&mut self, raw: &RawServer) -> PathNormalization {
        let encoded_slash = match &raw.encoded_slash {
            None => EncodedSlash::Keep,
            Some(v) => match v.get_ref().as_str() {
                "keep" => EncodedSlash::Keep,
                "refuse" => EncodedSlash::Refuse,
                other => {
                    self.error(
                        v.span(),
                        format!("encoded_slash = {other:?} is not known: \"keep\" (forward %2F as it is) or \"refuse\" (answer 400)"),
                    );
                    EncodedSlash::Keep
                }
            },
        };
        match raw.path_normalization.as_ref() {
            None => PathNormalization::None,
            Some(v) => match v.get_ref().as_str() {
                "none" => PathNormalization::None,
                "standard" => PathNormalization::Standard { encoded_slash },
                other => {
                    self.error(
                        v.span(),
                        format!("path_normalization = {other:?} is not known: \"none\" (match paths as sent) or \"standard\" (decode unreserved characters, merge slashes, resolve dot segments)"),
                    );
                    PathNormalization::None
                }
            },
        }
    }

    /// The HTTPS listener; every certificate is loaded now, so a bad one is refused
    /// with its place in the file.
    fn tls(&mut self, raw: &Spanned<RawTls>) -> Option<TlsSettings> {
        let raw = raw.get_ref();
        let listen = self.socket_addr(Some(&raw.listen), DEFAULT_LISTEN);
        if raw.certificates.get_ref().is_empty() {
            self.error(
                raw.certificates.span(),
                "[server.tls] needs at least one certificate: certificates = [{ cert = \"...pem\", key = \"...key\" }]",
            );
            return None;
        }
        let mut certificates = Vec::new();
        for c in raw.certificates.get_ref() {
            let paths = CertificatePaths {
                cert: PathBuf::from(&c.get_ref().cert),
                key: PathBuf::from(&c.get_ref().key),
            };
            if self.reads_file(c.span()) {
                if let Err(e) = crate::tls::certified_key(&paths.cert, &paths.key) {
                    self.error(c.span(), format!("server.tls: {e}"));
                }
            }
            certificates.push(paths);
        }
        Some(TlsSettings {
            listen,
            certificates,
        })
    }

    fn limits(&mut self, raw: &RawServer) -> Limits {
        let d = Limits::default();
        let max_header_bytes = match &raw.max_header_bytes {
            Some(v) if *v.get_ref() < MIN_HEADER_BYTES => {
                self.error(
                    v.span(),
                    format!("max_header_bytes must be at least {MIN_HEADER_BYTES}"),
                );
                d.max_header_bytes
            }
            v => self.count(v.as_ref(), d.max_header_bytes, "max_header_bytes"),
        };
        Limits {
            max_header_bytes,
            max_headers: self.count(raw.max_headers.as_ref(), d.max_headers, "max_headers"),
            max_uri_bytes: self.count(raw.max_uri_bytes.as_ref(), d.max_uri_bytes, "max_uri_bytes"),
            max_concurrent_streams: self.count(
                raw.max_concurrent_streams.as_ref(),
                d.max_concurrent_streams,
                "max_concurrent_streams",
            ),
            max_body: self
                .bytes(raw.max_body.as_ref(), "max_body")
                .unwrap_or(d.max_body),
            header_timeout: self.duration(raw.header_timeout.as_ref(), d.header_timeout),
            body_timeout: self.duration(raw.body_timeout.as_ref(), d.body_timeout),
            idle_timeout: self.duration(raw.idle_timeout.as_ref(), d.idle_timeout),
        }
    }

    /// A byte count above 0, when set.
    pub(super) fn bytes(&mut self, raw: Option<&Spanned<i64>>, what: &str) -> Option<u64> {
        let raw = raw?;
        match u64::try_from(*raw.get_ref()) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                self.error(
                    raw.span(),
                    format!("{what} must be a number of bytes above 0"),
                );
                None
            }
        }
    }
}
