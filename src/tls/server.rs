//! The HTTPS listener's certificates: several, chosen by the name the client asks for
//! (SNI), the first when it asks for none or for a name no certificate covers. Re-read
//! when their files change and on every config reload, with no restart; a file that
//! cannot be read keeps the certificates already loaded.

use super::{certified_key, TlsError};
use crate::fswatch::{watch_paths, FileWatch};

use arc_swap::ArcSwap;
use rustls::pki_types::{DnsName, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;

/// One certificate chain and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificatePaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The loaded certificates of the HTTPS listener, in config order.
pub struct CertSet {
    paths: Vec<CertificatePaths>,
    loaded: ArcSwap<Vec<Arc<CertifiedKey>>>,
    watch: std::sync::Mutex<Option<FileWatch>>,
}

impl std::fmt::Debug for CertSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSet")
            .field("paths", &self.paths)
            .finish()
    }
}

impl CertSet {
    /// Load every certificate and, inside a tokio runtime, watch their files.
    pub fn load(paths: Vec<CertificatePaths>) -> Result<Arc<CertSet>, TlsError> {
        let loaded = load_all(&paths)?;
        let set = Arc::new(CertSet {
            paths,
            loaded: ArcSwap::from_pointee(loaded),
            watch: std::sync::Mutex::new(None),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            let files: Vec<PathBuf> = set
                .paths
                .iter()
                .flat_map(|p| [p.cert.clone(), p.key.clone()])
                .collect();
            let weak = Arc::downgrade(&set);
            match watch_paths(&files, move || {
                if let Some(set) = weak.upgrade() {
                    set.reload();
                }
            }) {
                Ok(w) => {
                    if let Ok(mut slot) = set.watch.lock() {
                        *slot = Some(w);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the certificate files; they are re-read on config reload only")
                }
            }
        }
        Ok(set)
    }

    pub fn paths(&self) -> &[CertificatePaths] {
        &self.paths
    }

    /// Read the files again; on failure keep serving the certificates already loaded.
    pub fn reload(&self) {
        match load_all(&self.paths) {
            Ok(keys) => {
                self.loaded.store(Arc::new(keys));
                tracing::info!(certificates = self.paths.len(), "TLS certificates loaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificates not reloaded; the previous ones stay")
            }
        }
    }

    /// The certificate for `name`: the first that is valid for it, else the first.
    pub fn choose(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.loaded.load();
        let wanted = name.and_then(|n| DnsName::try_from(n.to_string()).ok());
        if let Some(dns) = wanted {
            let server_name = ServerName::DnsName(dns);
            let found = loaded.iter().find(|k| {
                k.end_entity_cert()
                    .ok()
                    .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
                    .is_some_and(|ee| ee.verify_is_valid_for_subject_name(&server_name).is_ok())
            });
            if let Some(k) = found {
                return Some(k.clone());
            }
        }
        loaded.first().cloned()
    }
}

fn load_all(paths: &[CertificatePaths]) -> Result<Vec<Arc<CertifiedKey>>, TlsError> {
    paths
        .iter()
        .map(|p| certified_key(&p.cert, &p.key))
        .collect()
}

/// Where the listener finds the certificates of the running config.
pub trait CurrentCerts: Send + Sync {
    fn current(&self) -> Option<Arc<CertSet>>;
}

/// rustls' certificate choice, asked at every handshake of the current certificates.
struct Resolver<C>(C);

impl<C: CurrentCerts> std::fmt::Debug for Resolver<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl<C: CurrentCerts> ResolvesServerCert for Resolver<C> {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current()?.choose(hello.server_name())
    }
}

/// The listener's TLS settings: HTTP/2 or HTTP/1.1 by ALPN, certificates by SNI.
pub fn server_config(certs: impl CurrentCerts + 'static) -> rustls::ServerConfig {
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(certs)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
