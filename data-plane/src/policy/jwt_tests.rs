//! The `jwt` policy against good tokens of every algorithm, RFC 7515 and
//! RFC 7520 examples, and a list of hostile tokens that must all be 401.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use http::HeaderValue;
use jsonwebtoken::EncodingKey;
use serde_json::json;
use uuid::Uuid;

use super::*;

/// The tests' clock: 2023-11-14.
pub(super) const NOW: u64 = 1_700_000_000;
const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

const RSA_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDkTlnTbwrDBbqk
h1lrc57Zh4IYL2CqJiVlOSo12gWWjtvAdYiGa4/ohHbzYl2VciFk96rvQdptMfC8
HvY+74wRkI1CiIxNFSRmUhazsAbO+C9hXrmfjNQHzwnmYR/npixuBUn7ogqIrOpQ
E5PlwoGE+xawejeppwxCYmcD0m2UwwkT9d4+6nqsk3fmgglpb1Qc/eF6fyENAaqp
qdNfEYIhx1jlOjV+g4j2XlnUB9mTNPWfPug2QCL2+a73UtFZ7MZER6bNl6kyqI9d
e90k34LQiVJog85izvaht5ePiwgJVbGus9b1T+fwaPrNXN8vc5zuvc/z/0CGybOZ
1kzRchfxAgMBAAECggEAAYqf46QTzAZNYNADJA0XTPuzvqsPOYbhaMIOjWeH8yDK
zg1dGx89zQGb9f+7hwdKv25Gqq/kpCkaqYKCAiHG7dVuhrz6SYjzgndabOMq4Jnf
ZAZqNXATfGwC8pnER+Gg2itR+Q96h7q3KExBiuMZ0caKPC3PE2er1wToEigJEmCN
eeWwzMr5KxOKdVdzHAlbCg0OBO385L8Qo6F17Zalpr/QcDr+R1BRI5AI4mqb85Zx
bFC/2tAC6hNI7QJQc7bcKnpr+XXuxmTfSqa3ckdPo+vsV4Pz5i85iEAASwp0kV8U
5wyRUSdTxbtGoPcU9ESFq9qvHHdWxGE3HU6aWPRGmwKBgQD9wXzctxESb+5Ei1VO
YazMTIgoiK6p0Nu42QMqn1maqc1bl2racRF0cdpP0SshSYFUuQWwuJRbTZEXyAbn
bd7Na7b+yFrjEzvaecEl7My4X6jZe5NTKa65DKqFo9F/8AteTu5uqqKhliC6JoaE
u8fx+Kar2DZ1GdC7PR/nB4ASLwKBgQDmUz510zB/o4C7qxCzOmbKHDFqRfyJUrwj
vqimaAcGMNZNHYrLZjHj/Z4ahw9q8Ks7y8zu2XIVtpl5zISh4OHIodfX0TkqmR7J
afGeol/ISA28EhWOhknE+R4cmW34bx2ey/lDbU4mNc6NdPY4HcW8rZGFNwERAxyN
nDmigGaP3wKBgQDWojdD1VCKYMSPk673GmT3dPBiIKJkHrYK1vv3rEs1J9T8WMnX
tHWIIdj/VDP/9tV+3PT0MlvCEozcKaO1Uth2tlpVjRBbK2Sf+gYmVvIeLUN7mSvW
1tXjzdPaL+M/LMHg5jCEyK3AsWRDL9zuHosTnzcS+VGuoMRN63i1iEGKnwKBgH2X
dr+Y4SE4bsHmjbytY89hgDCK6SGYU67KD/xtTSc7CiASs9QlbZ78dHHSo72Ubkq0
3pJ/T443e4jG1KvQjE1ystej5qArznXVp0LxF3mGkLa0xbxpzV/y11CQ+T42mNg2
MT1rJOoA/Rh1Zq1CzsgLfQY+7/3uzGsLfQH3MfXRAoGAI/IvzbPDWhF0hjH/klq6
dxs4bPTvUpOBuPbejD5BvbyhkeLVEOdmb+XR6GVAoVWpBC7RiMJzQr2xxl4VFkR2
TCBTSEblxA/+qpgj1L4TK2l5IGHaDzYCli8KcmaaMHG6SjiB58/1oiPZQ9dXmK46
svrScNf//yCYctAssxyznSs=
-----END PRIVATE KEY-----
";

