//! JWKS: parsing, the policy's use of fetched keys, on-demand refresh at
//! most once a minute, stale-while-error, the task's lifetime, reuse by
//! URI, and the real HTTPS fetch against a local TLS server.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::EncodingKey;
use rustls::pki_types::PrivateKeyDer;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use turnpike_model::credential::JwtAlgorithm;

use super::super::tests::{NOW, add, answer, at, b64, config, now, token};
use super::super::{CompiledConsumers, Jwt};
use super::*;

const IDP: &str = "https://idp.example";
const SECRET: &str = "the-idp-credential-secret-32-bytes!!";

/// Answers in order, then the last one again; counts calls.
struct Fake {
    answers: Mutex<VecDeque<Result<String, String>>>,
    calls: AtomicUsize,
}

impl Fake {
    fn new(answers: Vec<Result<String, String>>) -> Arc<Fake> {
        Arc::new(Fake {
            answers: Mutex::new(answers.into()),
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Fetch for Fake {
    fn fetch<'a>(
        &'a self,
        _uri: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'a>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut answers = self.answers.lock().unwrap();
        let answer = if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().unwrap()
        };
        Box::pin(async move { answer.map(Bytes::from) })
    }
}

/// A P-256 key: its signing key and its public JWK with `kid`.
fn ec_key(kid: &str) -> (EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid,
        "x": b64(&point[1..33]), "y": b64(&point[33..65])});
    (EncodingKey::from_ec_der(&pair.serialize_der()), jwk)
}

fn set(keys: &[&Value]) -> Result<String, String> {
    Ok(json!({ "keys": keys }).to_string())
}

async fn first_fetch(jwks: &Jwks) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while jwks.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first fetch");
}

fn idp_consumers() -> CompiledConsumers {
    let mut c = CompiledConsumers::default();
    add(&mut c, IDP, JwtAlgorithm::HS256, SECRET, "alice");
    c
}

fn es256(kid: &str, iss: &str, key: &EncodingKey) -> String {
    token(
        json!({"alg": "ES256", "kid": kid}),
        json!({"iss": iss, "exp": NOW + 60}),
        key,
        Algorithm::ES256,
    )
}

async fn bearer(policy: &Jwt, consumers: &CompiledConsumers, t: &str) -> Result<String, String> {
    let h = format!("Bearer {t}");
    answer(policy, consumers, &[h.as_bytes()])
        .await
        .map_err(|(status, message, _)| {
            assert_eq!(status, http::StatusCode::UNAUTHORIZED);
            message
        })
}

