//! What a failed connect or HTTP/2 exchange means for the client: 504 for
//! a timeout, the client's own body errors as they are, 502 otherwise.
//! (HTTP/1 exchanges say so themselves: `h1::conn`.)

use std::error::Error as _;

use crate::Error;

/// What the client gets for a connection that could not be made: 504 for
/// a connect timeout, 502 otherwise.
pub(super) fn connect_error(e: Box<dyn std::error::Error + Send + Sync>) -> Error {
    // hyper-util's connector reports its connect timeout only in words.
    if chain_timed_out(&*e, true) {
        Error::UpstreamConnectTimeout
    } else {
        Error::UpstreamConnect(e)
    }
}

pub(super) fn handshake_error(e: hyper::Error) -> Error {
    connect_error(Box::new(e))
}

/// A failed exchange: the client's body at fault (too large, stalled,
/// malformed: the error `body::ClientBody` raised, found in hyper's), a
/// write the target stopped taking for `write_ms` (504), or the upstream
/// connection failing (502).
pub(super) fn request_error(e: hyper::Error) -> Error {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<Error>() {
            return match found {
                Error::BodyTooLarge(max) => Error::BodyTooLarge(*max),
                Error::BodyTimeout(t) => Error::BodyTimeout(*t),
                _ => Error::ClientBody(crate::listener::BodyError::new(e)),
            };
        }
        source = s.source();
    }
    if chain_timed_out(&e, false) {
        Error::UpstreamTimeout
    } else {
        Error::UpstreamProtocol(e)
    }
}

fn chain_timed_out(e: &(dyn std::error::Error + 'static), by_message: bool) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || (by_message && s.to_string().contains("timed out"))
        {
            return true;
        }
        source = s.source();
    }
    false
}