const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA5E5Z028KwwW6pIdZa3Oe
2YeCGC9gqiYlZTkqNdoFlo7bwHWIhmuP6IR282JdlXIhZPeq70HabTHwvB72Pu+M
EZCNQoiMTRUkZlIWs7AGzvgvYV65n4zUB88J5mEf56YsbgVJ+6IKiKzqUBOT5cKB
hPsWsHo3qacMQmJnA9JtlMMJE/XePup6rJN35oIJaW9UHP3hen8hDQGqqanTXxGC
IcdY5To1foOI9l5Z1AfZkzT1nz7oNkAi9vmu91LRWezGREemzZepMqiPXXvdJN+C
0IlSaIPOYs72obeXj4sICVWxrrPW9U/n8Gj6zVzfL3Oc7r3P8/9AhsmzmdZM0XIX
8QIDAQAB
-----END PUBLIC KEY-----
";

pub(super) fn now() -> u64 {
    NOW
}

pub(super) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with this exact header and claims text, signed with `key` as
/// `alg` (whatever the header says).
pub(super) fn raw_token(header: &str, claims: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{sig}")
}

pub(super) fn token(header: Value, claims: Value, key: &EncodingKey, alg: Algorithm) -> String {
    raw_token(&header.to_string(), &claims.to_string(), key, alg)
}

pub(super) fn at(mut policy: Jwt, clock: fn() -> u64) -> Jwt {
    Arc::get_mut(&mut policy.checks).unwrap().now = clock;
    policy
}

pub(super) fn consumer(name: &str) -> Arc<CompiledConsumer> {
    Arc::new(CompiledConsumer {
        id: Uuid::new_v4(),
        username: name.to_owned(),
        groups: Vec::new(),
        id_header: HeaderValue::from_static("id"),
        username_header: HeaderValue::from_str(name).unwrap(),
    })
}

pub(super) fn add(
    consumers: &mut CompiledConsumers,
    key: &str,
    algorithm: JwtAlgorithm,
    material: &str,
    name: &str,
) {
    let hmac = algorithm.is_hmac();
    let cred = JwtCredential {
        key: key.to_owned(),
        algorithm,
        secret: hmac.then(|| material.to_owned()),
        secret_sha256: None,
        public_key: (!hmac).then(|| material.to_owned()),
    };
    consumers.jwt.insert(key.to_owned(), (cred, consumer(name)));
}

pub(super) fn config(v: Value) -> JwtConfig {
    serde_json::from_value(v).unwrap()
}

/// Every algorithm allowed, `nbf` checked.
fn all_algorithms() -> JwtConfig {
    config(json!({
        "algorithms": ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256",
                       "ES256", "ES384", "EdDSA"],
        "claims_to_verify": ["exp", "nbf"],
    }))
}

struct Keys {
    es256: EncodingKey,
    es384: EncodingKey,
    ed: EncodingKey,
    rsa: EncodingKey,
    hs: EncodingKey,
}

fn generate(alg: &'static rcgen::SignatureAlgorithm) -> (EncodingKey, String) {
    let pair = rcgen::KeyPair::generate_for(alg).unwrap();
    let der = pair.serialize_der();
    let key = if alg == &rcgen::PKCS_ED25519 {
        EncodingKey::from_ed_der(&der)
    } else {
        EncodingKey::from_ec_der(&der)
    };
    (key, pair.public_key_pem())
}

/// Consumers with one credential per algorithm: alice (HS256 by iss), bob
/// (RS256), carol (ES256), dave (EdDSA), erin (PS256), frank (HS512 found
/// by kid), grace (ES384), heidi (RS512).
fn world() -> (CompiledConsumers, Keys) {
    crypto::install();
    let mut c = CompiledConsumers::default();
    let (es256, es256_pem) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (es384, es384_pem) = generate(&rcgen::PKCS_ECDSA_P384_SHA384);
    let (ed, ed_pem) = generate(&rcgen::PKCS_ED25519);
    add(&mut c, "hs-issuer", JwtAlgorithm::HS256, SECRET, "alice");
    add(&mut c, "rs-issuer", JwtAlgorithm::RS256, RSA_PUBLIC, "bob");
    add(
        &mut c,
        "es-issuer",
        JwtAlgorithm::ES256,
        &es256_pem,
        "carol",
    );
    add(&mut c, "ed-issuer", JwtAlgorithm::EdDSA, &ed_pem, "dave");
    add(&mut c, "ps-issuer", JwtAlgorithm::PS256, RSA_PUBLIC, "erin");
    add(&mut c, "kid-1", JwtAlgorithm::HS512, SECRET, "frank");
    add(
        &mut c,
        "es384-issuer",
        JwtAlgorithm::ES384,
        &es384_pem,
        "grace",
    );
    add(
        &mut c,
        "rs512-issuer",
        JwtAlgorithm::RS512,
        RSA_PUBLIC,
        "heidi",
    );
    let keys = Keys {
        es256,
        es384,
        ed,
        rsa: EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        hs: EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    };
    (c, keys)
}

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": "someone", "exp": NOW + 600, "nbf": NOW - 10, "iat": NOW - 10})
}

