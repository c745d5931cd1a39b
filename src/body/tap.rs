//! Copies of bodies as they stream past, for the shadow's comparison. A `Tap` wraps a
//! body and hands each chunk on unchanged and undelayed, keeping a reference-counted
//! clone (no byte copy) up to a limit; at the end of the body the copy goes to whoever
//! holds the other end of its `Capture` (the shadow task). It knows nothing of shadows.

use super::error::BoxError;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::oneshot;

/// The status and headers of a captured response, and when they arrived.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub at: Instant,
}

/// What a capture delivers.
#[derive(Debug)]
pub enum Captured {
    Complete {
        head: Option<Head>,
        body: Vec<Bytes>,
    },
    /// The body passed the limit: no copy was kept.
    TooLarge,
    /// The body failed midway (the peer went away).
    Failed,
}

/// The copying half: fills as the body streams, sends once at the end to each receiver
/// (the shadow task, the traffic capture), each with its own limit. Dropped before the
/// end (the client went away), its receivers see the channel closed.
pub struct Capture {
    chunks: Vec<Bytes>,
    size: usize,
    /// The largest limit of the receivers: past it, nothing is kept.
    limit: usize,
    too_large: bool,
    head: Option<Head>,
    receivers: Vec<(oneshot::Sender<Captured>, usize)>,
}

impl Capture {
    pub fn new(limit: usize) -> (Capture, oneshot::Receiver<Captured>) {
        let (tx, rx) = oneshot::channel();
        let capture = Capture {
            chunks: Vec::new(),
            size: 0,
            limit,
            too_large: false,
            head: None,
            receivers: vec![(tx, limit)],
        };
        (capture, rx)
    }

    /// A second receiver of the same copy, with a limit of its own.
    pub fn also(&mut self, limit: usize) -> oneshot::Receiver<Captured> {
        let (tx, rx) = oneshot::channel();
        self.limit = self.limit.max(limit);
        self.receivers.push((tx, limit));
        rx
    }

    /// Attach the response head this body belongs to.
    pub fn with_head(mut self, status: StatusCode, headers: &HeaderMap) -> Self {
        self.head = Some(Head {
            status,
            headers: headers.clone(),
            at: Instant::now(),
        });
        self
    }

    fn push(&mut self, data: &Bytes) {
        if self.too_large {
            return;
        }
        self.size += data.len();
        if self.size > self.limit {
            self.too_large = true;
            self.chunks = Vec::new();
        } else {
            self.chunks.push(data.clone());
        }
    }

    /// Trailers at the body's end (a gRPC answer's status): kept with the head's
    /// headers, where comparison reads them.
    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(head) = self.head.as_mut() {
            for (name, value) in trailers {
                head.headers.append(name, value.clone());
            }
        }
    }

    /// Deliver what was kept: the body is over.
    pub fn finish(&mut self) {
        let mut receivers = std::mem::take(&mut self.receivers);
        let last = receivers.pop();
        for (tx, limit) in receivers {
            let captured = self.captured(limit, false);
            let _ = tx.send(captured);
        }
        // The last one takes the copy without cloning it.
        if let Some((tx, limit)) = last {
            let _ = tx.send(self.captured(limit, true));
        }
    }

    fn captured(&mut self, limit: usize, take: bool) -> Captured {
        if self.too_large || self.size > limit {
            return Captured::TooLarge;
        }
        if take {
            Captured::Complete {
                head: self.head.take(),
                body: std::mem::take(&mut self.chunks),
            }
        } else {
            Captured::Complete {
                head: self.head.clone(),
                body: self.chunks.clone(),
            }
        }
    }

    /// Deliver a body known whole in advance (a buffered request).
    pub fn finish_with(mut self, body: &Bytes) {
        self.push(body);
        self.finish();
    }

    fn fail(&mut self) {
        for (tx, _) in self.receivers.drain(..) {
            let _ = tx.send(Captured::Failed);
        }
    }
}

/// How a body ended, for whoever watches it.
#[derive(Clone, Copy)]
pub enum End<'a> {
    /// With trailers.
    Trailers(&'a HeaderMap),
    /// Without trailers.
    Plain,
    /// Broken midway (the peer it streams from failed).
    Failed,
    /// Dropped before its end (the client went away).
    Dropped,
}

/// What a watch calls: how the body ended, and its data bytes that passed.
type OnEnd = Box<dyn FnOnce(End<'_>, u64) + Send>;

/// Called once when a watched body ends, however it ends.
pub struct Watch {
    on_end: Option<OnEnd>,
    /// Data bytes passed so far.
    bytes: u64,
}

impl Watch {
    fn fire(&mut self, end: End<'_>) {
        if let Some(f) = self.on_end.take() {
            f(end, self.bytes);
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.fire(End::Dropped);
    }
}

pin_project_lite::pin_project! {
    /// A body passed through unchanged, copied into a `Capture` when one is attached,
    /// and watched to its end when a `Watch` is.
    pub struct Tap<B> {
        #[pin]
        inner: B,
        capture: Option<Capture>,
        watch: Option<Watch>,
    }
}

impl<B: Body> Tap<B> {
    /// No copy: a plain pass-through.
    pub fn plain(inner: B) -> Self {
        Tap {
            inner,
            capture: None,
            watch: None,
        }
    }

    /// Call `f` once when the body ends (with its trailers, if any), or breaks, with the
    /// data bytes that passed. A second watch is called after the first.
    pub fn watch(&mut self, f: impl FnOnce(End<'_>, u64) + Send + 'static) {
        let on_end: OnEnd = match self.watch.as_mut().and_then(|w| w.on_end.take()) {
            Some(first) => Box::new(move |end, bytes| {
                first(end, bytes);
                f(end, bytes);
            }),
            None => Box::new(f),
        };
        let bytes = self.watch.as_ref().map_or(0, |w| w.bytes);
        let mut watch = Watch {
            on_end: Some(on_end),
            bytes,
        };
        if self.inner.is_end_stream() {
            // Nobody will poll an empty body.
            watch.fire(End::Plain);
        } else {
            self.watch = Some(watch);
        }
    }

    /// Copy the body into `capture` as it streams.
    pub fn new(inner: B, mut capture: Capture) -> Self {
        if inner.is_end_stream() {
            // Nobody will poll an empty body: its copy is complete now.
            capture.finish();
        }
        Tap {
            inner,
            capture: Some(capture),
            watch: None,
        }
    }
}

impl<B> Body for Tap<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = inner.as_mut().poll_frame(cx);
        if let Some(watch) = this.watch.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        watch.bytes += data.len() as u64;
                    }
                    if let Some(trailers) = frame.trailers_ref() {
                        watch.fire(End::Trailers(trailers));
                    } else if inner.is_end_stream() {
                        watch.fire(End::Plain);
                    }
                }
                Poll::Ready(Some(Err(_))) => watch.fire(End::Failed),
                Poll::Ready(None) => watch.fire(End::Plain),
                Poll::Pending => {}
            }
        }
        let Some(capture) = this.capture.as_mut() else {
            return polled.map_err(Into::into);
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    capture.push(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    capture.trailers(trailers);
                }
                // hyper stops polling once the body says it has ended: finish here, as
                // the final `None` may never be asked for.
                if inner.is_end_stream() {
                    capture.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                capture.fail();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                capture.finish();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // Dropped before its end (the client or upstream went away): say so, rather than
        // hand on a truncated copy.
        self.fail();
    }
}