#[test]
fn parse_keeps_signature_keys_with_a_kid() {
    let (_, ec) = ec_key("ec");
    let mut ec_named = ec.clone();
    ec_named["kid"] = json!("ec-named");
    ec_named["alg"] = json!("ES256");
    let mut ec_lying = ec.clone();
    ec_lying["kid"] = json!("ec-says-rs256");
    ec_lying["alg"] = json!("RS256");
    let mut enc = ec.clone();
    enc["kid"] = json!("enc");
    enc["use"] = json!("enc");
    let mut no_kid = ec.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let rsa = json!({"kty": "RSA", "kid": "bilbo", "use": "sig", "e": "AQAB",
        "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"});
    let ed = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    let doc = json!({"keys": [
        ec, ec_named, ec_lying, enc, no_kid, rsa, ed,
        {"kty": "oct", "kid": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"},
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
        {"kty": "weird", "kid": "weird"},
        "not a key",
    ]});
    let keys = parse(doc.to_string().as_bytes()).unwrap();
    let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
    kids.sort();
    assert_eq!(kids, ["bilbo", "ec", "ec-named", "ed"]);
    assert_eq!(keys["ec"].algorithms, [Algorithm::ES256]);
    assert_eq!(keys["ed"].algorithms, [Algorithm::EdDSA]);
    assert!(keys["bilbo"].algorithms.contains(&Algorithm::PS256));
    assert!(!keys["bilbo"].algorithms.contains(&Algorithm::HS256));
    for bad in ["not json", "{}", "{\"keys\": {}}", "[]"] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_jwks_key_verifies_and_the_iss_credential_names_the_consumer() {
    let (k1, jwk1) = ec_key("k1");
    let fake = Fake::new(vec![set(&[&jwk1])]);
    let jwks = Arc::new(Jwks::start("https://idp.example/jwks", fake.clone()));
    first_fetch(&jwks).await;
    let consumers = idp_consumers();
    let both = config(json!({"algorithms": ["ES256", "HS256"]}));
    let policy = at(Jwt::with_jwks(both, Some(jwks.clone())), now);

    assert_eq!(
        bearer(&policy, &consumers, &es256("k1", IDP, &k1)).await,
        Ok("alice".into())
    );
    // The credential's own key still serves tokens without a kid.
    let own = token(
        json!({"alg": "HS256"}),
        json!({"iss": IDP, "exp": NOW + 60}),
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        Algorithm::HS256,
    );
    assert_eq!(bearer(&policy, &consumers, &own).await, Ok("alice".into()));
    // No anonymous consumer: an iss without a credential is refused.
    assert_eq!(
        bearer(&policy, &consumers, &es256("k1", "https://other", &k1)).await,
        Err("no credential for this token's iss or kid".into())
    );
    // Signed by another key under the same kid.
    let (other, _) = ec_key("k1");
    assert_eq!(
        bearer(&policy, &consumers, &es256("k1", IDP, &other)).await,
        Err("invalid signature".into())
    );
    // The header's alg must be one the JWKS key allows.
    let es384 = token(
        json!({"alg": "ES384", "kid": "k1"}),
        json!({"iss": IDP, "exp": NOW + 60}),
        &k1,
        Algorithm::ES256,
    );
    assert_eq!(
        bearer(&policy, &consumers, &es384).await,
        Err("token algorithm does not match the key's".into())
    );
    // And one the plugin allows.
    let hs_only = config(json!({"algorithms": ["HS256"]}));
    let strict = at(Jwt::with_jwks(hs_only, Some(jwks)), now);
    assert_eq!(
        bearer(&strict, &consumers, &es256("k1", IDP, &k1)).await,
        Err("the key's algorithm is not allowed by the plugin".into())
    );
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn an_unknown_kid_refreshes_at_most_once_a_minute() {
    let (k1, jwk1) = ec_key("k1");
    let (k2, jwk2) = ec_key("k2");
    let (k3, _) = ec_key("k3");
    let fake = Fake::new(vec![set(&[&jwk1]), set(&[&jwk1, &jwk2])]);
    let jwks = Arc::new(Jwks::start("https://idp.example/rotating", fake.clone()));
    first_fetch(&jwks).await;
    let consumers = idp_consumers();
    let policy = at(
        Jwt::with_jwks(config(json!({"algorithms": ["ES256"]})), Some(jwks.clone())),
        now,
    );
    // k2 was added after the first fetch: the request waits for a refresh.
    assert_eq!(
        bearer(&policy, &consumers, &es256("k2", IDP, &k2)).await,
        Ok("alice".into())
    );
    assert_eq!(fake.calls(), 2);
    // k3 within the minute: no new fetch; the credential's own (HS256)
    // key is tried instead, and refuses.
    assert_eq!(
        bearer(&policy, &consumers, &es256("k3", IDP, &k3)).await,
        Err("the key's algorithm is not allowed by the plugin".into())
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(fake.calls(), 2);
    assert!(!jwks.request_refresh());
    assert_eq!(
        bearer(&policy, &consumers, &es256("k1", IDP, &k1)).await,
        Ok("alice".into())
    );
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_good_keys() {
    let (k1, jwk1) = ec_key("k1");
    let (k9, _) = ec_key("k9");
    let fake = Fake::new(vec![set(&[&jwk1]), Err("connection refused".into())]);
    let jwks = Arc::new(Jwks::start("https://idp.example/flaky", fake.clone()));
    first_fetch(&jwks).await;
    let consumers = idp_consumers();
    let policy = at(
        Jwt::with_jwks(config(json!({"algorithms": ["ES256"]})), Some(jwks.clone())),
        now,
    );
    // An unknown kid triggers a refresh, which fails.
    assert!(
        bearer(&policy, &consumers, &es256("k9", IDP, &k9))
            .await
            .is_err()
    );
    assert_eq!(fake.calls(), 2);
    assert_eq!(jwks.len(), 1);
    assert_eq!(
        bearer(&policy, &consumers, &es256("k1", IDP, &k1)).await,
        Ok("alice".into())
    );
}

#[tokio::test]
async fn the_task_ends_with_the_last_holder() {
    let (_, jwk1) = ec_key("k1");
    let fake = Fake::new(vec![set(&[&jwk1])]);
    let jwks = Jwks::start("https://idp.example/dropped", fake.clone());
    first_fetch(&jwks).await;
    assert_eq!(Arc::strong_count(&fake), 2, "the task holds the fetcher");
    drop(jwks);
    tokio::time::timeout(Duration::from_secs(5), async {
        while Arc::strong_count(&fake) > 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the task was aborted");
}

#[tokio::test]
async fn policies_naming_one_uri_share_its_source() {
    let with = |uri: &str| config(json!({"jwks_uri": uri}));
    let uri = "https://127.0.0.1:9/jwks-shared-test";
    let a = Jwt::new(with(uri)).unwrap();
    let b = Jwt::new(with(uri)).unwrap();
    let other = Jwt::new(with("https://127.0.0.1:9/jwks-other-test")).unwrap();
    let source = |p: &Jwt| p.jwks.clone().unwrap();
    assert!(Arc::ptr_eq(&source(&a), &source(&b)));
    assert!(!Arc::ptr_eq(&source(&a), &source(&other)));
    assert_eq!(source(&a).uri(), uri);
    let weak = Arc::downgrade(&source(&a));
    drop((a, b));
    assert!(
        weak.upgrade().is_none(),
        "the registry holds no strong reference"
    );
    let c = Jwt::new(with(uri)).unwrap();
    assert!(c.jwks.is_some());
}

/// A TLS server for `localhost` under a fresh CA, answering `route(path)`.
async fn https_server(route: fn(&str) -> (u16, String)) -> (u16, RootCertStore) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: Request<Incoming>| async move {
                        let (status, body) = route(req.uri().path());
                        let resp = Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, roots)
}

#[tokio::test]
async fn https_fetch_reads_a_key_set_and_refuses_the_rest() {
    fn route(path: &str) -> (u16, String) {
        match path {
            "/jwks" => (200, "{\"keys\": []}".to_owned()),
            "/huge" => (200, " ".repeat(MAX_BYTES + 1)),
            _ => (404, "no".to_owned()),
        }
    }
    let (port, roots) = https_server(route).await;
    let fetch = HttpsFetch::new(roots).unwrap();
    let at = |path: &str| format!("https://localhost:{port}{path}");
    let body = fetch.fetch(&at("/jwks")).await.unwrap();
    assert_eq!(&body[..], b"{\"keys\": []}");
    assert!(
        fetch
            .fetch(&at("/missing"))
            .await
            .unwrap_err()
            .contains("404")
    );
    assert!(fetch.fetch(&at("/huge")).await.is_err(), "over MAX_BYTES");
    let plain = format!("http://localhost:{port}/jwks");
    assert!(fetch.fetch(&plain).await.is_err(), "https only");
    // The bundled public roots do not trust this server.
    let public = https().unwrap();
    assert!(public.fetch(&at("/jwks")).await.is_err());
}
