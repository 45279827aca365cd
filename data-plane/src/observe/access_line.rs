//! One access-log line as JSON, written by hand into the log's buffer.
//! serde_json's derive spent more than the rest of the line's work on the
//! request path (`bench/observability.sh --callgrind`: its string escaping
//! alone was ~4,500 instructions a line); here a string that needs no
//! escaping (nearly all: ids, methods, routes, addresses) is found so eight
//! bytes at a time and copied as is, integers go through itoa (serde_json's
//! own writer), durations are written as milliseconds with three decimals
//! from integer microseconds (ryu's shortest float cost ~400 instructions
//! each), and the time's date and seconds are formatted once a second per
//! thread.

use std::cell::Cell;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::access_log::Entry;
use crate::proxy::headers::IpText;

/// Appends `entry` and a newline to `out`.
pub fn encode(out: &mut Vec<u8>, entry: &Entry<'_>) {
    out.extend_from_slice(b"{\"time\":\"");
    time(out, entry.time);
    out.extend_from_slice(b"\",\"request_id\":");
    string(out, entry.request_id);
    out.extend_from_slice(b",\"trace_id\":\"");
    hex(out, entry.trace_id);
    out.extend_from_slice(b"\",\"client_ip\":\"");
    ip(out, entry.client_ip);
    out.extend_from_slice(b"\",\"method\":");
    string(out, entry.method);
    out.extend_from_slice(b",\"host\":");
    string(out, entry.host);
    out.extend_from_slice(b",\"path\":");
    string(out, entry.path);
    out.extend_from_slice(b",\"status\":");
    number(out, entry.status);
    for (name, value) in [
        (&b",\"route\":"[..], entry.route),
        (b",\"upstream\":", entry.upstream),
        (b",\"target\":", entry.target),
        (b",\"consumer\":", entry.consumer),
    ] {
        out.extend_from_slice(name);
        match value {
            Some(v) => string(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b",\"duration_ms\":");
    millis(out, entry.duration);
    out.extend_from_slice(b",\"upstream_ms\":");
    match entry.upstream_time {
        Some(t) => millis(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"bytes_in\":");
    number(out, entry.bytes_in);
    out.extend_from_slice(b",\"bytes_out\":");
    number(out, entry.bytes_out);
    out.extend_from_slice(b",\"config_version\":");
    number(out, entry.config_version);
    out.extend_from_slice(b"}\n");
}

/// A JSON string: copied when nothing in it needs escaping, else escaped
/// by serde_json.
fn string(out: &mut Vec<u8>, s: &str) {
    if plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// An integer, by itoa.
fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Whether `s` goes into a JSON string as is: no control character, no
/// `"` or backslash, and no DEL (serde_json escapes it; kept out so the lines
/// stay what serde would write). Eight bytes per step with the "has a
/// zero byte" and "has a byte less than n" word tricks (exact as a yes or
/// no for the whole word; bytes of 0x80 and above never match).
fn plain(s: &[u8]) -> bool {
    let mut words = s.chunks_exact(8);
    let mut hit = 0;
    for w in &mut words {
        hit |= needs_escape(u64::from_le_bytes(w.try_into().unwrap_or_default()));
    }
    // The tail, padded with a plain byte, is one more word.
    let rest = words.remainder();
    let mut last = [b'a'; 8];
    last[..rest.len()].copy_from_slice(rest);
    hit |= needs_escape(u64::from_le_bytes(last));
    hit == 0
}

/// Non-zero when a byte of `v` is below 0x20, `"`, a backslash or 0x7f.
fn needs_escape(v: u64) -> u64 {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    (v.wrapping_sub(ONES * 0x20) & !v & HIGH)
        | zero(v ^ (ONES * u64::from(b'"')))
        | zero(v ^ (ONES * u64::from(b'\\')))
        | zero(v ^ (ONES * 0x7f))
}

/// Milliseconds with three decimals (`12.345`): microsecond resolution.
fn millis(out: &mut Vec<u8>, d: Duration) {
    let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
    number(out, us / 1000);
    let frac = (us % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

fn hex(out: &mut Vec<u8>, n: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (pair, b) in text.chunks_exact_mut(2).zip(n.to_be_bytes()) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    out.extend_from_slice(&text);
}

fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    out.extend_from_slice(IpText::default().of(ip).as_bytes());
}

thread_local! {
    /// The last second formatted on this thread, and its text.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// RFC 3339, UTC, milliseconds: `2026-12-01T06:40:02.123Z`.
fn time(out: &mut Vec<u8>, t: SystemTime) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let text = SECOND.with(|c| {
        let (cached, text) = c.get();
        if cached == secs {
            return text;
        }
        let mut text = [0u8; 19];
        let formatted = chrono::DateTime::from_timestamp(secs as i64, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        text.copy_from_slice(&formatted.as_bytes()[..19]);
        c.set((secs, text));
        text
    });
    out.extend_from_slice(&text);
    let ms = since.subsec_millis();
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(strings: &'a str) -> Entry<'a> {
        Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_764_571_202_007),
            request_id: strings,
            trace_id: 0x0af7651916cd43dd8448eb211c80319c,
            client_ip: "10.0.255.7".parse().unwrap(),
            method: "GET",
            host: strings,
            path: "/a/b",
            status: 502,
            route: Some(strings),
            upstream: None,
            target: Some("127.0.0.1:8080"),
            consumer: None,
            duration: Duration::from_micros(1250),
            upstream_time: None,
            bytes_in: 0,
            bytes_out: 1234,
            config_version: 42,
        }
    }

    #[test]
    fn lines_are_the_json_serde_would_write() {
        for s in [
            "plain",
            "quote \" and back\\slash",
            "ctl\u{1}\n\t",
            "ünï\u{7f}code",
            "",
        ] {
            let mut line = Vec::new();
            encode(&mut line, &entry(s));
            assert_eq!(line.pop(), Some(b'\n'));
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(v["request_id"], s);
            assert_eq!(v["host"], s);
            assert_eq!(v["route"], s);
            assert_eq!(v["time"], "2025-12-01T06:40:02.007Z");
            assert_eq!(v["trace_id"], "0af7651916cd43dd8448eb211c80319c");
            assert_eq!(v["client_ip"], "10.0.255.7");
            assert_eq!(v["status"], 502);
            assert_eq!(v["upstream"], serde_json::Value::Null);
            assert_eq!(v["duration_ms"], 1.25);
            assert_eq!(v["bytes_out"], 1234);
            assert_eq!(v["config_version"], 42);
            assert_eq!(v.as_object().unwrap().len(), 17);
        }
        let mut e = entry("x");
        e.upstream_time = Some(Duration::from_nanos(3_000_999));
        e.duration = Duration::from_secs(61);
        let mut line = Vec::new();
        encode(&mut line, &e);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["upstream_ms"], 3.0);
        assert_eq!(v["duration_ms"], 61000.0);
        let text = String::from_utf8(line).unwrap();
        assert!(text.contains(r#""duration_ms":61000.000,"upstream_ms":3.000,"#));
        e.client_ip = "2001:db8::1".parse().unwrap();
        let mut line = Vec::new();
        encode(&mut line, &e);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["client_ip"], "2001:db8::1");
    }

    fn naive(s: &[u8]) -> bool {
        s.iter()
            .all(|&b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f)
    }

    #[test]
    fn every_byte_value_at_every_position_of_a_word() {
        for b in 0..=255u8 {
            for at in 0..17 {
                let mut bytes = vec![b'a'; 17];
                bytes[at] = b;
                assert_eq!(plain(&bytes), naive(&bytes), "byte {b:#x} at {at}");
            }
        }
    }

    proptest::proptest! {
        /// The word-at-a-time check agrees with the byte-at-a-time one,
        /// wherever the special byte sits among plain and non-ASCII ones.
        #[test]
        fn plain_agrees_with_a_byte_check(
            mut bytes in proptest::collection::vec(0x20u8..=0xff, 0..40),
            special in proptest::sample::select(vec![0u8, 0x1f, b'"', b'\\', 0x7f, b'a', 0x80, 0xff]),
            at in 0usize..40,
        ) {
            let at = at.min(bytes.len());
            bytes.insert(at, special);
            proptest::prop_assert_eq!(plain(&bytes), naive(&bytes));
            proptest::prop_assert_eq!(plain(&bytes[at..]), naive(&bytes[at..]));
        }
    }
}
