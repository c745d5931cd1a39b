//! banyan's own HTTP/1.1 server path, for the common case: a request head read and
//! parsed once (inbound/parse.rs, as strict about line ends as the framing reader), the
//! handler run in the connection's own task, the response head written straight into
//! the connection's buffer and sent with the first piece of the body in one write.
//! hyper's server did the same work with a second parse of every head (its own beside
//! banyan's framing reader) and more moves of state between futures: see
//! docs/ARCHITECTURE.md, "The client side".
//!
//! What this path does not serve (an upgrade, CONNECT, `Expect`, HTTP/2) is handed to
//! hyper with the bytes already read, for the rest of the connection.

pub mod encode;
mod rewind;

pub use rewind::Rewind;

use super::activity::{Activity, InFlight};
use crate::body::from_client::{Fed, FromClient};
use crate::body::ResponseBody;
use crate::inbound::framing::Violation;
use crate::inbound::parse::{self, BodyFraming, Parsed, Scan};
use crate::inbound::Limits;
use crate::proxy::{self, Client};
use crate::snapshot::SharedSnapshot;
use crate::upstream::h1::wire::{Chunk, ChunkedDecoder};
use bytes::{Buf, Bytes, BytesMut};
use encode::{Exchange, Framing};
use http::{Method, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// Read into the connection's buffer this much at least.
const READ_CHUNK: usize = 8 * 1024;
/// A piece of a body up to this size is copied behind what waits to be written; a
/// larger one is written from where it is.
const COPY_MAX: usize = 16 * 1024;
/// A connection that closes with bytes of the client's still unread reads them this
/// long at most, so that closing does not reset the connection under its last answer.
const LINGER: Duration = Duration::from_secs(1);
/// ...and this much at most.
const LINGER_BYTES: usize = 1024 * 1024;

/// A connection for hyper to serve from here on, with what was read of it.
pub struct HandOff<S> {
    pub stream: S,
    pub read: Bytes,
}

/// What a connection of this path shares with its listener and watchdog.
pub struct Context<'a> {
    pub snapshot: &'a SharedSnapshot,
    pub drain: &'a watch::Receiver<bool>,
    pub client: Client,
    pub limits: &'a Limits,
    pub activity: &'a Arc<Activity>,
}

/// Serve HTTP/1.1 requests until the connection ends (None) or asks for what hyper
/// serves.
pub async fn serve<S>(cx: Context<'_>, mut stream: S) -> Option<HandOff<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        let head = match read_head(&cx, &mut stream, &mut buf, first).await {
            Next::Head(head) => head,
            Next::HandOff => {
                return Some(HandOff {
                    stream,
                    read: buf.freeze(),
                })
            }
            Next::Refuse(violation) => {
                refuse(&mut stream, &mut buf, violation).await;
                return None;
            }
            Next::End => return None,
        };
        first = false;
        let head = match parse::parse(&head, cx.limits.max_headers) {
            Ok(Parsed::Request(parsed)) => parsed,
            Ok(Parsed::HandOff) => {
                let mut read = BytesMut::from(&head[..]);
                read.extend_from_slice(&buf);
                return Some(HandOff {
                    stream,
                    read: read.freeze(),
                });
            }
            Err(violation) => {
                refuse(&mut stream, &mut buf, violation).await;
                return None;
            }
        };
        match exchange(&cx, &mut stream, &mut buf, &mut out, head).await {
            After::Next => {}
            After::Close { unread } => {
                close(&mut stream, &mut buf, unread).await;
                return None;
            }
            After::Gone => return None,
        }
    }
}

enum Next {
    Head(Bytes),
    HandOff,
    Refuse(Violation),
    End,
}

