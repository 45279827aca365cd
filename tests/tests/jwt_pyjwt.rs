//! The `jwt` plugin end to end with tokens made by another implementation:
//! PyJWT (with `cryptography`) generates the keys and signs HS256, RS256,
//! PS256, ES256 and EdDSA tokens; the public keys go to the admin API as
//! credentials; the data plane lets the good tokens through (the upstream
//! learns the consumer) and answers 401 to an expired token and to one
//! whose payload was changed after signing.
//!
//! PyJWT is installed with pip when `import jwt` fails; if that fails too
//! (no network), the test says so on stderr and passes without checking.

use std::process::Command;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, Http, assert_status, fresh_database_url,
};

const SECRET: &str = "pyjwt-shared-secret-of-32-bytes-or-more";

/// Generates keys and tokens; prints one JSON object:
/// `{alg: {"key": secret or public PEM, "good", "expired", "tampered"}}`.
const SCRIPT: &str = r#"
import base64, json, sys, time
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

secret = sys.argv[1]
now = int(time.time())

def pem(private):
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()

def tamper(token):
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["sub"] = "admin"
    p = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return ".".join([h, p, s])

rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
keys = {
    "HS256": (secret, secret),
    "RS256": (rsa_key, pem(rsa_key)),
    "PS256": (rsa_key, pem(rsa_key)),
    "ES256": (ec.generate_private_key(ec.SECP256R1()), None),
    "EdDSA": (ed25519.Ed25519PrivateKey.generate(), None),
}
out = {}
for alg, (signing, public) in keys.items():
    iss = "pyjwt-" + alg.lower()
    claims = {"iss": iss, "sub": "someone", "iat": now, "nbf": now, "exp": now + 600}
    good = jwt.encode(claims, signing, algorithm=alg)
    expired = jwt.encode(dict(claims, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
                         signing, algorithm=alg)
    out[alg] = {"iss": iss, "key": public or pem(signing), "good": good,
                "expired": expired, "tampered": tamper(good)}
print(json.dumps(out))
"#;

fn python_has_pyjwt() -> bool {
    Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// PyJWT's tokens, or `None` (with the reason on stderr) when PyJWT cannot
/// be had.
fn pyjwt_tokens() -> Option<Value> {
    if !python_has_pyjwt() {
        let pip = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "PyJWT", "cryptography"])
            .status();
        if !python_has_pyjwt() {
            eprintln!(
                "SKIPPED: PyJWT is not importable and `pip install PyJWT cryptography` failed ({pip:?})"
            );
            return None;
        }
    }
    let out = Command::new("python3")
        .args(["-c", SCRIPT, SECRET])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the PyJWT script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the script prints JSON"))
}

async fn created(cp: &ControlPlane, path: &str, body: Value) -> u64 {
    let a = cp.api(Method::POST, path, Some(body)).await;
    assert_status(&a, StatusCode::CREATED);
    a.version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_tokens_pass_and_bad_ones_do_not() {
    let Some(tokens) = pyjwt_tokens() else { return };
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let up = CountingUpstream::start().await;
    created(
        &cp,
        "/upstreams",
        json!({"name": "u", "targets": [{"address": up.addr}]}),
    )
    .await;
    created(
        &cp,
        "/routes",
        json!({"name": "api", "paths": ["/api"], "upstream": "u"}),
    )
    .await;
    let algs = ["HS256", "RS256", "PS256", "ES256", "EdDSA"];
    for alg in algs {
        let t = &tokens[alg];
        let user = format!("user-{}", alg.to_lowercase());
        created(&cp, "/consumers", json!({"username": user})).await;
        let key = t["key"].as_str().unwrap();
        let material = if alg == "HS256" {
            json!({"secret": key})
        } else {
            json!({"public_key": key})
        };
        let mut cred = json!({"type": "jwt", "key": t["iss"], "algorithm": alg});
        cred.as_object_mut()
            .unwrap()
            .extend(material.as_object().unwrap().clone());
        created(&cp, &format!("/consumers/{user}/credentials"), cred).await;
    }
    let v = created(
        &cp,
        "/plugins",
        json!({"name": "jwt", "route": "api",
               "config": {"algorithms": algs, "claims_to_verify": ["exp", "nbf"]}}),
    )
    .await;
    dp.wait_for_version(v).await;

    let http = Http::default();
    let get = |path: String, token: Option<String>| {
        let url = format!("{}{path}", dp.proxy);
        let http = http.clone();
        async move {
            let auth = token.map(|t| format!("Bearer {t}"));
            let h: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("authorization", a)])
                .unwrap_or_default();
            http.send(Method::GET, &url, &h, None).await.unwrap()
        }
    };
    let none = get("/api/none".into(), None).await;
    assert_status(&none, StatusCode::UNAUTHORIZED);
    let challenge = none.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");

    for alg in algs {
        let t = &tokens[alg];
        let token = |k: &str| Some(t[k].as_str().unwrap().to_owned());
        let path = format!("/api/{alg}/good");
        let ok = get(path.clone(), token("good")).await;
        assert_status(&ok, StatusCode::OK);
        let seen = &up.matching(&path)[0];
        let user = format!("user-{}", alg.to_lowercase());
        assert_eq!(seen.header("x-consumer-username"), Some(user.as_str()));
        for bad in ["expired", "tampered"] {
            let path = format!("/api/{alg}/{bad}");
            let refused = get(path.clone(), token(bad)).await;
            assert_status(&refused, StatusCode::UNAUTHORIZED);
            let body = String::from_utf8_lossy(&refused.body);
            assert!(!body.contains(t[bad].as_str().unwrap()), "token echoed");
            assert!(
                up.matching(&path).is_empty(),
                "{alg} {bad} reached the upstream"
            );
        }
    }
}
