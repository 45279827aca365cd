//! The `jwt` policy against good tokens of every algorithm, and its issuer,
//! audience and algorithm rules; the world they share (keys, consumers,
//! clocks) for `hostile_tests` (tokens that must all be 401) and
//! `rfc_tests` (RFC 7515 and RFC 7520 examples).

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

fn all_algorithms_no_nbf() -> JwtConfig {
    let mut c = all_algorithms();
    c.claims_to_verify = vec![Claim::Exp];
    c
}

#[path = "jwt_hostile_tests.rs"]
mod hostile_tests;
#[path = "jwt_rfc_tests.rs"]
mod rfc_tests;
#[path = "jwt_verified_tests.rs"]
mod verified_tests;
