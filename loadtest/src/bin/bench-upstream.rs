//! The test upstream: answers every request with a JSON body of `--size` bytes (1 KB by
//! default), after `--delay-ms` when given. HTTP/1.1 keep-alive; the body is built once.

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, Request, Response};
use std::{convert::Infallible, net::SocketAddr, time::Duration};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Wait this long before answering.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// `{"items":[{"id":0,"name":"item 0","price":10.5},...],"pad":"xxx"}` of exactly `size`
/// bytes (or the smallest such document when `size` is below it).
fn body(size: usize) -> Bytes {
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        let item = format!(r#"{{"id":{i},"name":"item {i}","price":10.5}}"#);
        let len: usize = items.iter().map(|s: &String| s.len() + 1).sum::<usize>() + item.len();
        if len + 30 > size {
            break;
        }
        items.push(item);
        i += 1;
    }
    let head = format!(r#"{{"items":[{}],"pad":""#, items.join(","));
    let pad = size.saturating_sub(head.len() + 2);
    Bytes::from(format!("{head}{}\"}}", "x".repeat(pad)))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let payload = body(args.size);
    let delay = Duration::from_millis(args.delay_ms);
    banyan_loadtest::runtime(args.threads)?.block_on(async move {
        let listener = banyan_loadtest::bind(args.listen).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let payload = payload.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let payload = payload.clone();
                    async move {
                        // Read the request body through, as a real service would.
                        let _ = req.into_body().collect().await;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(payload))
                                .expect("static response"),
                        )
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_has_the_asked_size_and_is_json() {
        for size in [200, 1024, 10_000] {
            let b = super::body(size);
            assert_eq!(b.len(), size);
            serde_json::from_slice::<serde_json::Value>(&b).expect("json");
        }
    }
}
