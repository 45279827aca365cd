//! The request body as the listeners hand it to their handler. HTTP/1
//! bodies come from `h1`: whole when they arrived with their head (most
//! small ones), otherwise fed piece by piece by the connection's task, which
//! reads the socket only when the body asks for more (backpressure, and
//! `Expect: 100-continue` answered only once the body is wanted). HTTP/2
//! bodies are hyper's.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;

/// Why a request body could not be read: broke off, or badly framed.
#[derive(Debug)]
pub struct BodyError(Box<dyn std::error::Error + Send + Sync>);

impl BodyError {
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BodyError {
        BodyError(e.into())
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body: {}", self.0)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// What the connection's task sends a fed body.
#[derive(Debug)]
pub(crate) enum Piece {
    Frame(Frame<Bytes>),
    /// The body ended as framed.
    End,
    Failed(BodyError),
}

/// The connection's side of a fed body.
pub(crate) struct Feeder {
    pub tx: mpsc::UnboundedSender<Piece>,
    /// Ready when the body wants another piece; closed once it is dropped.
    pub want: want::Giver,
}

pub struct RequestBody(Kind);

enum Kind {
    Empty,
    Whole(Option<Bytes>),
    Fed(Fed),
    H2(Incoming),
}

struct Fed {
    rx: mpsc::UnboundedReceiver<Piece>,
    want: want::Taker,
    /// Bytes still to come, when the head declared them.
    left: Option<u64>,
    ended: bool,
}

impl RequestBody {
    pub fn empty() -> RequestBody {
        RequestBody(Kind::Empty)
    }

    pub fn whole(bytes: Bytes) -> RequestBody {
        RequestBody(Kind::Whole((!bytes.is_empty()).then_some(bytes)))
    }

    pub fn h2(body: Incoming) -> RequestBody {
        RequestBody(Kind::H2(body))
    }

    /// A body fed by the connection's task; `length` if the head declared it.
    pub(crate) fn fed(length: Option<u64>) -> (RequestBody, Feeder) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (giver, taker) = want::new();
        let fed = Fed {
            rx,
            want: taker,
            left: length,
            ended: false,
        };
        (RequestBody(Kind::Fed(fed)), Feeder { tx, want: giver })
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Kind::Empty => "empty",
            Kind::Whole(_) => "whole",
            Kind::Fed(_) => "fed",
            Kind::H2(_) => "h2",
        };
        f.debug_tuple("RequestBody").field(&kind).finish()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().0 {
            Kind::Empty => Poll::Ready(None),
            Kind::Whole(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::H2(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| BodyError(Box::new(e))),
            Kind::Fed(fed) => fed.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Whole(b) => b.is_none(),
            Kind::Fed(fed) => fed.ended,
            Kind::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Fed(Fed { left: Some(n), .. }) => SizeHint::with_exact(*n),
            Kind::Fed(_) => SizeHint::default(),
            Kind::H2(b) => b.size_hint(),
        }
    }
}

impl Fed {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Piece::Frame(frame))) => {
                if let (Some(data), Some(left)) = (frame.data_ref(), self.left.as_mut()) {
                    *left = left.saturating_sub(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Piece::End)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Piece::Failed(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(e)))
            }
            // The connection went without saying the body ended.
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(BodyError::new(
                    "the connection closed before the body was complete",
                ))))
            }
            Poll::Pending => {
                self.want.want();
                Poll::Pending
            }
        }
    }
}
