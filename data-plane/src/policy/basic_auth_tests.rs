use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Params, Version};
use http::HeaderMap;
use serde_json::json;
use turnpike_model::credential::BasicAuth as BasicAuthCredential;
use turnpike_model::{
    Consumer, ConsumerSpec, Credential, CredentialKind, CredentialSpec, Plugin, PluginSpec,
    Snapshot,
};
use uuid::Uuid;

use super::*;
use crate::policy::{CompiledConsumers, CompiledPolicies};

/// An Argon2id PHC string, cheap to check (the costs are in the string).
fn argon2id(password: &str) -> String {
    let params = Params::new(8, 1, 1, None).unwrap();
    let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// A snapshot with consumer `alice` (basic-auth `alice` / `password`) and a
/// global basic-auth plugin with this config.
fn snapshot(password: &str, config: serde_json::Value) -> Snapshot {
    let alice = Uuid::now_v7();
    Snapshot {
        consumers: vec![Consumer {
            id: alice,
            spec: serde_json::from_value::<ConsumerSpec>(json!({"username": "alice"})).unwrap(),
        }],
        credentials: vec![Credential {
            id: Uuid::now_v7(),
            spec: CredentialSpec {
                consumer: alice.to_string(),
                kind: CredentialKind::BasicAuth(BasicAuthCredential {
                    username: "alice".into(),
                    password: None,
                    password_hash: Some(argon2id(password)),
                }),
            },
        }],
        plugins: vec![Plugin {
            id: Uuid::now_v7(),
            spec: serde_json::from_value::<PluginSpec>(
                json!({"name": "basic-auth", "config": config}),
            )
            .unwrap(),
        }],
        ..Snapshot::default()
    }
}

fn basic(user_pass: &str) -> String {
    format!("Basic {}", Base64::encode_string(user_pass.as_bytes()))
}

fn policy(hide: bool) -> BasicAuth {
    BasicAuth::new(BasicAuthConfig {
        hide_credentials: hide,
        realm: "shop".into(),
    })
    .unwrap()
}

fn parts(authorization: &[&str]) -> http::request::Parts {
    let mut parts = http::Request::new(()).into_parts().0;
    for v in authorization {
        parts
            .headers
            .append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
    }
    parts
}

/// What the policy decided, awaited when it had to hash; the consumer it
/// named and whether `Authorization` is still there.
async fn run(
    p: &BasicAuth,
    consumers: &CompiledConsumers,
    authorization: &[&str],
) -> (Result<Option<String>, Rejection>, bool, bool) {
    let mut parts = parts(authorization);
    let mut ctx = RequestCtx {
        parts: &mut parts,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route: "r",
        consumers,
        consumer: None,
        response_headers: HeaderMap::new(),
        body_limit: None,
    };
    let (outcome, hashed) = match p.on_request(&mut ctx) {
        Flow::Continue => (Ok(ctx.consumer.clone()), false),
        Flow::Identify(f) => (f.await.map(Some), true),
        Flow::Absent(r) | Flow::Reject(r) => (Err(r), false),
        Flow::Wait(_) => panic!("basic-auth never waits for headers"),
    };
    let named = outcome.map(|c| c.map(|c| c.username.clone()));
    (named, hashed, parts.headers.contains_key(AUTHORIZATION))
}

fn assert_challenge(r: &Rejection) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers[WWW_AUTHENTICATE], "Basic realm=\"shop\"");
}

#[tokio::test]
async fn good_password_hashes_once_then_hits_the_cache() {
    let password = "good-password-for-the-cache-test";
    let consumers = CompiledConsumers::build(&snapshot(password, json!({})), "").unwrap();
    let p = policy(false);
    let auth = basic(&format!("alice:{password}"));
    let (named, hashed, kept) = run(&p, &consumers, &[&auth]).await;
    assert_eq!(named.unwrap().as_deref(), Some("alice"));
    assert!(hashed, "the first check hashes, off the async threads");
    assert!(kept);
    let (named, hashed, _) = run(&p, &consumers, &[&auth]).await;
    assert_eq!(named.unwrap().as_deref(), Some("alice"));
    assert!(!hashed, "the second is answered from the cache");
    // Another stored hash for the same password (a new version of the
    // credential) misses the cache.
    let rehashed =
        CompiledConsumers::build(&snapshot(&format!("{password}!"), json!({})), "").unwrap();
    let (named, hashed, _) = run(&p, &rehashed, &[&auth]).await;
    assert_challenge(&named.unwrap_err());
    assert!(hashed);
}

