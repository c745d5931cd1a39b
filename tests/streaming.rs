//! 50 MB up and 50 MB down through a banyan process, streamed: its peak memory stays far
//! below the size of the bodies.

#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;

const SIZE: usize = 50 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_each_way_without_buffering() {
    let legacy = Backend::start("legacy").await;
    let banyan = Process::start(&format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n",
        legacy.url()
    ));
    let baseline = banyan.peak_rss();

    // Upload: a chunked body the client produces as it goes.
    let chunk = Bytes::from(vec![b'u'; CHUNK]);
    let frames = futures_util::stream::iter(
        (0..SIZE / CHUNK).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::combinators::BoxBody<Bytes, Infallible>>();
    let req = http::Request::post(format!("http://{}/upload", banyan.proxy_addr))
        .body(StreamBody::new(frames).boxed())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    assert_eq!(legacy.requests()[0].body_len, SIZE, "every byte arrived");

    // Download: count the frames as they come, keep none.
    let resp = client
        .request(
            http::Request::get(format!(
                "http://{}/download?bytes={SIZE}",
                banyan.proxy_addr
            ))
            .body(http_body_util::Empty::new().boxed())
            .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, Bytes::len);
    }
    assert_eq!(received, SIZE);

    let peak = banyan.peak_rss();
    eprintln!(
        "banyan peak RSS: {} KiB (baseline {} KiB)",
        peak / 1024,
        baseline / 1024
    );
    let grew = peak.saturating_sub(baseline);
    assert!(
        grew < 10 * 1024 * 1024,
        "peak RSS {} MiB, {} MiB over the idle process: the bodies were buffered",
        peak / 1024 / 1024,
        grew / 1024 / 1024
    );
    // The idle process itself, apart: a debug build's RSS follows the binary's size (27 MiB
    // idle here once the fleet's PostgreSQL client joined it, which took the peak past
    // the 30 MiB this test once held the peak to).
    assert!(
        baseline < 40 * 1024 * 1024,
        "idle RSS {} MiB",
        baseline / 1024 / 1024
    );
}
