//! Tests of credential parsing and validation: each type's rules, clear and
//! sealed forms, redaction.

use serde_json::{Value, json};

use super::*;

fn fields(v: Value) -> Vec<String> {
    match CredentialKind::from_value(v).and_then(|c| c.validate()) {
        Ok(()) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| e.field).collect(),
    }
}

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
    2Zb0OW1tJkvo6VZd4MJuowy2tQdSjmWM7fhq1lUFb1E";

#[test]
fn type_is_read_first_and_errors_name_the_field() {
    assert_eq!(fields(json!({"key": "k"})), ["type"]);
    assert_eq!(fields(json!({"type": "oauth2"})), ["type"]);
    assert_eq!(fields(json!({"type": "key-auth", "nope": 1})), ["nope"]);
    assert_eq!(
        fields(json!({"type": "basic-auth", "password": "longenough"})),
        [""]
    );
    assert_eq!(fields(json!([1])), [""]);
}

#[test]
fn key_auth() {
    assert!(
        fields(json!({"type": "key-auth"})).is_empty(),
        "generated when absent"
    );
    assert!(fields(json!({"type": "key-auth", "key": "alice-secret-key"})).is_empty());
    assert_eq!(fields(json!({"type": "key-auth", "key": "short"})), ["key"]);
    assert_eq!(
        fields(json!({"type": "key-auth", "key": "has a space in it!"})),
        ["key"]
    );
    assert_eq!(
        fields(json!({"type": "key-auth", "key": "alice-secret-key", "key_prefix": "x"})),
        ["key_prefix"]
    );
    let digest = "a".repeat(64);
    assert!(
        fields(json!({"type": "key-auth", "key_digest": digest, "key_prefix": "tpk_ab12"}))
            .is_empty()
    );
    assert_eq!(
        fields(json!({"type": "key-auth", "key_digest": "ABC"})),
        ["key_digest"]
    );
    assert_eq!(
        fields(json!({"type": "key-auth", "key": "alice-secret-key", "key_digest": digest})),
        ["key"]
    );
}

#[test]
fn basic_auth() {
    let ok = json!({"type": "basic-auth", "username": "alice", "password": "12345678"});
    assert!(fields(ok).is_empty());
    assert_eq!(
        fields(json!({"type": "basic-auth", "username": "a:b", "password": "1234567"})),
        ["username", "password"]
    );
    assert_eq!(
        fields(json!({"type": "basic-auth", "username": "a"})),
        ["password"]
    );
    assert!(
        fields(json!({"type": "basic-auth", "username": "a", "password_hash": PHC})).is_empty()
    );
    let argon2i = PHC.replace("argon2id", "argon2i");
    assert_eq!(
        fields(json!({"type": "basic-auth", "username": "a", "password_hash": argon2i})),
        ["password_hash"]
    );
}

#[test]
fn jwt() {
    let secret = "s".repeat(32);
    assert!(fields(json!({"type": "jwt", "key": "iss-1", "secret": secret})).is_empty());
    assert_eq!(
        fields(json!({"type": "jwt", "key": "iss-1", "algorithm": "HS512", "secret": "short"})),
        ["secret"]
    );
    assert_eq!(
        fields(json!({"type": "jwt", "key": "", "algorithm": "RS256", "secret": secret})),
        ["key", "secret", "public_key"]
    );
    assert_eq!(
        fields(json!({"type": "jwt", "key": "k", "algorithm": "none"})),
        ["algorithm"]
    );
    assert_eq!(
        fields(json!({"type": "jwt", "key": "k", "algorithm": "ES256", "public_key": "PEM"})),
        Vec::<String>::new()
    );
    assert_eq!(
        fields(json!({"type": "jwt", "key": "k", "public_key": "PEM"})),
        ["public_key", "secret"]
    );
    for alg in ["PS256", "EdDSA"] {
        let pem = json!({"type": "jwt", "key": "k", "algorithm": alg, "public_key": "PEM"});
        assert_eq!(fields(pem), Vec::<String>::new(), "{alg}");
        let secret = json!({"type": "jwt", "key": "k", "algorithm": alg, "secret": secret});
        assert_eq!(fields(secret), ["secret", "public_key"], "{alg}");
    }
    assert_eq!(JwtAlgorithm::parse("EdDSA"), Some(JwtAlgorithm::EdDSA));
    assert_eq!(JwtAlgorithm::parse("eddsa"), None);
}

#[test]
fn sealed_form_lookup_and_redaction() {
    let clear =
        CredentialKind::from_value(json!({"type": "key-auth", "key": "alice-secret-key"})).unwrap();
    assert!(clear.check_sealed().is_err());
    assert_eq!(clear.lookup(), None);
    let sealed = CredentialKind::KeyAuth(KeyAuth {
        key: None,
        key_digest: Some("b".repeat(64)),
        key_prefix: Some("alic".into()),
    });
    assert!(sealed.check_sealed().is_ok());
    assert_eq!(sealed.label(), "alic");

    let mut jwt =
        CredentialKind::from_value(json!({"type": "jwt", "key": "iss", "secret": "s".repeat(32)}))
            .unwrap();
    assert!(jwt.check_sealed().is_ok(), "HS secrets are stored as given");
    jwt.redact();
    let CredentialKind::Jwt(j) = &jwt else {
        unreachable!()
    };
    assert_eq!(j.secret, None);
    assert_eq!(
        j.secret_sha256.as_deref(),
        Some(sha256_hex("s".repeat(32).as_bytes()).as_str())
    );
    assert!(
        jwt.check_sealed().is_err(),
        "a digest cannot be distributed"
    );

    // The stored JSON form round-trips, with the consumer beside the type.
    let spec = CredentialSpec {
        consumer: "c".into(),
        kind: sealed,
    };
    let v = serde_json::to_value(&spec).unwrap();
    assert_eq!(v["type"], "key-auth");
    assert_eq!(serde_json::from_value::<CredentialSpec>(v).unwrap(), spec);
}
