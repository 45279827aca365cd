//! The response body, read from the connection as the client's side asks
//! for it: a known length, chunks (`chunked::Chunked`) or everything until
//! the upstream closes. Each frame is a slice of the read buffer, not a
//! copy.

use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Frame;

use super::{H1Conn, Reading, io_error};
use crate::Error;
use crate::proxy::h1::chunked::Chunk;

impl H1Conn {
    /// The next frame of the response body; `None` at its end, after which
    /// the connection is reusable if the exchange allows it. A request
    /// still going out is sent on meanwhile; if that fails, the upstream
    /// stopped reading it, which its answer is about: the answer goes on,
    /// the connection will not.
    pub fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.send_some(cx).is_err() {
            self.sending = None;
            self.keep = false;
        }
        loop {
            let have = self.buf.len();
            match &mut self.body {
                Reading::Done | Reading::Upgraded => return Poll::Ready(None),
                Reading::Length(left) if have > 0 => {
                    let take = (*left).min(have as u64);
                    *left -= take;
                    if *left == 0 {
                        self.body = Reading::Done;
                    }
                    let data = self.buf.split_to(take as usize).freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Reading::Close if have > 0 => {
                    return Poll::Ready(Some(Ok(Frame::data(self.buf.split().freeze()))));
                }
                Reading::Chunked(c) => match c.decode(&mut self.buf) {
                    Ok(Some(Chunk::Data(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Some(Chunk::Trailers(t))) => {
                        return Poll::Ready(Some(Ok(Frame::trailers(t))));
                    }
                    Ok(Some(Chunk::End)) => {
                        self.body = Reading::Done;
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Poll::Ready(Some(Err(self.broken(Error::UpstreamInvalid(e)))));
                    }
                },
                Reading::Length(_) | Reading::Close => {}
            }
            match std::task::ready!(self.poll_read(cx)) {
                Ok(0) if matches!(self.body, Reading::Close) => {
                    self.body = Reading::Done;
                    self.keep = false;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    let e = Error::UpstreamClosed;
                    return Poll::Ready(Some(Err(self.broken(e))));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(self.broken(io_error(e))))),
            }
        }
    }

    /// Whether the response body has been read to its end.
    pub fn body_done(&self) -> bool {
        matches!(self.body, Reading::Done)
    }

    /// What is left of the response body, if its length is known.
    pub fn body_left(&self) -> Option<u64> {
        match self.body {
            Reading::Done => Some(0),
            Reading::Length(n) => Some(n),
            _ => None,
        }
    }

    fn broken(&mut self, e: Error) -> Error {
        self.keep = false;
        self.body = Reading::Done;
        self.sending = None;
        e
    }
}
