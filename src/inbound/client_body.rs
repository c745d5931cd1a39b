//! The client's request body on its way upstream, held to the route's size limit and to
//! the body timeout. When it fails, the verdict says why, so the proxy answers 413, 408
//! or 400 rather than blaming the upstream with a 502.

use super::Refusal;
use crate::body::error::BoxError;
use crate::body::from_client::FromClient;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// Why the client's body stopped, once it has, and how much of it was read; shared with
/// the request's handler. A request without a body (most of them) has no verdict to
/// share, and no allocation.
#[derive(Debug, Clone, Default)]
pub struct Verdict(Option<Arc<Shared>>);

#[derive(Debug, Default)]
struct Shared {
    refusal: OnceLock<Refusal>,
    read: AtomicU64,
}

impl Verdict {
    pub fn get(&self) -> Option<Refusal> {
        self.0.as_ref()?.refusal.get().copied()
    }

    /// Body bytes read from the client so far.
    pub fn bytes_read(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |s| s.read.load(Ordering::Relaxed))
    }

    fn set(&self, refusal: Refusal) -> BoxError {
        if let Some(shared) = &self.0 {
            let _ = shared.refusal.set(refusal);
        }
        format!("client body refused: {refusal:?}").into()
    }

    fn read(&self, total: u64) {
        if let Some(shared) = &self.0 {
            shared.read.store(total, Ordering::Relaxed);
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ClientBody {
        #[pin]
        inner: FromClient,
        max: u64,
        read: u64,
        gap: Duration,
        // Armed while waiting for the client; reset by every piece it sends.
        timer: Option<Pin<Box<Sleep>>>,
        verdict: Verdict,
        // What `buffer_upto` read and gave back: sent again before the rest.
        replay: Option<Bytes>,
        replay_trailers: Option<HeaderMap>,
    }
}

/// A body read into memory as far as a limit allowed.
pub enum Buffered {
    /// All of it.
    Whole(Bytes),
    /// Longer than the limit (or ending in trailers): the body, whole again, to stream.
    Streamed(ClientBody),
}

impl ClientBody {
    pub fn new(inner: FromClient, max: u64, gap: Duration) -> (Self, Verdict) {
        let verdict = if inner.is_end_stream() {
            Verdict::default()
        } else {
            Verdict(Some(Arc::default()))
        };
        let body = ClientBody {
            inner,
            max,
            read: 0,
            gap,
            timer: None,
            verdict: verdict.clone(),
            replay: None,
            replay_trailers: None,
        };
        (body, verdict)
    }
}

impl ClientBody {
    /// Read the body into memory when it ends within `limit` bytes, so that it can be
    /// sent twice; else give it back whole to be streamed. A body that declares a larger
    /// length is not read at all. Errors are the client's: over `max`, too slow, broken.
    pub async fn buffer_upto(mut self, limit: u64) -> Result<Buffered, BoxError> {
        if self.is_end_stream() {
            return Ok(Buffered::Whole(Bytes::new()));
        }
        if self.size_hint().lower() > limit {
            return Ok(Buffered::Streamed(self));
        }
        let mut read = bytes::BytesMut::new();
        loop {
            let Some(frame) = self.frame().await.transpose()? else {
                return Ok(Buffered::Whole(read.freeze()));
            };
            match frame.into_data() {
                Ok(data) => {
                    read.extend_from_slice(&data);
                    if read.len() as u64 > limit {
                        self.replay = Some(read.freeze());
                        return Ok(Buffered::Streamed(self));
                    }
                }
                Err(frame) => {
                    self.replay = Some(read.freeze());
                    self.replay_trailers = frame.into_trailers().ok();
                    return Ok(Buffered::Streamed(self));
                }
            }
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        // What was read into memory goes first (it was counted then).
        if let Some(data) = this.replay.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = this.replay_trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.timer = None;
                if let Some(data) = frame.data_ref() {
                    *this.read += data.len() as u64;
                    this.verdict.read(*this.read);
                    if *this.read > *this.max {
                        return Poll::Ready(Some(Err(this.verdict.set(Refusal::BodyTooLarge))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => Poll::Ready(Some(Err(this
                .verdict
                .set(Refusal::BadRequest("malformed body"))))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let gap = *this.gap;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(this.verdict.set(Refusal::BodyTimeout))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.replay.is_none() && self.replay_trailers.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let replayed = self.replay.as_ref().map_or(0, |b| b.len() as u64);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + replayed);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + replayed);
        }
        hint
    }
}
