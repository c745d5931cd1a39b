//! The demo behind `banyan demo`: a "legacy monolith" and a "new catalog service" that
//! mostly agree, with the differences a real migration finds (a renamed field, a rounding
//! difference, a reordered list, a timestamp), and banyan in front of them.

mod backends;

pub use backends::{serve, Backend};

use crate::config::{Config, Source};
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// config/demo.toml, built in so `banyan demo` works from any directory.
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

pub fn builtin_config() -> Source {
    Source::new("config/demo.toml (built in)", DEMO_TOML)
}

/// Where the demo backends listen.
#[derive(Debug, Clone, Copy)]
pub struct Backends {
    pub legacy: SocketAddr,
    pub catalog: SocketAddr,
}

/// Start both backends on the addresses the config's `legacy` and `catalog` upstreams
/// name.
pub async fn start_backends(config: &Config) -> std::io::Result<Backends> {
    let addr_of = |name: &str| -> std::io::Result<SocketAddr> {
        config
            .upstreams
            .iter()
            .find(|u| u.name == name)
            .and_then(|u| u.endpoints.first())
            .and_then(|e| e.authority.as_str().parse().ok())
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "the demo config needs an upstream {name:?} with an IP:port endpoint"
                ))
            })
    };
    let legacy = TcpListener::bind(addr_of("legacy")?).await?;
    let catalog = TcpListener::bind(addr_of("catalog")?).await?;
    let backends = Backends {
        legacy: legacy.local_addr()?,
        catalog: catalog.local_addr()?,
    };
    tokio::spawn(serve(legacy, Backend::Legacy));
    tokio::spawn(serve(catalog, Backend::Catalog));
    Ok(backends)
}

/// What `banyan demo` prints: where everything is and what to try.
pub fn banner(proxy: SocketAddr, admin: SocketAddr, b: &Backends) -> String {
    format!(
        "banyan demo is running.
  proxy:          http://{proxy}
  admin:          http://{admin}/metrics
  legacy backend: http://{legacy}   (answers with x-demo-backend: legacy)
  new backend:    http://{catalog}   (answers with x-demo-backend: catalog)

Try:
  curl -i http://{proxy}/api/items/1                        # split 50/50 by the session cookie
  curl -i -b session=alice http://{proxy}/api/items/1       # alice always lands on the same side
  curl -i http://{proxy}/api/users/7                        # moved to the new service
  curl -i http://{proxy}/api/products/2                     # rewritten to /v2/products/2 on the new service
  curl -i -H 'x-preview: 1' http://{proxy}/api/items        # header-matched preview of the new list
  curl -i 'http://{proxy}/api/search?q=lamp'                # still on the monolith (default upstream)
  banyan explain -c config/demo.toml GET http://{proxy}/api/items/1 -H 'Cookie: session=alice'

Ctrl-C stops it.",
        legacy = b.legacy,
        catalog = b.catalog,
    )
}
