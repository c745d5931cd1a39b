//! The pooled HTTP client of one upstream, with its timeouts and TLS.

use super::spec::UpstreamSpec;
use crate::body::ProxyBody;
use crate::inbound::client_body::ClientBody;
use hyper_rustls::FixedServerNameResolver;
use hyper_rustls::HttpsConnector;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::{DnsName, ServerName};
use std::time::Duration;

/// Plain TCP or TLS, with read and write timeouts on the socket.
pub type Connector = TimeoutConnector<HttpsConnector<HttpConnector>>;

/// The client of one upstream pool; cheap to clone (shares its connection pool).
/// What goes upstream: the client's body, held to its limits.
pub type RequestBody = ProxyBody<ClientBody>;

pub type UpstreamClient = Client<Connector, RequestBody>;

pub fn build(spec: &UpstreamSpec) -> UpstreamClient {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(spec.connect_timeout));
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(crate::tls::client::config(&spec.tls))
        .https_or_http();
    // SNI names the upstream: its `host` when set (endpoints given as IPs behind one
    // name), else each endpoint's own host.
    let builder = match tls_server_name(spec) {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    let https = builder.enable_http1().enable_http2().wrap_connector(tcp);
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

/// The `host` of the upstream as a TLS server name, without its port.
fn tls_server_name(spec: &UpstreamSpec) -> Option<ServerName<'static>> {
    let host = spec.host.as_ref()?.to_str().ok()?;
    let authority: http::uri::Authority = host.parse().ok()?;
    let name = DnsName::try_from(authority.host().to_string()).ok()?;
    Some(ServerName::DnsName(name))
}