fn hdr(alg: &str) -> Value {
    json!({"alg": alg, "typ": "JWT"})
}

/// What the policy answered: the consumer's name, or the status, message
/// and `WWW-Authenticate`. Awaits a `Flow::Identify`.
pub(super) async fn answer(
    policy: &Jwt,
    consumers: &CompiledConsumers,
    authorization: &[&[u8]],
) -> Result<String, (StatusCode, String, String)> {
    let (mut parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    for a in authorization {
        parts
            .headers
            .append(AUTHORIZATION, HeaderValue::from_bytes(a).unwrap());
    }
    let mut ctx = RequestCtx {
        parts: &mut parts,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route: "r",
        consumers,
        consumer: None,
        response_headers: HeaderMap::new(),
        body_limit: None,
    };
    let refused = |r: Rejection| {
        let www = r.headers[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        (r.status, r.message.into_owned(), www)
    };
    match policy.on_request(&mut ctx) {
        Flow::Continue => Ok(ctx.consumer.expect("a consumer").username.clone()),
        Flow::Absent(r) | Flow::Reject(r) => Err(refused(r)),
        Flow::Identify(f) => f.await.map(|c| c.username.clone()).map_err(refused),
        Flow::Wait(_) => panic!("jwt never answers Flow::Wait"),
    }
}

/// The same, for a bearer token, without a runtime (no JWKS here).
fn check(policy: &Jwt, consumers: &CompiledConsumers, token: &str) -> Result<String, String> {
    let header = format!("Bearer {token}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(answer(policy, consumers, &[header.as_bytes()]))
        .map_err(|(status, message, www)| {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
            assert!(www.starts_with("Bearer"), "{www}");
            message
        })
}

#[test]
fn every_algorithm_verifies_with_its_credential() {
    let (consumers, k) = world();
    let policy = at(Jwt::with_jwks(all_algorithms(), None), now);
    let cases = [
        ("hs-issuer", "HS256", &k.hs, "alice"),
        ("rs-issuer", "RS256", &k.rsa, "bob"),
        ("es-issuer", "ES256", &k.es256, "carol"),
        ("ed-issuer", "EdDSA", &k.ed, "dave"),
        ("ps-issuer", "PS256", &k.rsa, "erin"),
        ("es384-issuer", "ES384", &k.es384, "grace"),
        ("rs512-issuer", "RS512", &k.rsa, "heidi"),
    ];
    for (iss, alg, key, who) in cases {
        let a: Algorithm = alg.parse().unwrap();
        let t = token(hdr(alg), claims(iss), key, a);
        assert_eq!(check(&policy, &consumers, &t).as_deref(), Ok(who), "{alg}");
    }
    // Found by `kid` when no credential has the `iss`; `iss` wins over `kid`.
    let by_kid = json!({"alg": "HS512", "kid": "kid-1"});
    let t = token(
        by_kid,
        json!({"exp": NOW + 60, "nbf": NOW}),
        &k.hs,
        Algorithm::HS512,
    );
    assert_eq!(check(&policy, &consumers, &t).as_deref(), Ok("frank"));
    let both = json!({"alg": "HS256", "kid": "kid-1"});
    let t = token(both, claims("hs-issuer"), &k.hs, Algorithm::HS256);
    assert_eq!(check(&policy, &consumers, &t).as_deref(), Ok("alice"));
    // Leeway: expired 30 s ago, nbf 30 s ahead, with the default 60 s.
    let c = json!({"iss": "hs-issuer", "exp": NOW - 30, "nbf": NOW + 30});
    let t = token(hdr("HS256"), c, &k.hs, Algorithm::HS256);
    assert_eq!(check(&policy, &consumers, &t).as_deref(), Ok("alice"));
    // A fractional NumericDate is a number too.
    let c = json!({"iss": "hs-issuer", "exp": NOW as f64 + 0.5, "nbf": NOW as f64 - 0.5});
    let t = token(hdr("HS256"), c, &k.hs, Algorithm::HS256);
    assert_eq!(check(&policy, &consumers, &t).as_deref(), Ok("alice"));
}

#[test]
fn no_bearer_token_is_absent_with_a_challenge() {
    let (consumers, k) = world();
    let policy = at(Jwt::with_jwks(all_algorithms(), None), now);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for auth in [&[][..], &[&b"Basic YWxpY2U6cHc="[..]], &[&b"Bearer"[..]]] {
        let (mut parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        for a in auth {
            parts
                .headers
                .append(AUTHORIZATION, HeaderValue::from_bytes(a).unwrap());
        }
        let mut ctx = RequestCtx {
            parts: &mut parts,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            route: "r",
            consumers: &consumers,
            consumer: None,
            response_headers: HeaderMap::new(),
            body_limit: None,
        };
        let Flow::Absent(r) = policy.on_request(&mut ctx) else {
            panic!("{auth:?}: not absent");
        };
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers[WWW_AUTHENTICATE], "Bearer realm=\"turnpike\"");
    }
    // The scheme is case-insensitive.
    let t = token(hdr("HS256"), claims("hs-issuer"), &k.hs, Algorithm::HS256);
    let lower = format!("bearer {t}");
    let got = rt.block_on(answer(&policy, &consumers, &[lower.as_bytes()]));
    assert_eq!(got.as_deref(), Ok("alice"));
}

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

#[test]
fn issuer_audience_and_allowed_algorithms_are_enforced() {
    let (consumers, k) = world();
    let strict = at(
        Jwt::with_jwks(
            config(
                json!({"algorithms": ["HS512"], "issuer": "https://idp.example",
                          "audience": ["api", "admin"]}),
            ),
            None,
        ),
        now,
    );
    let hs512 = |c: Value| {
        token(
            json!({"alg": "HS512", "kid": "kid-1"}),
            c,
            &k.hs,
            Algorithm::HS512,
        )
    };
    let ok = json!({"iss": "https://idp.example", "aud": ["other", "api"], "exp": NOW + 60});
    assert_eq!(
        check(&strict, &consumers, &hs512(ok)).as_deref(),
        Ok("frank")
    );
    let ok = json!({"iss": "https://idp.example", "aud": "admin", "exp": NOW + 60});
    assert_eq!(
        check(&strict, &consumers, &hs512(ok)).as_deref(),
        Ok("frank")
    );
    for (c, why) in [
        (
            json!({"iss": "https://evil.example", "aud": "api", "exp": NOW + 60}),
            "token issuer not accepted",
        ),
        (
            json!({"aud": "api", "exp": NOW + 60}),
            "token has no iss claim",
        ),
        (
            json!({"iss": "https://idp.example", "aud": "other", "exp": NOW + 60}),
            "token audience not accepted",
        ),
        (
            json!({"iss": "https://idp.example", "aud": [], "exp": NOW + 60}),
            "token has no aud claim",
        ),
        (
            json!({"iss": "https://idp.example", "exp": NOW + 60}),
            "token has no aud claim",
        ),
        (
            json!({"iss": "https://idp.example", "aud": [1], "exp": NOW + 60}),
            "aud claim is not a string or an array of strings",
        ),
        (
            json!({"iss": "https://idp.example", "aud": {"a": 1}, "exp": NOW + 60}),
            "aud claim is not a string or an array of strings",
        ),
    ] {
        assert_eq!(check(&strict, &consumers, &hs512(c)).unwrap_err(), why);
    }
    // HS256 is not in this plugin's algorithms, though alice's credential is HS256.
    let t = token(hdr("HS256"), claims("hs-issuer"), &k.hs, Algorithm::HS256);
    assert_eq!(
        check(&strict, &consumers, &t).unwrap_err(),
        "the key's algorithm is not allowed by the plugin"
    );
    // nbf not listed: a future nbf is not checked, but a string one is refused.
    let lax = at(Jwt::with_jwks(config(json!({})), None), now);
    let c = json!({"iss": "hs-issuer", "exp": NOW + 60, "nbf": NOW + 3600});
    let t = token(hdr("HS256"), c, &k.hs, Algorithm::HS256);
    assert_eq!(check(&lax, &consumers, &t).as_deref(), Ok("alice"));
    // nbf listed: required.
    let t = token(
        hdr("HS256"),
        json!({"iss": "hs-issuer", "exp": NOW + 60}),
        &k.hs,
        Algorithm::HS256,
    );
    let nbf = at(Jwt::with_jwks(all_algorithms(), None), now);
    assert_eq!(
        check(&nbf, &consumers, &t).unwrap_err(),
        "token has no nbf claim"
    );
}

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

fn all_algorithms_no_nbf() -> JwtConfig {
    let mut c = all_algorithms();
    c.claims_to_verify = vec![Claim::Exp];
    c
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

#[path = "jwt_verified_tests.rs"]
mod verified_tests;
