//! One access-log line as JSON, written by hand into the line's buffer.
//! serde_json's derive spent more than the rest of the line's work on the
//! request path (`bench/observability.sh --callgrind`: its string escaping
//! alone was ~4,500 instructions a line); here a string that needs no
//! escaping (nearly all: ids, methods, routes, addresses) is copied as is,
//! numbers go through itoa and ryu (serde_json's own writers), and
//! the time's date and seconds are formatted once a second per thread.

use std::cell::Cell;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

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
    float(out, entry.duration_ms);
    out.extend_from_slice(b",\"upstream_ms\":");
    match entry.upstream_ms {
        Some(ms) => float(out, ms),
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
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f)
    {
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

/// A float in its shortest form, by ryu, as serde_json writes it (a
/// non-finite one, which a duration never is, as null).
fn float(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn hex(out: &mut Vec<u8>, n: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for i in (0..32).rev() {
        out.push(DIGITS[((n >> (i * 4)) & 0xf) as usize]);
    }
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
            time: UNIX_EPOCH + std::time::Duration::from_millis(1_764_571_202_007),
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
            duration_ms: 1.25,
            upstream_ms: None,
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
        e.client_ip = "2001:db8::1".parse().unwrap();
        let mut line = Vec::new();
        encode(&mut line, &e);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["client_ip"], "2001:db8::1");
    }
}
