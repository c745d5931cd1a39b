//! One client connection over plain TCP or TLS: HTTP/1.1 on banyan's own path (h1/),
//! HTTP/2 and what that path hands on on hyper's; held to the limits by one watchdog,
//! closed when idle, and drained without racing the client's next request.

use super::activity::{Activity, InFlight};
use super::h1::{self, Rewind};
use super::wake::Remembering;
use crate::body::from_client::FromClient;
use crate::inbound::framing::{Framing, Violation};
use crate::inbound::Limits;
use crate::proxy::{self, Client};
use crate::snapshot::SharedSnapshot;
use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a draining connection with no request in flight waits for the client's next
/// request (answered with `Connection: close`) before it is closed. Closing an idle
/// HTTP/1.1 connection at once races a request the client may be sending on it.
const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// Streams a client may open and reset before banyan has accepted them; beyond, the
/// connection is ended (the HTTP/2 rapid reset attack). h2's default, made explicit.
const MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// Streams banyan may reset for a client's protocol errors on one connection before it
/// ends the connection (the "made you reset" attack). hyper's default, made explicit.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// The HTTP/1.1 + HTTP/2 connection builder, with the client limits.
pub fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper would start its header timer while a keep-alive connection waits for its
        // next request, bounding idle connections by header_timeout; banyan times the
        // head itself, from its first byte (see `serve`).
        .header_read_timeout(None)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    // HTTP/2 abuse is bounded by h2 itself once told the limits: a header list over the
    // limit (however many CONTINUATION frames carry it) is refused, and streams the client
    // resets before banyan takes them (rapid reset) or keeps making banyan reset end the
    // connection with GOAWAY.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS);
    builder
}

/// What every connection of a listener shares.
pub struct Shared {
    pub snapshot: SharedSnapshot,
    /// Becomes true when the listener drains.
    pub drain: watch::Receiver<bool>,
}

impl Shared {
    /// The limits of the running config: a connection takes them when it starts, so a
    /// reload applies them to new connections.
    pub fn limits(&self) -> Limits {
        self.snapshot.load().config.server.limits.clone()
    }
}

/// Serve one accepted connection until it ends, is idle too long, or drains. `strict_h1`:
/// the connection speaks HTTP/1 (it may still turn out to be HTTP/2 with prior
/// knowledge): banyan's own HTTP/1 path serves it, and what that path hands on goes to
/// hyper behind the strict framing reader (off for a TLS connection that agreed on
/// HTTP/2, which goes to hyper at once).
pub async fn serve<S>(shared: Arc<Shared>, stream: S, client: Client, strict_h1: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits();
    let activity = Activity::new(strict_h1);
    let mut watchdog = Watchdog::new(&shared, &limits, &activity);
    let stream = if strict_h1 {
        // Boxed once per connection: inline, the connection's future held the path's
        // state (the request's handler within it) twice over, 40 KB in all.
        let own = Box::pin(h1::serve(
            h1::Context {
                snapshot: &shared.snapshot,
                drain: &shared.drain,
                client,
                limits: &limits,
                activity: &activity,
            },
            stream,
        ));
        match watchdog.watch(own, |_| activity.close()).await {
            Some(Some(handoff)) => Rewind::new(handoff.read, handoff.stream),
            _ => return,
        }
    } else {
        Rewind::new(Bytes::new(), stream)
    };
    let io = ClientIo {
        inner: stream,
        framing: strict_h1.then(|| Framing::new(limits.max_header_bytes, limits.max_headers)),
        activity: activity.clone(),
    };
    let in_flight = activity.clone();
    let for_service = shared.clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let req = req.map(FromClient::Hyper);
        let shared = for_service.clone();
        let guard = InFlight::new(&in_flight);
        async move {
            let h1 = req.version() < http::Version::HTTP_2;
            let mut resp = proxy::handle(&shared.snapshot, client, req).await;
            if h1 && *shared.drain.borrow() {
                // Draining: this response ends the connection, so the client's next
                // request goes to a fresh one (on the new process, in an upgrade).
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            drop(guard);
            Ok::<_, Infallible>(resp)
        }
    });
    let builder = builder(&limits);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let ended = watchdog.watch(conn, |conn| conn.graceful_shutdown()).await;
    if let Some(Err(e)) = ended {
        tracing::debug!(error = %e, client = %client.addr, "connection ended with an error");
    }
}

/// Closes a connection that is idle too long, whose head is too slow, or whose drain
/// period is over; asks it to close gracefully when idle or draining. The same watchdog
/// follows a connection from banyan's own HTTP/1 path into hyper's.
struct Watchdog<'a> {
    shared: &'a Shared,
    limits: &'a Limits,
    activity: &'a Activity,
    drain: watch::Receiver<bool>,
    draining: bool,
    drain_deadline: Option<Instant>,
    timers: Arc<Remembering>,
    timer_waker: Waker,
}