/// Read until the buffer holds a complete head (checked on the way), the client leaves,
/// or the watchdog closes an idle connection.
async fn read_head<S: AsyncRead + Unpin>(
    cx: &Context<'_>,
    stream: &mut S,
    buf: &mut BytesMut,
    first: bool,
) -> Next {
    let mut from = 0;
    loop {
        if !buf.is_empty() {
            match parse::scan(buf, from, cx.limits.max_header_bytes, first) {
                Ok(Scan::Skip(n)) => {
                    buf.advance(n);
                    continue;
                }
                Ok(Scan::Partial(at)) => from = at,
                Ok(Scan::Complete(len)) => {
                    cx.activity.heading(false);
                    return Next::Head(buf.split_to(len).freeze());
                }
                Ok(Scan::H2Preface) => return Next::HandOff,
                Err(violation) => return Next::Refuse(violation),
            }
        }
        if !buf.is_empty() {
            // A head has begun: header_timeout runs from here (and from the connection's
            // start for its first head).
            cx.activity.heading(true);
        }
        let activity = cx.activity;
        let read = std::future::poll_fn(|task| {
            // The watchdog closes a connection between requests (idle, or draining).
            if activity.is_closing() {
                return Poll::Ready(Ok(0));
            }
            reserve(buf);
            pin!(stream.read_buf(buf)).poll(task)
        });
        match read.await {
            Ok(0) | Err(_) => return Next::End,
            Ok(_) => cx.activity.touch(),
        }
    }
}

/// Room for one more read.
fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

enum After {
    /// The connection is ready for the next request.
    Next,
    /// It closes; `unread`: the client may still be sending (a body not read).
    Close { unread: bool },
    /// The client left.
    Gone,
}

/// One request: its body fed as the handler takes it, the handler run, the response
/// written.
async fn exchange<S>(
    cx: &Context<'_>,
    stream: &mut S,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    head: parse::Head,
) -> After
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let head_request = head.parts.method == Method::HEAD;
    let version = head.parts.version;
    let (body, mut feed) = request_body(head.body, buf);
    let req = Request::from_parts(head.parts, body);
    let in_flight = InFlight::new(cx.activity);
    let mut handler = pin!(proxy::handle(cx.snapshot, cx.client, req));
    let resp = loop {
        tokio::select! {
            biased;
            resp = &mut handler => break resp,
            left = client_side(stream, buf, &mut feed, cx.activity) => {
                if left {
                    // The handler is dropped here: the access log writes 499.
                    return After::Gone;
                }
            }
        }
    };
    drop(in_flight);
    let closing = cx.activity.is_closing() || *cx.drain.borrow();
    let body_open = feed.as_ref().is_some_and(Feed::is_open);
    let keep_alive =
        head.keep_alive && !closing && !body_open && !encode::asks_close(resp.headers());
    let written = match feed.as_mut().filter(|f| f.is_open()) {
        None => write_response(cx, stream, out, resp, head_request, version, keep_alive).await,
        Some(feed) => {
            // The upstream answered before the client's body was all read: go on
            // feeding it while the answer is written (an upload answered as it streams).
            let (mut reader, mut writer) = tokio::io::split(&mut *stream);
            let write = write_response(cx, &mut writer, out, resp, head_request, version, false);
            let mut write = pin!(write);
            loop {
                tokio::select! {
                    biased;
                    written = &mut write => break written,
                    () = feed.step(&mut reader, buf, cx.activity), if feed.is_open() => {}
                }
            }
        }
    };
    let unread = feed.as_ref().is_some_and(|f| !f.is_done());
    match written {
        Ok(true) if keep_alive && !unread => After::Next,
        Ok(_) => After::Close { unread },
        Err(e) => {
            tracing::debug!(error = %e, client = %cx.client.addr, "writing the response failed");
            After::Gone
        }
    }
}

/// The request's body: none, all of it already read with the head, or fed as it comes.
fn request_body(framing: BodyFraming, buf: &mut BytesMut) -> (FromClient, Option<Feed>) {
    match framing {
        BodyFraming::None => (FromClient::empty(), None),
        BodyFraming::Length(n) if buf.len() as u64 >= n => {
            let whole = buf.split_to(n as usize).freeze();
            (FromClient::whole(whole), None)
        }
        BodyFraming::Length(n) => {
            let (tx, body) = FromClient::fed(Some(n));
            (body, Some(Feed::new(tx, Decoder::Length(n))))
        }
        BodyFraming::Chunked => {
            let (tx, body) = FromClient::fed(None);
            let decoder = Decoder::Chunked(ChunkedDecoder::default());
            (body, Some(Feed::new(tx, decoder)))
        }
    }
}

