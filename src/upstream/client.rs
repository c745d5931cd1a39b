//! The pooled HTTP client of one upstream, with its timeouts and TLS.

use super::spec::UpstreamSpec;
use crate::body::RequestBody;
use hyper_rustls::HttpsConnector;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::LazyLock;
use std::time::Duration;

/// Plain TCP or TLS, with read and write timeouts on the socket.
pub type Connector = TimeoutConnector<HttpsConnector<HttpConnector>>;

/// The client of one upstream pool; cheap to clone (shares its connection pool).
pub type UpstreamClient = Client<Connector, RequestBody>;

/// The TLS client settings every pool shares: the system's roots (Mozilla's when the
/// system has none), loaded once, not at every reload.
static TLS: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
});

pub fn build(spec: &UpstreamSpec) -> UpstreamClient {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(spec.connect_timeout));
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(TLS.clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let mut connector = TimeoutConnector::new(https);
    connector.set_read_timeout(Some(spec.read_timeout));
    connector.set_write_timeout(Some(spec.write_timeout));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(spec.idle_timeout)
        .http2_only(spec.http2)
        .build(connector)
}