impl<'a> Watchdog<'a> {
    fn new(shared: &'a Shared, limits: &'a Limits, activity: &'a Activity) -> Self {
        let drain = shared.drain.clone();
        let draining = *drain.borrow();
        let timers = Remembering::new();
        Watchdog {
            shared,
            limits,
            activity,
            drain,
            draining,
            drain_deadline: draining.then(|| Instant::now() + Self::drain_period(shared)),
            timer_waker: Waker::from(timers.clone()),
            timers,
        }
    }

    fn drain_period(shared: &Shared) -> Duration {
        shared.snapshot.load().config.server.drain_period
    }

    /// Run `conn` under watch: its output, or None when the watchdog ended it.
    async fn watch<F: Future>(
        &mut self,
        conn: F,
        mut shutdown: impl FnMut(Pin<&mut F>),
    ) -> Option<F::Output> {
        let (limits, activity) = (self.limits, self.activity);
        let mut conn = pin!(conn);
        let mut closing = false;
        loop {
            // Idle means nothing in flight and no bytes moving; draining shortens it.
            let limit = if self.draining {
                DRAIN_IDLE_GRACE
            } else {
                limits.idle_timeout
            };
            let wait = if activity.busy() {
                limit
            } else {
                limit.saturating_sub(activity.idle_for())
            };
            let event = {
                let draining = self.draining;
                let drain = &mut self.drain;
                let changed = pin!(async move {
                    if draining {
                        std::future::pending::<()>().await;
                    }
                    let _ = drain.changed().await;
                });
                let idle = pin!(async {
                    if closing {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
                });
                let began = pin!(activity.head_began.notified());
                let head = pin!(sleep_until(activity.head_deadline(limits.header_timeout)));
                let drain_over = pin!(sleep_until(self.drain_deadline));
                let mut watched = [
                    (
                        Event::Drain,
                        changed as Pin<&mut (dyn Future<Output = ()> + Send)>,
                    ),
                    (Event::Tick, idle),
                    (Event::Tick, began),
                    (Event::HeadDeadline, head),
                    (Event::DrainOver, drain_over),
                ];
                self.timers.arm();
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(output) = conn.as_mut().poll(cx) {
                        return Poll::Ready(Event::Ended(output));
                    }
                    // The timers are polled only when one of them woke the task.
                    if !self.timers.take(cx.waker()) {
                        return Poll::Pending;
                    }
                    let mut timers = Context::from_waker(&self.timer_waker);
                    for (event, future) in &mut watched {
                        if future.as_mut().poll(&mut timers).is_ready() {
                            return Poll::Ready(std::mem::replace(event, Event::Tick));
                        }
                    }
                    Poll::Pending
                })
                .await
            };
            match event {
                Event::Ended(output) => return Some(output),
                Event::Drain => {
                    self.draining = true;
                    self.drain_deadline = Some(Instant::now() + Self::drain_period(self.shared));
                }
                Event::Tick => {}
                Event::HeadDeadline => {
                    // Slow headers (slowloris), or a client that connects and sends nothing.
                    if activity
                        .head_deadline(limits.header_timeout)
                        .is_some_and(|at| at <= Instant::now())
                    {
                        tracing::debug!("request head not complete within header_timeout; closing the connection");
                        return None;
                    }
                }
                Event::DrainOver => {
                    tracing::debug!("drain period over; closing the connection");
                    return None;
                }
            }
            let quiet = !activity.busy() && activity.idle_for() >= limit;
            if !closing && (quiet || self.draining && activity.busy()) {
                // The request in flight finishes, then the connection closes (HTTP/2:
                // GOAWAY).
                shutdown(conn.as_mut());
                closing = true;
            }
        }
    }
}

/// What woke the watchdog.
enum Event<T> {
    Ended(T),
    Drain,
    /// Look again at idleness and heads.
    Tick,
    HeadDeadline,
    DrainOver,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The client's stream: every byte read goes through the strict framing reader (when
/// on), and every byte either way counts as activity.
struct ClientIo<S> {
    inner: S,
    framing: Option<Framing>,
    activity: Arc<Activity>,
}

impl<S: AsyncWrite + Unpin> ClientIo<S> {
    /// Answer a refused head before the connection closes, as banyan answers its other
    /// refusals (a status, `x-banyan-error`, a sentence), when no response can be on its
    /// way (nothing in flight). One attempt: a short answer to an idle connection fits
    /// its socket buffer; if not, the connection closes without it.
    fn answer(&mut self, cx: &mut Context<'_>, violation: Violation) {
        if self.activity.busy() {
            return;
        }
        let (answer, cause) = h1::encode::refusal(violation);
        crate::metrics::client_refusal(cause);
        let mut inner = Pin::new(&mut self.inner);
        if let Poll::Ready(Ok(_)) = inner.as_mut().poll_write(cx, &answer) {
            let _ = inner.as_mut().poll_flush(cx);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.activity.touch();
                if let Some(framing) = &mut this.framing {
                    if let Err(violation) = framing.feed(new) {
                        let why = violation.0;
                        tracing::debug!(why, "request framing refused; closing the connection");
                        this.answer(cx, violation);
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
                    }
                    this.activity.heading(framing.in_head());
                }
            }
        }
        polled
    }
}

impl<S> ClientIo<S> {
    /// Bytes written count as activity.
    fn wrote(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.activity.touch();
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
