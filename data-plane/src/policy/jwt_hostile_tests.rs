//! The `jwt` policy against hostile or broken tokens: every one a 401 with
//! `error="invalid_token"` and a message that does not echo the token.

use super::*;

/// At least 30 hostile or broken tokens; each must be 401 with
/// `error="invalid_token"`, and the message must not echo the token.
#[test]
fn hostile_tokens_are_all_refused() {
    let (consumers, k) = world();
    let policy = at(Jwt::with_jwks(all_algorithms(), None), now);
    let hs = |h: Value, c: Value| token(h, c, &k.hs, Algorithm::HS256);
    let good = hs(hdr("HS256"), claims("hs-issuer"));
    assert_eq!(check(&policy, &consumers, &good).as_deref(), Ok("alice"));
    let [h, p, s]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let attacker_secret = EncodingKey::from_secret(b"attacker-secret-attacker-secret!!").unwrap();
    let (attacker_ec, _) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    let rsa_pem_as_secret = EncodingKey::from_secret(RSA_PUBLIC.as_bytes()).unwrap();
    let mut cases: Vec<(&str, String)> = Vec::new();

    // alg none, in every spelling, signed or not.
    for none in ["none", "None", "NONE", "nOnE"] {
        let header = b64(json!({"alg": none, "typ": "JWT"}).to_string());
        cases.push(("alg none, no signature", format!("{header}.{p}.")));
        cases.push(("alg none, with a signature", format!("{header}.{p}.{s}")));
    }
    // RS256 → HS256 confusion: the RSA public key PEM as the HMAC secret.
    let confused = token(
        hdr("HS256"),
        claims("rs-issuer"),
        &rsa_pem_as_secret,
        Algorithm::HS256,
    );
    cases.push(("HS256 signed with the RSA public key", confused));
    let confused_kid = token(
        json!({"alg": "HS256", "kid": "rs-issuer"}),
        json!({"exp": NOW + 60}),
        &rsa_pem_as_secret,
        Algorithm::HS256,
    );
    cases.push(("HS256 with the RSA PEM, found by kid", confused_kid));
    // Headers pointing at attacker keys are ignored.
    let attacker_jwk = json!({"kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    let with_jwk = json!({"alg": "ES256", "jwk": attacker_jwk});
    cases.push((
        "jwk header with an attacker key",
        token(
            with_jwk,
            claims("es-issuer"),
            &attacker_ec,
            Algorithm::ES256,
        ),
    ));
    let jku = json!({"alg": "HS256", "jku": "https://attacker.example/jwks.json"});
    cases.push((
        "jku header",
        token(jku, claims("hs-issuer"), &attacker_secret, Algorithm::HS256),
    ));
    let x5u = json!({"alg": "ES256", "x5u": "https://attacker.example/cert.pem"});
    cases.push((
        "x5u header",
        token(x5u, claims("es-issuer"), &attacker_ec, Algorithm::ES256),
    ));
    let cert = rcgen::generate_simple_self_signed(vec!["attacker.example".into()]).unwrap();
    let x5c = json!({"alg": "ES256", "x5c": [STANDARD.encode(cert.cert.der())]});
    let signer = EncodingKey::from_ec_der(&cert.signing_key.serialize_der());
    cases.push((
        "x5c header with the attacker's certificate",
        token(x5c, claims("es-issuer"), &signer, Algorithm::ES256),
    ));
    // Time claims.
    let mut c = claims("hs-issuer");
    c["exp"] = json!(NOW - 61);
    cases.push(("expired past the leeway", hs(hdr("HS256"), c)));
    let mut c = claims("hs-issuer");
    c["nbf"] = json!(NOW + 120);
    cases.push(("nbf in the future", hs(hdr("HS256"), c)));
    let mut c = claims("hs-issuer");
    c.as_object_mut().unwrap().remove("exp");
    cases.push(("exp missing", hs(hdr("HS256"), c)));
    for (name, v) in [
        ("exp as a string", json!((NOW + 600).to_string())),
        ("exp null", Value::Null),
        ("exp true", json!(true)),
        ("exp negative", json!(-1)),
        ("exp an array", json!([NOW + 600])),
    ] {
        let mut c = claims("hs-issuer");
        c["exp"] = v;
        cases.push((name, hs(hdr("HS256"), c)));
    }
    let mut c = claims("hs-issuer");
    c["nbf"] = json!((NOW - 10).to_string());
    cases.push(("nbf as a string", hs(hdr("HS256"), c)));
    let mut c = claims("hs-issuer");
    c["iat"] = json!("yesterday");
    cases.push(("iat as a string", hs(hdr("HS256"), c)));
    let mut c = claims("hs-issuer");
    c["iss"] = json!(["hs-issuer"]);
    cases.push(("iss as an array", hs(hdr("HS256"), c)));
    // Signatures.
    cases.push((
        "truncated signature",
        format!("{h}.{p}.{}", &s[..s.len() - 4]),
    ));
    cases.push(("padded signature", format!("{h}.{p}.{s}=")));
    let raw_sig = URL_SAFE_NO_PAD.decode(s).unwrap();
    cases.push((
        "signature with padding",
        format!("{h}.{p}.{}", URL_SAFE.encode(&raw_sig)),
    ));
    let std_token = std_alphabet_token(&k.hs);
    cases.push(("signature in the standard alphabet", std_token));
    cases.push(("empty signature", format!("{h}.{p}.")));
    cases.push(("signature by another secret", {
        token(
            hdr("HS256"),
            claims("hs-issuer"),
            &attacker_secret,
            Algorithm::HS256,
        )
    }));
    cases.push(("ES256 by another key", {
        token(
            hdr("ES256"),
            claims("es-issuer"),
            &attacker_ec,
            Algorithm::ES256,
        )
    }));
    let valid_es = token(
        hdr("ES256"),
        claims("es-issuer"),
        &k.es256,
        Algorithm::ES256,
    );
    let es_parts: Vec<&str> = valid_es.split('.').collect();
    let zeros = b64([0u8; 64]);
    cases.push((
        "ES256 with r = s = 0",
        format!("{}.{}.{zeros}", es_parts[0], es_parts[1]),
    ));
    cases.push(("ES256 with a DER signature", der_signature(&valid_es)));
    cases.push(("payload changed after signing", {
        format!("{h}.{}.{s}", b64(claims("hs-issuer").to_string() + " "))
    }));
    // Structure.
    cases.push(("two segments", format!("{h}.{p}")));
    cases.push(("four segments", format!("{h}.{p}.{s}.{s}")));
    cases.push(("one segment", h.to_owned()));
    cases.push(("empty header", format!(".{p}.{s}")));
    cases.push(("garbage base64", format!("{h}.{p}.@@@@")));
    cases.push(("whitespace inside", format!("{h}. {p}.{s}")));
    let not_json = b64("not json");
    cases.push(("header not JSON", format!("{not_json}.{p}.{s}")));
    let array = b64("[\"HS256\"]");
    cases.push(("header a JSON array", format!("{array}.{p}.{s}")));
    cases.push(("claims not an object", {
        raw_token("{\"alg\":\"HS256\"}", "[1,2]", &k.hs, Algorithm::HS256)
    }));
    cases.push(("claims a number", {
        raw_token("{\"alg\":\"HS256\"}", "1", &k.hs, Algorithm::HS256)
    }));
    cases.push(("duplicate alg in the header", {
        let c = claims("hs-issuer").to_string();
        raw_token(
            r#"{"alg":"HS256","alg":"none"}"#,
            &c,
            &k.hs,
            Algorithm::HS256,
        )
    }));
    cases.push(("lower-case alg", hs(hdr("hs256"), claims("hs-issuer"))));
    let crit = json!({"alg": "HS256", "crit": ["exp"], "exp": 1});
    cases.push(("unknown crit extension", hs(crit, claims("hs-issuer"))));
    let b64_false = json!({"alg": "HS256", "b64": false, "crit": ["b64"]});
    cases.push(("b64: false", hs(b64_false, claims("hs-issuer"))));
    cases.push(("too large", {
        let mut c = claims("hs-issuer");
        c["pad"] = json!("x".repeat(MAX_TOKEN_BYTES));
        hs(hdr("HS256"), c)
    }));
    // Keys and algorithms.
    let unknown = json!({"alg": "HS256", "kid": "no-such-key"});
    cases.push(("unknown kid", hs(unknown, json!({"exp": NOW + 60}))));
    let traversal = json!({"alg": "HS256", "kid": "../../../../dev/null"});
    cases.push(("kid path traversal", {
        token(
            traversal,
            json!({"exp": NOW + 60}),
            &EncodingKey::from_secret(b"\0").unwrap(),
            Algorithm::HS256,
        )
    }));
    cases.push(("unknown iss, no kid", hs(hdr("HS256"), claims("nobody"))));
    cases.push(("RS512 header for an RS256 credential, right key", {
        token(hdr("RS512"), claims("rs-issuer"), &k.rsa, Algorithm::RS512)
    }));
    cases.push(("PS256 header for an RS256 credential, right key", {
        token(hdr("PS256"), claims("rs-issuer"), &k.rsa, Algorithm::PS256)
    }));
    cases.push(("HS384 header for an HS256 credential, right secret", {
        token(hdr("HS384"), claims("hs-issuer"), &k.hs, Algorithm::HS384)
    }));
    cases.push(("ES384 header for an ES256 credential", {
        token(
            hdr("ES384"),
            claims("es-issuer"),
            &k.es384,
            Algorithm::ES384,
        )
    }));

    assert!(cases.len() >= 30, "{} cases", cases.len());
    for (name, t) in &cases {
        let got = check(&policy, &consumers, t);
        let message = got.expect_err(name);
        assert!(!message.contains(t.as_str()), "{name}: the token is echoed");
    }
    // Two bearer tokens: refused, not one picked.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let one = format!("Bearer {good}");
    let two = rt.block_on(answer(
        &policy,
        &consumers,
        &[one.as_bytes(), one.as_bytes()],
    ));
    assert!(matches!(two, Err((StatusCode::UNAUTHORIZED, _, _))));
}

/// A good HS256 token whose signature has a `-` or `_`, with the signature
/// rewritten in the standard alphabet (`+`, `/`).
fn std_alphabet_token(key: &EncodingKey) -> String {
    for i in 0.. {
        let mut c = claims("hs-issuer");
        c["jti"] = json!(i);
        let t = token(hdr("HS256"), c, key, Algorithm::HS256);
        let (m, s) = t.rsplit_once('.').unwrap();
        if s.contains(['-', '_']) {
            return format!("{m}.{}", s.replace('-', "+").replace('_', "/"));
        }
    }
    unreachable!()
}

/// The same ES256 message signed in ASN.1 DER (what JWS forbids), by a
/// fresh key.
fn der_signature(valid: &str) -> String {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let der =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pair.serialize_der(), &rng)
            .unwrap();
    let (m, _) = valid.rsplit_once('.').unwrap();
    format!("{m}.{}", b64(der.sign(&rng, m.as_bytes()).unwrap()))
}

#[test]
fn der_signature_of_the_right_key_is_refused() {
    // `der_signature` above uses a fresh key; this one signs with the
    // credential's own key, so only the encoding is wrong.
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    crypto::install();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut consumers = CompiledConsumers::default();
    add(
        &mut consumers,
        "es",
        JwtAlgorithm::ES256,
        &pair.public_key_pem(),
        "carol",
    );
    let policy = at(Jwt::with_jwks(all_algorithms_no_nbf(), None), now);
    let key = EncodingKey::from_ec_der(&pair.serialize_der());
    let c = json!({"iss": "es", "exp": NOW + 60});
    let good = token(hdr("ES256"), c, &key, Algorithm::ES256);
    assert_eq!(check(&policy, &consumers, &good).as_deref(), Ok("carol"));
    let rng = ring::rand::SystemRandom::new();
    let der =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pair.serialize_der(), &rng)
            .unwrap();
    let (m, _) = good.rsplit_once('.').unwrap();
    let bad = format!("{m}.{}", b64(der.sign(&rng, m.as_bytes()).unwrap()));
    assert_eq!(
        check(&policy, &consumers, &bad).unwrap_err(),
        "invalid signature"
    );
}