/// While the handler runs: feed the body as it is taken; with no body to feed, read so
/// as to see a client that leaves (bytes of a pipelined request are kept for later).
/// True when the client left.
async fn client_side<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    feed: &mut Option<Feed>,
    activity: &Activity,
) -> bool {
    if let Some(feed) = feed.as_mut().filter(|f| f.is_open()) {
        feed.step(stream, buf, activity).await;
        return false;
    }
    if !buf.is_empty() {
        return std::future::pending().await;
    }
    reserve(buf);
    match stream.read_buf(buf).await {
        Ok(0) | Err(_) => true,
        Ok(_) => {
            activity.touch();
            false
        }
    }
}

/// How the body's bytes are delimited on the connection.
enum Decoder {
    /// Bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The client's body, fed to the handler's `FromClient` one frame at a time: the next
/// is read from the connection only when the last was taken.
struct Feed {
    /// Dropped when the body is over, which ends it for the reader.
    tx: Option<mpsc::Sender<Fed>>,
    decoder: Decoder,
    state: FeedState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FeedState {
    Open,
    /// Read whole.
    Done,
    /// Broken framing or a connection that ended within it; or the handler let go of
    /// the body before its end. Either way the connection's next bytes are not a head.
    Stopped,
}

impl Feed {
    fn new(tx: mpsc::Sender<Fed>, decoder: Decoder) -> Self {
        Feed {
            tx: Some(tx),
            decoder,
            state: FeedState::Open,
        }
    }

    fn is_open(&self) -> bool {
        self.state == FeedState::Open
    }

    fn is_done(&self) -> bool {
        self.state == FeedState::Done
    }

    fn end(&mut self, state: FeedState) {
        self.state = state;
        self.tx = None;
    }

    /// Send the next frame once the last was taken, reading as much as it needs.
    async fn step<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        buf: &mut BytesMut,
        activity: &Activity,
    ) {
        let Some(tx) = &self.tx else {
            return std::future::pending().await;
        };
        let Ok(permit) = tx.reserve().await else {
            return self.end(FeedState::Stopped);
        };
        let mut permit = Some(permit);
        let mut send = move |fed: Fed| {
            if let Some(permit) = permit.take() {
                permit.send(fed);
            }
        };
        let decoder = &mut self.decoder;
        let ended = loop {
            match decoder.next(buf) {
                Ok(Some((frame, last))) => {
                    send(Ok(frame));
                    break last.then_some(FeedState::Done);
                }
                Ok(None) if decoder.finished() => break Some(FeedState::Done),
                Ok(None) => {}
                Err(broken) => {
                    send(Err(broken.into()));
                    break Some(FeedState::Stopped);
                }
            }
            reserve(buf);
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => {
                    send(Err("the client's connection ended within the body".into()));
                    break Some(FeedState::Stopped);
                }
                Ok(_) => activity.touch(),
            }
        };
        drop(send);
        if let Some(state) = ended {
            self.end(state);
        }
    }
}

impl Decoder {
    fn finished(&self) -> bool {
        match self {
            Decoder::Length(left) => *left == 0,
            Decoder::Chunked(chunks) => chunks.is_done(),
        }
    }

