//! Feeds a request body that did not arrive with its head: run by the
//! connection's task beside the handler, it reads the socket only when the
//! body asks for more (`want`), decodes what came (a length, or chunks with
//! `proxy::h1::chunked`, the decoder of upstream bodies) and sends it on.
//! The first ask of a request that expects `100 Continue` writes it first.
//! A body its handler dropped unread is read and thrown away after the
//! answer (`read_past`), when small, so the connection is kept.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use hyper::body::Frame;
use tokio::io::AsyncRead;

use crate::listener::body::{BodyError, Feeder, Piece};
use crate::proxy::h1::chunked::{Chunk, Chunked};
use crate::proxy::h1::conn::drain::{DRAIN_MAX, DRAIN_TIME};

/// What a feed ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// The whole body was read: the connection can carry another request.
    Complete,
    /// The body failed (bad framing, the client left): the connection
    /// closes after the answer.
    Broken,
    /// The handler dropped the body before its end: what is left of it can
    /// still be read past (`Feed::read_past`).
    Dropped,
}

pub enum Decode {
    Length(u64),
    Chunked(Chunked),
}

pub struct Feed {
    feeder: Feeder,
    decode: Decode,
    /// `100 Continue` is still owed at the first ask.
    pub expect_continue: bool,
    /// The request expected `100 Continue`, and it was written.
    expected: bool,
    continued: bool,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Feed {
    pub fn new(feeder: Feeder, decode: Decode, expect_continue: bool) -> Feed {
        Feed {
            feeder,
            decode,
            expect_continue,
            expected: expect_continue,
            continued: false,
        }
    }

    /// Sends the body pieces the body asks for, reading `io` into `buf` as
    /// needed; `out` takes the `100 Continue` (the caller writes it).
    pub fn poll<I: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut I,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Poll<Fed> {
        loop {
            if ready!(self.feeder.want.poll_want(cx)).is_err() {
                return Poll::Ready(Fed::Dropped);
            }
            if std::mem::take(&mut self.expect_continue) {
                out.extend_from_slice(CONTINUE);
                self.continued = true;
            }
            match self.decode(buf) {
                Ok(Some(piece)) => {
                    let end = match &piece {
                        Piece::End => Some(Fed::Complete),
                        Piece::Failed(_) => Some(Fed::Broken),
                        Piece::Frame(_) => None,
                    };
                    // One piece an ask: the next waits for the body to want it.
                    self.feeder.want.give();
                    if self.feeder.tx.send(piece).is_err() {
                        // (The piece was read past: thrown away.)
                        return Poll::Ready(end.unwrap_or(Fed::Dropped));
                    }
                    if let Some(end) = end {
                        return Poll::Ready(end);
                    }
                    // The last of a length: the end goes with it, unasked.
                    if matches!(self.decode, Decode::Length(0)) {
                        let _ = self.feeder.tx.send(Piece::End);
                        return Poll::Ready(Fed::Complete);
                    }
                }
                Ok(None) => {
                    super::reserve(buf);
                    match ready!(tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf)) {
                        Ok(0) | Err(_) => {
                            let gone = BodyError::new("the client closed the connection mid-body");
                            let _ = self.feeder.tx.send(Piece::Failed(gone));
                            return Poll::Ready(Fed::Broken);
                        }
                        Ok(_) => {}
                    }
                }
                Err(e) => {
                    let _ = self.feeder.tx.send(Piece::Failed(e));
                    return Poll::Ready(Fed::Broken);
                }
            }
        }
    }

    /// Whether the handler let go of the body.
    pub fn dropped(&self) -> bool {
        self.feeder.tx.is_closed()
    }

    /// Reads past the rest of a dropped body, as nginx discards one: at
    /// most `DRAIN_MAX` bytes within `DRAIN_TIME` (the bounds of an
    /// abandoned upstream answer's drain). Whether it ended, so that the
    /// connection can carry another request. Not a body whose client waits
    /// for a `100 Continue` it never got: it may never send it.
    pub async fn read_past<I: AsyncRead + Unpin>(
        &mut self,
        io: &mut I,
        buf: &mut BytesMut,
    ) -> bool {
        if self.expected && !self.continued {
            return false;
        }
        let mut budget = DRAIN_MAX;
        let discard = poll_fn(|cx| self.poll_discard(cx, io, buf, &mut budget));
        matches!(tokio::time::timeout(DRAIN_TIME, discard).await, Ok(true))
    }

    /// Reads the rest of a dropped body and throws it away: `Ready(true)`
    /// at its end, `Ready(false)` if it fails, or if more than `budget`
    /// bytes of it would have to be read.
    fn poll_discard<I: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut I,
        buf: &mut BytesMut,
        budget: &mut u64,
    ) -> Poll<bool> {
        if let Decode::Length(left) = self.decode
            && left > *budget
        {
            return Poll::Ready(false);
        }
        loop {
            match self.decode(buf) {
                Ok(Some(Piece::End)) => return Poll::Ready(true),
                Ok(Some(Piece::Frame(frame))) => {
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    match budget.checked_sub(n) {
                        Some(rest) => *budget = rest,
                        None => return Poll::Ready(false),
                    }
                }
                Ok(Some(Piece::Failed(_))) | Err(_) => return Poll::Ready(false),
                Ok(None) => {
                    super::reserve(buf);
                    match ready!(tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf)) {
                        Ok(0) | Err(_) => return Poll::Ready(false),
                        Ok(_) => {}
                    }
                }
            }
        }
    }

    /// The next piece from what `buf` holds, if any.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Piece>, BodyError> {
        match &mut self.decode {
            Decode::Length(0) => Ok(Some(Piece::End)),
            Decode::Length(_) if buf.is_empty() => Ok(None),
            Decode::Length(left) => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                *left -= n as u64;
                Ok(Some(Piece::Frame(Frame::data(buf.split_to(n).freeze()))))
            }
            Decode::Chunked(chunked) => match chunked.decode(buf).map_err(BodyError::new)? {
                None => Ok(None),
                Some(Chunk::Data(data)) => Ok(Some(Piece::Frame(Frame::data(data)))),
                Some(Chunk::Trailers(map)) => Ok(Some(Piece::Frame(Frame::trailers(map)))),
                Some(Chunk::End) => Ok(Some(Piece::End)),
            },
        }
    }
}
