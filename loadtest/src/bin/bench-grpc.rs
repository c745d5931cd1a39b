//! The gRPC unary benchmark's two ends, over h2c (prior knowledge), with hyper alone:
//!
//! - `serve`: answers every call with one message of `--size` bytes and the trailers
//!   `grpc-status: 0`, as a gRPC server does;
//! - `load`: a closed loop of unary calls, `--streams` at a time on each of
//!   `--connections` HTTP/2 connections, for `--duration` seconds; a call counts as an
//!   error unless its trailers say `grpc-status: 0`. Prints one JSON object: requests,
//!   errors, non_2xx, rps.

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Serve {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// The answer's message size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    Load {
        /// http://host:port: the call goes to /bench.Items/Get.
        #[arg(long)]
        url: hyper::Uri,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Calls in flight on each connection.
        #[arg(long, default_value_t = 8)]
        streams: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// A message framed as gRPC sends it: not compressed, its length, its bytes.
fn framed(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// A unary answer's body: one message, then the trailers.
struct Answer {
    message: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.message.is_none() && self.trailers.is_none()
    }
}

async fn serve(listen: SocketAddr, size: usize) -> anyhow::Result<()> {
    // A bytes field (tag 1) filling the message to `size`.
    let mut message = vec![0x0a];
    let payload = size.saturating_sub(4);
    let mut n = payload;
    while n >= 0x80 {
        message.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    message.push(n as u8);
    message.resize(message.len() + payload, b'x');
    let answer = framed(&message);
    let listener = banyan_loadtest::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let answer = answer.clone();
                async move {
                    let _ = req.into_body().collect().await;
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", HeaderValue::from_static("0"));
                    let mut resp = Response::new(Answer {
                        message: Some(answer),
                        trailers: Some(trailers),
                    });
                    resp.headers_mut()
                        .insert("content-type", HeaderValue::from_static("application/grpc"));
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
}

async fn load(url: hyper::Uri, connections: usize, streams: usize, seconds: f64) -> anyhow::Result<()> {
    let authority = url
        .authority()
        .ok_or_else(|| anyhow::anyhow!("the URL names no host"))?
        .clone();
    let target = format!("http://{authority}/bench.Items/Get");
    let request = framed(&[0x08, 42]);
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        for _ in 0..streams {
            let (mut sender, tally, target, request) =
                (sender.clone(), tally.clone(), target.clone(), request.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let req = Request::post(target.as_str())
                        .header("content-type", "application/grpc")
                        .header("te", "trailers")
                        .body(Full::new(request.clone()))
                        .expect("a valid request");
                    let ok = match sender.send_request(req).await {
                        Ok(resp) => match resp.into_body().collect().await {
                            Ok(done) => done
                                .trailers()
                                .and_then(|t| t.get("grpc-status"))
                                .is_some_and(|s| s == "0"),
                            Err(_) => false,
                        },
                        Err(_) => false,
                    };
                    let counter = if ok { &tally.ok } else { &tally.errors };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if !ok && sender.is_closed() {
                        break;
                    }
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = tally.ok.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "requests": ok + errors,
            "errors": errors,
            "non_2xx": 0,
            "rps": (ok + errors) as f64 / elapsed,
        })
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Serve {
            listen,
            size,
            threads,
        } => banyan_loadtest::runtime(threads)?.block_on(serve(listen, size)),
        Command::Load {
            url,
            connections,
            streams,
            duration,
            threads,
        } => banyan_loadtest::runtime(threads)?.block_on(load(url, connections, streams, duration)),
    }
}
