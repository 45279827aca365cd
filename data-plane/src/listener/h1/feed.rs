//! Feeds a request body that did not arrive with its head: run by the
//! connection's task beside the handler, it reads the socket only when the
//! body asks for more (`want`), decodes what came (a length, or chunks with
//! `proxy::h1::chunked`, the decoder of upstream bodies) and sends it on.
//! The first ask of a request that expects `100 Continue` writes it first.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use hyper::body::Frame;
use tokio::io::AsyncRead;

use crate::listener::body::{BodyError, Feeder, Piece};
use crate::proxy::h1::chunked::{Chunk, Chunked};

/// What a feed ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// The whole body was read: the connection can carry another request.
    Complete,
    /// The body failed (bad framing, the client left) or was dropped
    /// unread: the connection closes after the answer.
    Broken,
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
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Feed {
    pub fn new(feeder: Feeder, decode: Decode, expect_continue: bool) -> Feed {
        Feed {
            feeder,
            decode,
            expect_continue,
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
                return Poll::Ready(Fed::Broken);
            }
            if std::mem::take(&mut self.expect_continue) {
                out.extend_from_slice(CONTINUE);
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
                        return Poll::Ready(Fed::Broken);
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
