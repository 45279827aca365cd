//! Abandoned exchanges: a client that goes away (a closed connection, a
//! load tool stopping mid-run) drops its request's future or its response
//! body, and the upstream connection with it, which the next request then
//! pays for with a new connection (and the upstream with a closed one). A
//! connection whose request went out whole is finished instead, in a task
//! of its own (`lease::Lease::drain`), when that is cheap: its answer read
//! and thrown away within [`DRAIN_TIME`] and [`DRAIN_MAX`] bytes, after
//! which it goes back to the pool. Anything longer or broken is closed, as
//! before.

use std::task::{Context, Poll};
use std::time::Duration;

use super::{H1Conn, Reading};

/// The most an abandoned answer waits for: a slow upstream's connection is
/// not worth a task held open. (The client side reads past a request body
/// its handler dropped with the same bounds: `listener::h1`.)
pub const DRAIN_TIME: Duration = Duration::from_secs(1);
/// The most of an abandoned body read to keep its connection.
pub const DRAIN_MAX: u64 = 64 * 1024;

impl H1Conn {
    /// Whether the exchange can be finished without the client: the
    /// request is all out, the connection is not broken, and what is left
    /// to read is a head or a body of a known bound.
    pub fn drainable(&self) -> bool {
        if self.sending.is_some() {
            return false;
        }
        if self.awaiting.is_some() {
            return true;
        }
        self.keep
            && match self.body {
                Reading::Length(n) => n <= DRAIN_MAX,
                Reading::Chunked(_) => true,
                Reading::Done | Reading::Close | Reading::Upgraded => false,
            }
    }

    /// Reads what is left of the exchange (the head, if it is awaited, then
    /// the body); `Ready(true)` once it ended cleanly, `Ready(false)` when
    /// it broke or ran past `budget` bytes of body.
    pub fn poll_drain(&mut self, cx: &mut Context<'_>, budget: &mut u64) -> Poll<bool> {
        if let Some(head_request) = self.awaiting {
            match self.poll_exchange(cx, (head_request, false), None) {
                Poll::Ready(Ok(super::Exchanged::Head(..))) => {}
                Poll::Ready(_) => return Poll::Ready(false),
                Poll::Pending => return Poll::Pending,
            }
            if !self.drainable() {
                return Poll::Ready(self.reusable());
            }
        }
        loop {
            match self.poll_body(cx) {
                Poll::Ready(None) => return Poll::Ready(self.reusable()),
                Poll::Ready(Some(Ok(frame))) => {
                    let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                    match budget.checked_sub(len) {
                        Some(left) => *budget = left,
                        None => return Poll::Ready(false),
                    }
                }
                Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
