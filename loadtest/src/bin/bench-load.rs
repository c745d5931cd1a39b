//! The load generator. Two modes over `--connections` keep-alive HTTP/1.1 connections:
//!
//! - closed loop (no `--rate`): each connection sends its next request when the last
//!   answer ends; gives the throughput at that concurrency;
//! - constant rate (`--rate R`): request k is due at start + k/R, and its latency is
//!   measured from when it was due, not from when a free connection sent it. A stalled
//!   proxy therefore shows as latency, as in wrk2 and oha, instead of quietly lowering the
//!   rate (coordinated omission).
//!
//! Prints one JSON object: requests, errors, rps, and latency percentiles in µs.

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// http://host:port/path
    #[arg(long)]
    url: hyper::Uri,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Requests per second, all connections together; closed loop when absent.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A Host header other than the URL's authority.
    #[arg(long)]
    host: Option<String>,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    non_2xx: u64,
}

struct Plan {
    uri: hyper::Uri,
    host: String,
    start: Instant,
    end: Instant,
    /// Constant-rate mode: the interval between due times, and the next request's index.
    interval: Option<Duration>,
    next: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let authority = args
        .url
        .authority()
        .ok_or_else(|| anyhow::anyhow!("--url needs host:port"))?
        .clone();
    let addr = authority.as_str().to_string();
    let runtime = banyan_loadtest::runtime(args.threads)?;
    let (hist, tally, elapsed) = runtime.block_on(async {
        let start = Instant::now();
        let plan = Arc::new(Plan {
            uri: args.url.clone(),
            host: args.host.clone().unwrap_or_else(|| authority.to_string()),
            start,
            end: start + Duration::from_secs_f64(args.duration),
            interval: args.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next: AtomicU64::new(0),
        });
        let workers: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(worker(plan.clone(), addr.clone())))
            .collect();
        let mut hist = Histogram::<u64>::new(3).expect("histogram");
        let mut tally = Tally::default();
        for w in workers {
            let (h, t) = w.await.expect("worker");
            hist.add(h).expect("same bounds");
            tally.ok += t.ok;
            tally.errors += t.errors;
            tally.non_2xx += t.non_2xx;
        }
        (hist, tally, start.elapsed())
    });
    let secs = elapsed.as_secs_f64();
    let q = |p: f64| hist.value_at_quantile(p);
    let report = serde_json::json!({
        "mode": if args.rate.is_some() { "rate" } else { "closed" },
        "rate": args.rate,
        "connections": args.connections,
        "seconds": secs,
        "requests": tally.ok + tally.non_2xx,
        "errors": tally.errors,
        "non_2xx": tally.non_2xx,
        "rps": (tally.ok + tally.non_2xx) as f64 / secs,
        "p50_us": q(0.50),
        "p99_us": q(0.99),
        "p999_us": q(0.999),
        "max_us": hist.max(),
    });
    println!("{report}");
    Ok(())
}

async fn connect(addr: &str) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn worker(plan: Arc<Plan>, addr: String) -> (Histogram<u64>, Tally) {
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut tally = Tally::default();
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    loop {
        // When is this request due? Closed loop: now.
        let due = match plan.interval {
            Some(interval) => {
                let k = plan.next.fetch_add(1, Ordering::Relaxed);
                let due = plan.start + interval.mul_f64(k as f64);
                if due >= plan.end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        if due >= plan.end {
            break;
        }
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(&addr).await {
                Ok(s) => sender.insert(s),
                Err(_) => {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let request = http::Request::get(plan.uri.clone())
            .header("host", plan.host.as_str())
            .body(Empty::new())
            .expect("request");
        let answer = async {
            s.ready().await?;
            let response = s.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            anyhow::Ok(status)
        };
        match answer.await {
            Ok(status) => {
                let _ = hist.record(due.elapsed().as_micros() as u64);
                if status.is_success() {
                    tally.ok += 1;
                } else {
                    tally.non_2xx += 1;
                }
            }
            Err(_) => {
                tally.errors += 1;
                sender = None;
            }
        }
    }
    (hist, tally)
}