    /// The next frame in `buf`, and whether it is the body's last; None: more bytes.
    fn next(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<(Frame<Bytes>, bool)>, crate::upstream::h1::wire::Malformed> {
        match self {
            Decoder::Length(left) => {
                if buf.is_empty() || *left == 0 {
                    return Ok(None);
                }
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                *left -= n as u64;
                Ok(Some((Frame::data(buf.split_to(n).freeze()), *left == 0)))
            }
            Decoder::Chunked(chunks) => match chunks.decode(buf)? {
                Chunk::Data(data) => Ok(Some((Frame::data(data), false))),
                Chunk::End(trailers) if trailers.is_empty() => Ok(None),
                Chunk::End(trailers) => Ok(Some((Frame::trailers(trailers), true))),
                Chunk::More => Ok(None),
            },
        }
    }
}
/// Write the response: head and the body's first ready pieces in one write, the rest as
/// it comes. Ok(false): written, but the connection cannot carry another (a body that
/// ends only with the connection).
async fn write_response<W: AsyncWrite + Unpin>(
    cx: &Context<'_>,
    w: &mut W,
    out: &mut Vec<u8>,
    resp: Response<ResponseBody>,
    head_request: bool,
    version: http::Version,
    keep_alive: bool,
) -> io::Result<bool> {
    let (parts, body) = resp.into_parts();
    let exchange = Exchange {
        head_request,
        version,
        status: parts.status,
        exact: http_body::Body::size_hint(&body).exact(),
    };
    let framing = encode::framing(exchange, &parts.headers);
    let keep_alive = keep_alive && framing != Framing::UntilClose;
    out.clear();
    encode::encode_head(out, exchange, &parts.headers, framing, keep_alive);
    drop(parts);
    let limit = cx.limits.idle_timeout;
    if framing == Framing::Empty {
        send(w, out, limit, cx.activity).await?;
        flush(w, limit).await?;
        return Ok(keep_alive);
    }
    let mut body = pin!(body);
    let mut written: u64 = 0;
    loop {
        // What is ready now goes with what waits; before waiting, that is written.
        let frame = match now_or_never(body.frame()) {
            Some(frame) => frame,
            None => {
                // A TLS stream may hold what was written until it is flushed.
                send(w, out, limit, cx.activity).await?;
                flush(w, limit).await?;
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => return Err(io::Error::other(e)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers: not sent over HTTP/1.1 (see encode::LAST_CHUNK).
                _ => continue,
            },
        };
        written += data.len() as u64;
        match framing {
            Framing::Length(n) if written > n => {
                return Err(io::Error::other("the body is longer than its length"))
            }
            Framing::Chunked => encode::chunk_size_line(out, data.len()),
            _ => {}
        }
        if data.len() <= COPY_MAX {
            out.extend_from_slice(&data);
        } else {
            send(w, out, limit, cx.activity).await?;
            send_all(w, &data, limit, cx.activity).await?;
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    match framing {
        Framing::Length(n) if written != n => {
            return Err(io::Error::other("the body is shorter than its length"))
        }
        Framing::Chunked => out.extend_from_slice(encode::LAST_CHUNK),
        _ => {}
    }
    send(w, out, limit, cx.activity).await?;
    flush(w, limit).await?;
    Ok(keep_alive)
}

/// Flush the stream (a no-op for TCP; TLS writes out what it holds).
async fn flush<W: AsyncWrite + Unpin>(w: &mut W, limit: Duration) -> io::Result<()> {
    match now_or_never(w.flush()) {
        Some(flushed) => flushed,
        None => timed(limit, w.flush()).await,
    }
}

/// Write what waits in `out`, and empty it.
async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut Vec<u8>,
    limit: Duration,
    activity: &Activity,
) -> io::Result<()> {
    if !out.is_empty() {
        send_all(w, out, limit, activity).await?;
        out.clear();
    }
    Ok(())
}

/// Write all of `bytes`. Most writes are taken by the socket at once: a timer is armed
/// only for one that waits, and a client that takes nothing for `limit` is given up on.
async fn send_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut bytes: &[u8],
    limit: Duration,
    activity: &Activity,
) -> io::Result<()> {
    while !bytes.is_empty() {
        match now_or_never(w.write(bytes)) {
            Some(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Some(Ok(n)) => bytes = &bytes[n..],
            Some(Err(e)) => return Err(e),
            None => {
                timed(limit, w.write_all(bytes)).await?;
                break;
            }
        }
    }
    activity.touch();
    Ok(())
}

/// Poll once: most socket writes and most bodies already read are ready at once, and
/// waiting for them would cost a timer or a wake.
fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

async fn timed<T>(limit: Duration, io: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(limit, io)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Answer a head banyan refuses, and close.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    violation: Violation,
) {
    tracing::debug!(
        why = violation.0,
        "request head refused; closing the connection"
    );
    let (answer, cause) = encode::refusal(violation);
    crate::metrics::client_refusal(cause);
    let _ = tokio::time::timeout(LINGER, stream.write_all(&answer)).await;
    close(stream, buf, true).await;
}

/// End the connection: send its end, and when the client may still be sending, read
/// and drop what it sends for a moment, so that closing with unread bytes does not
/// reset the connection before the client has read the last answer.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    unread: bool,
) {
    let linger = async {
        let _ = stream.shutdown().await;
        if !unread {
            return;
        }
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            buf.clear();
            reserve(buf);
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => dropped += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, linger).await;
}
