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
