//! Traffic capture: a route records a sample of its requests with the answers its
//! clients got (`capture = { percent = 1 }`), for `banyan replay` to send again later
//! and compare. The request path only samples, attaches taps to the two bodies and
//! spawns a task that waits for them; redaction, serialising and the disk are the
//! writer thread's (writer.rs), behind a bounded queue. A failing disk never reaches a
//! client: records are dropped and counted.

pub mod har;
pub mod read;
pub mod record;
pub mod spec;
pub mod writer;

pub use record::{Exchange, RequestHead};
pub use spec::CaptureSpec;

use crate::body::tap::{Capture, Captured};
use crate::config::CaptureSettings;
use crate::store::redact::RedactRules;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// A snapshot's capture: the writer (carried from the previous snapshot while the
/// settings and the redaction rules stay the same).
pub struct Env {
    writer: Arc<writer::Writer>,
    settings: CaptureSettings,
    redact: RedactRules,
}

impl Env {
    pub fn new(
        settings: &CaptureSettings,
        redact: &RedactRules,
        previous: Option<&Env>,
    ) -> std::io::Result<Env> {
        let writer = match previous {
            Some(p) if p.settings == *settings && p.redact == *redact => p.writer.clone(),
            _ => Arc::new(writer::Writer::start(settings, redact)?),
        };
        Ok(Env {
            writer,
            settings: settings.clone(),
            redact: redact.clone(),
        })
    }

    /// Begin recording a request: taps on its body (unless it has none) and on the
    /// answer, or, where the shadow already copies a body, a second receiver of that
    /// copy. The returned taps are the ones the caller must attach.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        &self,
        route: &str,
        spec: &CaptureSpec,
        request: RequestHead,
        started: Instant,
        empty_body: bool,
        shadow_request: Option<&mut Capture>,
        shadow_response: Option<&mut Capture>,
    ) -> (Option<Capture>, Option<Capture>) {
        let (request_tap, request_rx) = match (empty_body, shadow_request) {
            (true, _) => (None, None),
            (false, Some(shared)) => (None, Some(shared.also(spec.max_body))),
            (false, None) => {
                let (tap, rx) = Capture::new(spec.max_body);
                (Some(tap), Some(rx))
            }
        };
        let (response_tap, response_rx) = match shadow_response {
            Some(shared) => (None, shared.also(spec.max_body)),
            None => {
                let (tap, rx) = Capture::new(spec.max_body);
                (Some(tap), rx)
            }
        };
        let pending = Pending {
            route: route.to_string(),
            at: crate::clock::now_unix() - started.elapsed().as_secs_f64(),
            started,
            request,
            request_rx,
            response_rx,
        };
        let writer = self.writer.clone();
        tokio::spawn(async move {
            if let Some(exchange) = pending.complete().await {
                writer.submit(exchange);
            }
        });
        (request_tap, response_tap)
    }
}

/// A recorded request waiting for its bodies.
struct Pending {
    route: String,
    at: f64,
    started: Instant,
    request: RequestHead,
    request_rx: Option<oneshot::Receiver<Captured>>,
    response_rx: oneshot::Receiver<Captured>,
}

impl Pending {
    async fn complete(self) -> Option<Exchange> {
        let request_body = match self.request_rx {
            None => Bytes::new(),
            Some(rx) => whole(rx.await).map(|(_, body)| body)?,
        };
        let (head, response_body) = whole(self.response_rx.await)?;
        let Some(head) = head else {
            crate::metrics::capture_dropped("incomplete");
            return None;
        };
        Some(Exchange {
            route: self.route,
            at: self.at,
            request: self.request,
            request_body,
            status: head.status,
            latency: head.at.saturating_duration_since(self.started),
            response_headers: head.headers,
            response_body,
        })
    }
}

/// A captured body whole, or None (counted) when it was too large or broke.
fn whole(
    captured: Result<Captured, oneshot::error::RecvError>,
) -> Option<(Option<crate::body::tap::Head>, Bytes)> {
    match captured {
        Ok(Captured::Complete { head, body }) => {
            let bytes = match body.len() {
                0 => Bytes::new(),
                1 => body.into_iter().next().unwrap_or_default(),
                _ => {
                    let mut all = BytesMut::with_capacity(body.iter().map(Bytes::len).sum());
                    body.iter().for_each(|b| all.extend_from_slice(b));
                    all.freeze()
                }
            };
            Some((head, bytes))
        }
        Ok(Captured::TooLarge) => {
            crate::metrics::capture_dropped("too_large");
            None
        }
        Ok(Captured::Failed) | Err(_) => {
            crate::metrics::capture_dropped("incomplete");
            None
        }
    }
}