#[tokio::test]
async fn wrong_unknown_missing_and_malformed_are_401() {
    let consumers = CompiledConsumers::build(&snapshot("right-password", json!({})), "").unwrap();
    let p = policy(false);
    let (wrong, hashed, _) = run(&p, &consumers, &[&basic("alice:wrong-password")]).await;
    assert_challenge(&wrong.unwrap_err());
    assert!(hashed);
    let (unknown, hashed, _) = run(&p, &consumers, &[&basic("bob:right-password")]).await;
    assert_challenge(&unknown.unwrap_err());
    assert!(!hashed, "an unknown user is refused without hashing");
    for bad in [
        "Basic",
        "Basic !!!!",
        "Basic YWxpY2U",                                            // no padding
        &basic("alice"),                                            // no colon
        &basic(":right-password"),                                  // no username
        &format!("Basic {}", Base64::encode_string(b"al\xffce:x")), // not UTF-8
    ] {
        let (r, _, _) = run(&p, &consumers, &[bad]).await;
        assert_challenge(&r.unwrap_err());
    }
    let two = basic("alice:right-password");
    let (r, _, _) = run(&p, &consumers, &[&two, &two]).await;
    assert_challenge(&r.unwrap_err());
    // No header, another scheme: absent, the next authentication may answer.
    let mut parts = parts(&["Bearer abc.def.ghi"]);
    let mut ctx = RequestCtx {
        parts: &mut parts,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route: "r",
        consumers: &consumers,
        consumer: None,
        response_headers: HeaderMap::new(),
        body_limit: None,
    };
    assert!(
        matches!(p.on_request(&mut ctx), Flow::Absent(r) if r.status == StatusCode::UNAUTHORIZED)
    );
    ctx.parts.headers.clear();
    match p.on_request(&mut ctx) {
        Flow::Absent(r) => assert_challenge(&r),
        _ => panic!("no header is absent"),
    }
}

#[test]
fn parsing_is_strict_but_takes_the_first_colon() {
    let mut buf = [0u8; MAX_DECODED];
    let pair = |v: &str, buf: &mut [u8]| {
        parse(v.as_bytes(), buf).map(|o| o.map(|(u, p)| (u.to_owned(), p.to_owned())))
    };
    assert_eq!(
        pair(&basic("alice:pa:ss"), &mut buf),
        Ok(Some(("alice".into(), "pa:ss".into())))
    );
    assert_eq!(
        pair("bAsIc   YWxpY2U6eA==", &mut buf),
        Ok(Some(("alice".into(), "x".into())))
    );
    assert_eq!(pair("Bearer YWxpY2U6eA==", &mut buf), Ok(None));
    assert_eq!(pair("Basicx YWxpY2U6eA==", &mut buf), Ok(None));
    // Non-canonical last character (trailing bits set), and too long.
    assert_eq!(pair("Basic YWxpY2U6eB==", &mut buf), Err(()));
    let long = basic(&format!("alice:{}", "x".repeat(MAX_DECODED)));
    assert_eq!(pair(&long, &mut buf), Err(()));
}

#[tokio::test]
async fn hide_credentials_removes_the_header() {
    let password = "password-for-the-hide-test";
    let consumers = CompiledConsumers::build(&snapshot(password, json!({})), "").unwrap();
    let auth = basic(&format!("alice:{password}"));
    let (named, _, kept) = run(&policy(true), &consumers, &[&auth]).await;
    assert_eq!(named.unwrap().as_deref(), Some("alice"));
    assert!(!kept);
    let (named, hashed, kept) = run(&policy(true), &consumers, &[&auth]).await;
    assert!(named.is_ok() && !hashed && !kept, "from the cache too");
}

/// Through the chain: `Flow::Identify` names the request's consumer.
#[tokio::test]
async fn the_chain_takes_the_consumer_from_the_check() {
    let password = "password-for-the-chain-test";
    let snapshot = snapshot(
        password,
        json!({"hide_credentials": false, "realm": "shop"}),
    );
    let consumers = CompiledConsumers::build(&snapshot, "").unwrap();
    let policies = CompiledPolicies::build(&snapshot, &HashMap::new(), 1).unwrap();
    let run = |auth: String| {
        let consumers = &consumers;
        let policies = &policies;
        async move {
            let mut parts = parts(&[&auth]);
            let mut ctx = RequestCtx {
                parts: &mut parts,
                client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                route: "r",
                consumers,
                consumer: None,
                response_headers: HeaderMap::new(),
                body_limit: None,
            };
            policies
                .run_request(0, &mut ctx)
                .await
                .map(|()| ctx.consumer.map(|c| c.username.clone()))
        }
    };
    assert_eq!(
        run(basic(&format!("alice:{password}")))
            .await
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    assert_challenge(&run(basic("alice:nope")).await.unwrap_err());
}

#[test]
fn the_cache_is_bounded_oldest_out() {
    let cache = Cache(Mutex::default());
    let key = |i: usize| cache_key("u", &i.to_string(), "h");
    for i in 0..=CACHE_ENTRIES {
        cache.insert(key(i));
    }
    assert!(!cache.contains(&key(0)));
    assert!(cache.contains(&key(1)));
    assert!(cache.contains(&key(CACHE_ENTRIES)));
    assert_eq!(cache.lock().seen.len(), CACHE_ENTRIES);
    assert_ne!(cache_key("ab", "c", "h"), cache_key("a", "bc", "h"));
}
