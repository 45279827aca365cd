//! The `jwt` policy's signature checks against the published examples of
//! RFC 7515 (JWS) and RFC 7520 (JOSE cookbook).

use super::*;

/// RFC 7515 Appendix A.1 (HS256), A.2 (RS256) and A.3 (ES256): the
/// published tokens and keys. They expire in 2011 (`exp` 1300819380), so
/// they are checked with the policy's clock set before that, then with the
/// real clock (expired).
#[test]
fn rfc7515_appendix_a_examples_verify() {
    crypto::install();
    fn before_2011() -> u64 {
        1_300_819_000
    }
    const PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    let a1 = format!(
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.{PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    );
    let a1_key = jwk(json!({"kty": "oct",
        "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}));
    let a2 = format!(
        "eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
    );
    let a2_key = jwk(json!({"kty": "RSA", "e": "AQAB",
        "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}));
    let a3 = format!(
        "eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    );
    let a3_key = jwk(json!({"kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}));
    let policy = at(Jwt::with_jwks(all_algorithms_no_nbf(), None), before_2011);
    let today = Jwt::with_jwks(all_algorithms_no_nbf(), None);
    for (t, key, alg) in [
        (&a1, &a1_key, Algorithm::HS256),
        (&a2, &a2_key, Algorithm::RS256),
        (&a3, &a3_key, Algorithm::ES256),
    ] {
        let header = jsonwebtoken::decode_header(t).unwrap();
        assert_eq!(
            policy.checks.verify(t, &header, alg, key),
            Ok(()),
            "{alg:?}"
        );
        assert_eq!(
            today.checks.verify(t, &header, alg, key),
            Err("token expired"),
            "{alg:?}"
        );
        // One bit off in the signature's last byte.
        let mut sig = URL_SAFE_NO_PAD
            .decode(t.rsplit_once('.').unwrap().1)
            .unwrap();
        *sig.last_mut().unwrap() ^= 1;
        let bad = format!("{}.{}", t.rsplit_once('.').unwrap().0, b64(sig));
        assert_eq!(
            policy.checks.verify(&bad, &header, alg, key),
            Err("invalid signature"),
            "{alg:?}"
        );
    }
}

fn jwk(v: Value) -> DecodingKey {
    DecodingKey::from_jwk(&serde_json::from_value(v).unwrap()).unwrap()
}

/// RFC 7520 §4.1 (RS256), §4.2 (PS384) and §4.4 (HS256): JWS with a text
/// payload (not a JWT), so only the signature path: jsonwebtoken's
/// `crypto::verify` on the ring provider. (§4.3 is ES512, which ring does
/// not have.)
#[test]
fn rfc7520_section_4_signatures_verify() {
    crypto::install();
    const PAYLOAD: &str = "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";
    let rsa = jwk(json!({"kty": "RSA", "e": "AQAB",
        "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"}));
    let hmac = jwk(json!({"kty": "oct", "k": "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}));
    let cases = [
        (
            "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
            "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg",
            &rsa,
            Algorithm::RS256,
        ),
        (
            "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
            "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw",
            &rsa,
            Algorithm::PS384,
        ),
        (
            "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9",
            "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0",
            &hmac,
            Algorithm::HS256,
        ),
    ];
    for (header, sig, key, alg) in cases {
        let message = format!("{header}.{PAYLOAD}");
        let verify = |m: &str| jsonwebtoken::crypto::verify(sig, m.as_bytes(), key, alg).unwrap();
        assert!(verify(&message), "{alg:?}");
        assert!(!verify(&format!("{message}x")), "{alg:?} tampered");
        // The RS256 key cannot verify as HS256 (family bound by the key).
        assert!(
            jsonwebtoken::crypto::verify(sig, message.as_bytes(), &rsa, Algorithm::HS256).is_err()
        );
    }
}
