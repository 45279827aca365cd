//! `X-Request-Id`: the client's when it is sane (one header, 1-200 visible
//! ASCII characters), else a new random 128-bit id in hex. It is sent to
//! the upstream and returned on every answer the proxy gives, its own
//! errors included.
//!
//! Random rather than UUIDv7: `Uuid::now_v7` goes through a shared
//! context, while `rand::random` uses the thread's own generator, so no
//! lock is taken on the request path.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id passed through; a longer one is replaced.
pub const MAX_LEN: usize = 200;

/// The request's id: the client's if sane, else a fresh one.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    // A pass over the few names first: looking up a name the request does
    // not carry (the common case) hashes it a byte at a time.
    if !headers.keys().any(|n| *n == X_REQUEST_ID) {
        return generate();
    }
    let mut given = headers.get_all(&X_REQUEST_ID).iter();
    match (given.next(), given.next()) {
        (Some(v), None) if is_sane(v) => v.clone(),
        _ => generate(),
    }
}

fn is_sane(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(|c| matches!(c, 0x21..=0x7e))
}

/// 32 lower-case hex digits from the thread-local generator. The digits
/// are the value's owner: one allocation, where a copied slice took a
/// second at its first clone (the id goes upstream and back to the client).
pub fn generate() -> HeaderValue {
    let n: u128 = rand::random();
    let mut buf = [0u8; 32];
    hex::encode_to_slice(n.to_be_bytes(), &mut buf).expect("32 digits for 16 bytes");
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf))
        .expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&X_REQUEST_ID, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn is_generated(v: &HeaderValue) -> bool {
        v.len() == 32 && v.as_bytes().iter().all(|c| c.is_ascii_hexdigit())
    }

    #[test]
    fn a_sane_id_is_kept() {
        assert_eq!(of(&with(&[b"abc-123"])), "abc-123");
        let long = "x".repeat(MAX_LEN);
        assert_eq!(of(&with(&[long.as_bytes()])), long.as_str());
    }

    #[test]
    fn a_missing_or_odd_id_is_replaced() {
        assert!(is_generated(&of(&HeaderMap::new())));
        let too_long = "x".repeat(MAX_LEN + 1);
        for odd in [
            &b""[..],
            b"has space",
            b"tab\there",
            b"caf\xc3\xa9",
            too_long.as_bytes(),
        ] {
            let got = of(&with(&[odd]));
            assert!(is_generated(&got), "{odd:?} → {got:?}");
        }
        assert!(
            is_generated(&of(&with(&[b"a", b"b"]))),
            "two ids are ambiguous"
        );
    }

    #[test]
    fn generated_ids_differ() {
        let a = generate();
        let b = generate();
        assert!(is_generated(&a) && is_generated(&b));
        assert_ne!(a, b);
    }
}
