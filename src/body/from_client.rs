//! The client's request body as its connection delivers it: hyper's (HTTP/2, and HTTP/1
//! connections handed to hyper), or from banyan's own HTTP/1 server path, where a body
//! already read with its head is held whole and a longer one is fed by the connection
//! through a channel of one frame (the connection reads more only when it was taken).

use super::error::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// What the connection sends through the channel: a frame, or why the body broke.
pub type Fed = Result<Frame<Bytes>, BoxError>;

#[derive(Debug)]
pub enum FromClient {
    Hyper(Incoming),
    /// No body, or all of it (taken once).
    Whole(Option<Bytes>),
    /// Fed by the connection; `left` is what a Content-Length still promises.
    Fed {
        frames: mpsc::Receiver<Fed>,
        left: Option<u64>,
    },
}

impl FromClient {
    pub fn empty() -> Self {
        FromClient::Whole(None)
    }

    pub fn whole(bytes: Bytes) -> Self {
        FromClient::Whole((!bytes.is_empty()).then_some(bytes))
    }

    /// A body the connection feeds; the sender side goes to the connection.
    pub fn fed(length: Option<u64>) -> (mpsc::Sender<Fed>, Self) {
        let (tx, rx) = mpsc::channel(1);
        let body = FromClient::Fed {
            frames: rx,
            left: length,
        };
        (tx, body)
    }
}

impl Body for FromClient {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            FromClient::Hyper(inner) => Pin::new(inner).poll_frame(cx).map_err(Into::into),
            FromClient::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            FromClient::Fed { frames, left } => {
                let polled = frames.poll_recv(cx);
                if let (Poll::Ready(Some(Ok(frame))), Some(left)) = (&polled, left) {
                    if let Some(data) = frame.data_ref() {
                        *left = left.saturating_sub(data.len() as u64);
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            FromClient::Hyper(inner) => inner.is_end_stream(),
            FromClient::Whole(bytes) => bytes.is_none(),
            FromClient::Fed { left, .. } => *left == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            FromClient::Hyper(inner) => inner.size_hint(),
            FromClient::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            FromClient::Fed { left: Some(n), .. } => SizeHint::with_exact(*n),
            FromClient::Fed { left: None, .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_fed_body_counts_down_its_length_and_ends_with_the_channel() {
        let (tx, mut body) = FromClient::fed(Some(5));
        assert_eq!(body.size_hint().exact(), Some(5));
        tx.send(Ok(Frame::data(Bytes::from_static(b"hel"))))
            .await
            .unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "hel");
        assert_eq!(body.size_hint().exact(), Some(2));
        assert!(!body.is_end_stream());
        tx.send(Ok(Frame::data(Bytes::from_static(b"lo"))))
            .await
            .unwrap();
        drop(tx);
        body.frame().await.unwrap().unwrap();
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_whole_body_is_given_once() {
        assert!(FromClient::empty().is_end_stream());
        assert!(FromClient::whole(Bytes::new()).is_end_stream());
        let mut body = FromClient::whole(Bytes::from_static(b"abc"));
        assert_eq!(body.size_hint().exact(), Some(3));
        let all = (&mut body).collect().await.unwrap().to_bytes();
        assert_eq!(all, "abc");
        assert!(body.is_end_stream());
    }
}
