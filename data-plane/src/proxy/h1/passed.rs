//! An upstream answer's fields passed on to an HTTP/1 client as the bytes
//! they came in, not as a map. Asked for by the proxy when nothing on the
//! request's way back reads or changes them (a client on HTTP/1, a route
//! with no response policy and no request policy that adds answer fields,
//! not an upgrade): `decode` then notes which lines of the head go on,
//! in runs of adjacent lines, and the client's writer copies the runs
//! (`listener::h1::respond`). A map cost a value check, a hash and an
//! insert per field, and writing the fields out again a copy per name and
//! value: 1,600 instructions of a 25,700-instruction request (callgrind).
//!
//! Left out, as the map leaves them out: the hop-by-hop fields (the ones
//! `headers::is_hop_by_hop` lists and what `Connection` names), and the
//! upstream's `X-Request-Id`, which the proxy's replaces. A head this
//! cannot represent (a line not ended by CRLF, which would go out to the
//! client as it came; more runs than [`RUNS`]) is made into a map instead.

use bytes::Bytes;
use http::HeaderValue;
use http::header::HeaderName;

use crate::proxy::headers::is_hop_by_hop;
use crate::proxy::request_id::X_REQUEST_ID;

/// The most runs of passed lines: a head with more fields left out
/// between kept ones is made into a map.
const RUNS: usize = 4;

/// The lines of a head that go on to the client.
#[derive(Debug, Clone)]
pub struct Passed {
    /// The whole head, status line included (the runs are offsets in it).
    block: Bytes,
    runs: [(u32, u32); RUNS],
    n: u8,
    /// Whether a `Date` is among them (the writer adds one otherwise).
    pub date: bool,
    /// Their `Content-Length`, as the decoder checked it.
    pub length: Option<u64>,
    /// The proxy's `X-Request-Id`, written after them: set here rather
    /// than in the answer's map, which would otherwise be made (two
    /// allocations) for this one field.
    pub request_id: Option<HeaderValue>,
}

impl Passed {
    /// The lines of `fields` (parsed from `block`, named by `names`) that
    /// go on, or `None` if they cannot be passed as bytes. `named`: whether
    /// the head's `Connection` names a field (by its name as sent);
    /// `length`: the checked `Content-Length`, if the head had one.
    pub(super) fn of(
        block: &Bytes,
        fields: &[httparse::Header<'_>],
        names: &[HeaderName],
        named: impl Fn(&str) -> bool,
        length: Option<u64>,
    ) -> Option<Box<Passed>> {
        // The fields end where the head's empty line starts.
        let end = block
            .len()
            .checked_sub(2)
            .filter(|_| block.ends_with(b"\r\n\r\n"))?;
        let base = block.as_ptr() as usize;
        let starts = fields.iter().map(|h| h.name.as_ptr() as usize - base);
        let ends = starts.clone().skip(1).chain([end]);
        let mut passed = Passed {
            block: block.clone(),
            runs: [(0, 0); RUNS],
            n: 0,
            date: false,
            length,
            request_id: None,
        };
        let mut open: Option<u32> = None;
        for (((h, name), start), line_end) in fields.iter().zip(names).zip(starts).zip(ends) {
            let goes = is_hop_by_hop(name) || *name == X_REQUEST_ID || named(h.name);
            if goes {
                if let Some(from) = open.take() {
                    passed.push(from, start as u32)?;
                }
                continue;
            }
            // A bare LF would reach the client as it came.
            if block.get(line_end - 2..line_end) != Some(b"\r\n") {
                return None;
            }
            passed.date |= *name == http::header::DATE;
            open.get_or_insert(start as u32);
        }
        if let Some(from) = open {
            passed.push(from, end as u32)?;
        }
        // Boxed: it rides in the response body, which is moved a few times
        // on its way out; inline, its 90 bytes were copied with every move
        // (~400 instructions a request in memcpy, against one allocation).
        Some(Box::new(passed))
    }

    fn push(&mut self, from: u32, to: u32) -> Option<()> {
        let slot = self.runs.get_mut(usize::from(self.n))?;
        *slot = (from, to);
        self.n += 1;
        Some(())
    }

    /// Writes the passed lines, each ended by its CRLF, and the request id.
    pub fn write(&self, out: &mut Vec<u8>) {
        for &(from, to) in &self.runs[..usize::from(self.n)] {
            out.extend_from_slice(&self.block[from as usize..to as usize]);
        }
        if let Some(id) = &self.request_id {
            out.extend_from_slice(b"x-request-id: ");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
#[path = "passed_tests.rs"]
mod tests;
