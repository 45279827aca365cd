//! Path normalisation, done once per request before routing, so the router,
//! the policies and the upstream all see the same path.
//!
//! The rule (docs/proxy.md, "Path normalisation"):
//! 1. the path must start with `/` (origin form);
//! 2. every byte is visible ASCII and not `\` or `#`; anything else → 400;
//! 3. percent-encodings must be `%` and two hex digits; encoded unreserved
//!    characters (`A-Z a-z 0-9 - . _ ~`) are decoded, the others kept
//!    encoded with upper-case hex (RFC 3986 §6.2.2). Decoding happens once:
//!    `%252e` stays `%252e`;
//! 4. encoded slashes (`%2F`, `%5C`) and encoded control characters
//!    (`%00`-`%1F`, `%7F`, so `%0d%0a` too) → 400: upstreams disagree on
//!    whether `%2F` separates segments, so no answer is safe to forward;
//! 5. empty segments are merged (`//a` → `/a`): many upstreams merge them,
//!    and a route on `/a` must not be bypassed by `//a`;
//! 6. dot segments are removed (RFC 3986 §5.2.4, after step 3, so `%2e%2e`
//!    counts): `/a/../b` → `/b`, never above the root; a dot segment with
//!    parameters (`..;x`, `.;`) → 400, since some servers (Tomcat) treat it
//!    as a dot segment and we would not.
//!
//! The common path needs none of this and is returned borrowed.

use std::borrow::Cow;

use crate::Error;

/// The normalised form of `path` (no query), or why it is refused.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, Error> {
    if !path.starts_with('/') {
        return Err(Error::InvalidPath("it does not start with '/'"));
    }
    if is_normal(path)? {
        return Ok(Cow::Borrowed(path));
    }
    rebuild(path).map(Cow::Owned)
}

/// Checks the bytes; true when the path is already normal: every escape
/// is one that stays (upper-case hex, not unreserved), no empty segment but
/// a trailing one, no dot segment.
fn is_normal(path: &str) -> Result<bool, Error> {
    let bytes = path.as_bytes();
    let mut normal = true;
    for (i, &b) in bytes.iter().enumerate() {
        check_byte(b)?;
        if b == b'%' {
            normal &= stays_encoded(bytes.get(i + 1..i + 3));
        }
    }
    let mut segments = path[1..].split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || seg.starts_with('.') && is_dot_like(seg) {
            normal = false;
        }
    }
    Ok(normal)
}

fn check_byte(b: u8) -> Result<(), Error> {
    match b {
        b'\\' => Err(Error::InvalidPath("it contains a backslash")),
        b'#' => Err(Error::InvalidPath("it contains '#'")),
        0x21..=0x7e => Ok(()),
        _ => Err(Error::InvalidPath(
            "it contains a control, space or non-ASCII byte",
        )),
    }
}

/// The two digits after a `%` are upper-case hex of a byte that is kept
/// encoded as it is (anything else goes the slow way, which decodes,
/// upper-cases or refuses it).
fn stays_encoded(digits: Option<&[u8]>) -> bool {
    let Some(&[hi, lo]) = digits else {
        return false;
    };
    let upper = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
    if !upper(hi) || !upper(lo) {
        return false;
    }
    let (Some(hi), Some(lo)) = (hex(hi), hex(lo)) else {
        return false;
    };
    let c = hi << 4 | lo;
    !(is_unreserved(c) || matches!(c, b'/' | b'\\' | 0x00..=0x1f | 0x7f))
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// `.`, `..`, or either followed by `;parameters`.
fn is_dot_like(seg: &str) -> bool {
    let base = seg.split(';').next().unwrap_or(seg);
    base == "." || base == ".."
}

/// The slow path: decode, merge, resolve dot segments.
fn rebuild(path: &str) -> Result<String, Error> {
    let mut out: Vec<String> = Vec::new();
    let mut raw = path[1..].split('/').peekable();
    // Whether the result ends with '/': a trailing empty segment, or a
    // last segment that resolved away (`/a/..` → `/`, `/a/.` → `/a/`).
    let mut trailing = false;
    while let Some(seg) = raw.next() {
        let last = raw.peek().is_none();
        let seg = decode_segment(seg)?;
        trailing = last;
        match seg.as_str() {
            "" => {}
            "." => {}
            ".." => {
                out.pop();
            }
            s if is_dot_like(s) => {
                return Err(Error::InvalidPath("a dot segment carries parameters (..;)"));
            }
            _ => {
                out.push(seg);
                trailing = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len());
    for seg in &out {
        result.push('/');
        result.push_str(seg);
    }
    if trailing || out.is_empty() {
        result.push('/');
    }
    Ok(result)
}

/// Decodes the unreserved characters of one segment and upper-cases the
/// hex of what stays encoded.
fn decode_segment(seg: &str) -> Result<String, Error> {
    let bytes = seg.as_bytes();
    let mut out = String::with_capacity(seg.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).and_then(|&c| hex(c)),
            bytes.get(i + 2).and_then(|&c| hex(c)),
        ) else {
            return Err(Error::InvalidPath(
                "a '%' is not followed by two hex digits",
            ));
        };
        let decoded = hi << 4 | lo;
        match decoded {
            b'/' | b'\\' => {
                return Err(Error::InvalidPath("it contains an encoded slash"));
            }
            0x00..=0x1f | 0x7f => {
                return Err(Error::InvalidPath(
                    "it contains an encoded control character",
                ));
            }
            c if is_unreserved(c) => {
                out.push(char::from(c));
            }
            c => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(c >> 4)]));
                out.push(char::from(HEX[usize::from(c & 0xf)]));
            }
        }
        i += 3;
    }
    Ok(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
