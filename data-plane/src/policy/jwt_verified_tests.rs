//! The verified-token cache: a token verified once is accepted again, only
//! that exact token, and only while its time claims hold.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// A clock only this test moves.
static CLOCK: AtomicU64 = AtomicU64::new(NOW);

fn moving() -> u64 {
    CLOCK.load(Ordering::SeqCst)
}

#[test]
fn a_verified_token_is_kept_exactly_and_until_it_expires() {
    let (consumers, k) = world();
    let policy = at(Jwt::with_jwks(all_algorithms(), None), moving);
    let c = json!({"iss": "rs-issuer", "exp": NOW + 600, "nbf": NOW - 10});
    let t = token(hdr("RS256"), c, &k.rsa, Algorithm::RS256);
    assert_eq!(check(&policy, &consumers, &t).as_deref(), Ok("bob"));
    assert_eq!(policy.verified.len(), 1);
    assert_eq!(check(&policy, &consumers, &t).as_deref(), Ok("bob"));

    // Any other text is verified afresh: a changed signature byte, or the
    // same token with a changed claim, is refused and not kept.
    let (head, sig) = t.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    let bad = format!("{head}.{flipped}{}", &sig[1..]);
    assert_eq!(
        check(&policy, &consumers, &bad),
        Err("invalid signature".to_owned())
    );
    let (_, payload, _) = {
        let mut p = t.split('.');
        (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
    };
    let forged = t.replace(
        payload,
        &b64(json!({"iss": "rs-issuer", "exp": NOW + 9_999_999}).to_string()),
    );
    assert_eq!(
        check(&policy, &consumers, &forged),
        Err("invalid signature".to_owned())
    );
    assert_eq!(policy.verified.len(), 1);

    // Within the leeway (60 s) it still passes; past it, the full path
    // refuses it with its own reason.
    CLOCK.store(NOW + 600 + 30, Ordering::SeqCst);
    assert_eq!(check(&policy, &consumers, &t).as_deref(), Ok("bob"));
    CLOCK.store(NOW + 600 + 60, Ordering::SeqCst);
    assert_eq!(
        check(&policy, &consumers, &t),
        Err("token expired".to_owned())
    );
}

#[test]
fn the_cache_is_bounded() {
    let (consumers, k) = world();
    let policy = at(Jwt::with_jwks(all_algorithms(), None), now);
    for i in 0..verified::MAX + 5 {
        let c = json!({"iss": "hs-issuer", "exp": NOW + 600, "nbf": NOW, "jti": i});
        let t = token(hdr("HS256"), c, &k.hs, Algorithm::HS256);
        assert_eq!(check(&policy, &consumers, &t).as_deref(), Ok("alice"));
    }
    assert!(policy.verified.len() <= verified::MAX);
}

/// The request headers after the policy ran on a request carrying `token`
/// and a forged `x-user`.
fn headers_after(policy: &Jwt, consumers: &CompiledConsumers, token: &str) -> HeaderMap {
    let (mut parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    let bearer = format!("Bearer {token}");
    parts
        .headers
        .insert(AUTHORIZATION, HeaderValue::from_str(&bearer).unwrap());
    parts
        .headers
        .insert("x-user", HeaderValue::from_static("forged"));
    let mut ctx = RequestCtx {
        parts: &mut parts,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route: "r",
        consumers,
        consumer: None,
        response_headers: HeaderMap::new(),
        body_limit: None,
    };
    let _ = policy.on_request(&mut ctx);
    parts.headers
}

#[test]
fn claims_go_up_as_headers_from_a_verified_or_remembered_token() {
    let (consumers, k) = world();
    let mut config = all_algorithms();
    config.claims_to_headers = std::collections::BTreeMap::from([
        ("sub".to_owned(), "x-user".to_owned()),
        ("tier".to_owned(), "x-tier".to_owned()),
    ]);
    let policy = at(Jwt::with_jwks(config, None), now);
    let c = json!({"iss": "rs-issuer", "sub": "ann", "tier": 2, "exp": NOW + 600, "nbf": NOW});
    let t = token(hdr("RS256"), c, &k.rsa, Algorithm::RS256);
    for _ in 0..2 {
        // The second time from the verified-token cache.
        let h = headers_after(&policy, &consumers, &t);
        assert_eq!(h["x-user"], "ann");
        assert_eq!(h["x-tier"], "2");
    }
    assert_eq!(policy.verified.len(), 1);
    // A token without the claim: the forged header is gone, nothing replaces it.
    let c = json!({"iss": "rs-issuer", "exp": NOW + 600, "nbf": NOW});
    let t = token(hdr("RS256"), c, &k.rsa, Algorithm::RS256);
    assert!(!headers_after(&policy, &consumers, &t).contains_key("x-user"));
    // No token at all: still stripped.
    assert!(!headers_after(&policy, &consumers, "").contains_key("x-user"));
}
