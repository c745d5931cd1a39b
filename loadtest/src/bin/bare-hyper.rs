//! The minimal hyper reverse proxy: hyper's server, hyper-util's pooled client, the
//! request forwarded as it came. What banyan costs over this is banyan's own work.

use clap::Parser;
use hyper::{body::Incoming, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use std::net::SocketAddr;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// host:port
    #[arg(long)]
    upstream: String,
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    banyan_loadtest::proxy_runtime(args.threads)?.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<_, Incoming> =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        let listener = banyan_loadtest::bind(args.listen).await?;
        let upstream = args.upstream;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let client = client.clone();
                    let path = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/")
                        .to_string();
                    *req.uri_mut() = format!("http://{upstream}{path}")
                        .parse()
                        .expect("upstream uri");
                    async move { client.request(req).await }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    })
}
