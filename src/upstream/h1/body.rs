//! A response body read from its connection in the task that polls it (the client's
//! connection task): no channel, no task of its own. When the body has been read whole
//! and the connection may carry another request, it goes back to the idle list.

use super::conn::{Conn, Idle};
use super::wire::{Chunk, ChunkedDecoder, Framing, Malformed};
use crate::body::error::BoxError;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// Read into a connection's buffer this much at least.
const READ_CHUNK: usize = 8 * 1024;

enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    /// Read whole (or failed): nothing more comes.
    Done,
}

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the upstream closed the connection before the body's end")]
    Truncated,
    #[error("the upstream sent no more of the body within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Malformed(#[from] Malformed),
    #[error("reading the upstream's body: {0}")]
    Io(#[from] std::io::Error),
}

/// An upstream's response body.
pub struct Body {
    conn: Option<Conn>,
    state: State,
    /// Where the connection goes when the body is read whole, if it may be reused.
    idle: Option<Arc<Idle>>,
    read_timeout: Duration,
    /// Made only when a read has to wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Body {
    pub(super) fn new(
        conn: Conn,
        framing: Framing,
        idle: Option<Arc<Idle>>,
        read_timeout: Duration,
    ) -> Body {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = Body {
            conn: Some(conn),
            state,
            idle,
            read_timeout,
            timer: None,
        };
        if matches!(body.state, State::Done) {
            body.finish();
        }
        body
    }

    /// The body is read whole: the connection goes back for another request, when it may
    /// (its response said so, and the upstream sent nothing past the body).
    fn finish(&mut self) {
        self.state = State::Done;
        self.timer = None;
        if let (Some(conn), Some(idle)) = (self.conn.take(), self.idle.take()) {
            if conn.read_buf.is_empty() {
                idle.put(conn);
            }
        }
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        self.conn = None;
        Poll::Ready(Some(Err(error.into())))
    }

    /// Read more of the body into the buffer: the bytes read, 0 at the upstream's end.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, BodyError>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        loop {
            match conn.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {
                    let timeout = self.read_timeout;
                    let timer = self
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    ready!(timer.as_mut().poll(cx));
                    return Poll::Ready(Err(BodyError::Timeout(timeout)));
                }
            }
            conn.read_buf.reserve(READ_CHUNK);
            match conn.stream.try_read_buf(&mut conn.read_buf) {
                Ok(n) => {
                    self.timer = None;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            let buffered = this.conn.as_ref().map_or(0, |c| c.read_buf.len());
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) if buffered > 0 => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buffered);
                    *left -= n as u64;
                    let done = *left == 0;
                    let data = match this.conn.as_mut() {
                        Some(conn) => conn.read_buf.split_to(n).freeze(),
                        None => Bytes::new(),
                    };
                    if done {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Chunked(decoder) if buffered > 0 => {
                    let Some(conn) = this.conn.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match decoder.decode(&mut conn.read_buf) {
                        Ok(Chunk::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Chunk::End(trailers)) => {
                            this.finish();
                            return Poll::Ready(trailers_frame(trailers));
                        }
                        Ok(Chunk::More) => {}
                        Err(e) => return this.fail(e.into()),
                    }
                }
                State::UntilClose if buffered > 0 => {
                    let data = match this.conn.as_mut() {
                        Some(conn) => conn.read_buf.split().freeze(),
                        None => Bytes::new(),
                    };
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                _ => {}
            }
            match ready!(this.poll_read(cx)) {
                Ok(0) => {
                    return match this.state {
                        // Closing is how this body ends.
                        State::UntilClose => {
                            this.state = State::Done;
                            this.conn = None;
                            Poll::Ready(None)
                        }
                        _ => this.fail(BodyError::Truncated),
                    };
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

fn trailers_frame(trailers: HeaderMap) -> Option<Result<Frame<Bytes>, BoxError>> {
    (!trailers.is_empty()).then(|| Ok(Frame::trailers(trailers)))
}
