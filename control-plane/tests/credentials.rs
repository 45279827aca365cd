//! Credentials through the admin API against real Postgres: each type's
//! rules, secrets never returned nor stored in clear, unique keys, the
//! cascade with their consumer, If-Match, paging and roles.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{ADMIN, Api, READER, fields};
use turnpike_control_plane::seal;

const CREDS: &str = "/api/v1/consumers/alice/credentials";

async fn with_alice(pool: PgPool) -> Api {
    let api = Api::new(pool).await;
    let r = api
        .call(
            Method::POST,
            "/api/v1/consumers",
            Some(json!({"username": "alice"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    api
}

async fn post(api: &Api, body: Value) -> support::Reply {
    api.call(Method::POST, CREDS, Some(body)).await
}

/// Every stored spec and lookup of the credentials table, as text.
async fn stored_text(api: &Api) -> String {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT spec::text, lookup FROM credentials ORDER BY id")
            .fetch_all(api.state.store.pool())
            .await
            .unwrap();
    format!("{rows:?}")
}

#[sqlx::test(migrations = false)]
async fn key_auth_keys_are_shown_once_and_stored_as_peppered_digests(pool: PgPool) {
    let api = with_alice(pool).await;
    let created = post(&api, json!({"type": "key-auth"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tpk_") && key.len() == 68, "{key}");
    assert_eq!(created.body["key_prefix"], &key[..8]);
    let id = created.body["id"].as_str().unwrap().to_owned();

    // Reads never show it.
    let read = api.call(Method::GET, &format!("{CREDS}/{id}"), None).await;
    assert_eq!(read.status, StatusCode::OK);
    let text = read.body.to_string();
    assert!(
        !text.contains(&key) && !text.contains("key_digest"),
        "{text}"
    );
    let list = api.call(Method::GET, CREDS, None).await;
    assert!(!list.body.to_string().contains(&key));

    // The database holds the HMAC with the cluster's pepper, not the key.
    let pepper = api
        .state
        .store
        .get_setting(seal::PEPPER_SETTING)
        .await
        .unwrap()
        .unwrap();
    let stored = stored_text(&api).await;
    assert!(!stored.contains(&key), "{stored}");
    assert!(stored.contains(&seal::key_digest(&pepper, &key)));

    // So does the snapshot the data planes get.
    let wire = api.state.publisher.current();
    let consumer = &wire.wire.config.as_ref().unwrap().consumers[0];
    assert_eq!(consumer.credentials.len(), 1, "nested in their consumer");
    assert!(!format!("{consumer:?}").contains(&key));

    // A given key works the same; a key in use anywhere is a 409 that does
    // not echo it.
    let given = post(&api, json!({"type": "key-auth", "key": "alice-secret-key"})).await;
    assert_eq!(given.status, StatusCode::CREATED);
    assert_eq!(given.body["key"], "alice-secret-key");
    api.call(
        Method::POST,
        "/api/v1/consumers",
        Some(json!({"username": "bob"})),
    )
    .await;
    let dup = api
        .call(
            Method::POST,
            "/api/v1/consumers/bob/credentials",
            Some(json!({"type": "key-auth", "key": "alice-secret-key"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.body);
    assert!(!dup.body.to_string().contains("alice-secret-key"));

    let short = post(&api, json!({"type": "key-auth", "key": "short"})).await;
    assert_eq!(fields(&short), ["key"]);
    let with_id = post(&api, json!({"type": "key-auth", "id": id})).await;
    assert_eq!(fields(&with_id), ["id"]);
}

#[sqlx::test(migrations = false)]
async fn basic_auth_passwords_are_argon2id_hashes(pool: PgPool) {
    let api = with_alice(pool).await;
    let short = post(
        &api,
        json!({"type": "basic-auth", "username": "alice", "password": "1234567"}),
    )
    .await;
    assert_eq!(fields(&short), ["password"]);
    let colon = post(
        &api,
        json!({"type": "basic-auth", "username": "a:b", "password": "12345678"}),
    )
    .await;
    assert_eq!(fields(&colon), ["username"]);

    let password = "correct horse battery";
    let created = post(
        &api,
        json!({"type": "basic-auth", "username": "alice", "password": password}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["has_secret"], true);
    let text = created.body.to_string();
    assert!(
        !text.contains(password) && !text.contains("argon2"),
        "{text}"
    );

    let stored = stored_text(&api).await;
    assert!(!stored.contains(password));
    let (spec,): (Value,) = sqlx::query_as("SELECT spec FROM credentials")
        .fetch_one(api.state.store.pool())
        .await
        .unwrap();
    let hash = spec["password_hash"].as_str().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(seal::verify_password(password, hash));

    let dup = post(
        &api,
        json!({"type": "basic-auth", "username": "alice", "password": "another-one"}),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert!(dup.body["detail"].as_str().unwrap().contains("alice"));
}

#[sqlx::test(migrations = false)]
async fn jwt_secrets_are_hidden_and_public_keys_checked(pool: PgPool) {
    let api = with_alice(pool).await;
    let short = post(
        &api,
        json!({"type": "jwt", "key": "iss-a", "secret": "too-short"}),
    )
    .await;
    assert_eq!(fields(&short), ["secret"]);
    let secret = "0123456789abcdef0123456789abcdef";
    let hs = post(
        &api,
        json!({"type": "jwt", "key": "iss-a", "algorithm": "HS384", "secret": secret}),
    )
    .await;
    assert_eq!(hs.status, StatusCode::CREATED, "{}", hs.body);
    assert_eq!(hs.body["has_secret"], true);
    assert!(!hs.body.to_string().contains(secret));
    let id = hs.body["id"].as_str().unwrap();
    let read = api.call(Method::GET, &format!("{CREDS}/{id}"), None).await;
    assert!(!read.body.to_string().contains(secret));
    assert_eq!(read.body["algorithm"], "HS384");

    let p256 = rcgen::KeyPair::generate().unwrap().public_key_pem();
    let es = post(
        &api,
        json!({"type": "jwt", "key": "kid-1", "algorithm": "ES256", "public_key": p256}),
    )
    .await;
    assert_eq!(es.status, StatusCode::CREATED, "{}", es.body);
    assert_eq!(
        es.body["public_key"],
        p256.as_str(),
        "public material is shown"
    );
    let wrong_curve = post(
        &api,
        json!({"type": "jwt", "key": "kid-2", "algorithm": "ES384", "public_key": p256}),
    )
    .await;
    assert_eq!(fields(&wrong_curve), ["public_key"]);
    let not_rsa = post(
        &api,
        json!({"type": "jwt", "key": "kid-3", "algorithm": "RS256", "public_key": p256}),
    )
    .await;
    assert_eq!(fields(&not_rsa), ["public_key"]);
    let garbage = post(
        &api,
        json!({"type": "jwt", "key": "kid-4", "algorithm": "ES256", "public_key": "nope"}),
    )
    .await;
    assert_eq!(fields(&garbage), ["public_key"]);
    let dup = post(
        &api,
        json!({"type": "jwt", "key": "kid-1", "algorithm": "ES256", "public_key": p256}),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
}

#[sqlx::test(migrations = false)]
async fn deleting_the_consumer_deletes_its_credentials_in_one_version(pool: PgPool) {
    let api = with_alice(pool).await;
    for _ in 0..3 {
        assert_eq!(
            post(&api, json!({"type": "key-auth"})).await.status,
            StatusCode::CREATED
        );
    }
    // Paging.
    let page = api
        .call(Method::GET, &format!("{CREDS}?limit=2"), None)
        .await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let next = page.body["next"].as_str().unwrap();
    let rest = api
        .call(Method::GET, &format!("{CREDS}?after={next}"), None)
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);

    let before = api.state.publisher.current().version;
    let del = api
        .call(Method::DELETE, "/api/v1/consumers/alice", None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(del.version, Some(before + 1), "one version");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM credentials")
        .fetch_one(api.state.store.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
    let wire = api.state.publisher.current();
    assert!(wire.wire.config.as_ref().unwrap().consumers.is_empty());
    let gone = api.call(Method::GET, CREDS, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = false)]
async fn delete_if_match_ownership_and_roles(pool: PgPool) {
    let api = with_alice(pool).await;
    let created = post(&api, json!({"type": "key-auth"})).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let one = format!("{CREDS}/{id}");

    // Another consumer's path does not reach it.
    api.call(
        Method::POST,
        "/api/v1/consumers",
        Some(json!({"username": "bob"})),
    )
    .await;
    let other = api
        .call(
            Method::GET,
            &format!("/api/v1/consumers/bob/credentials/{id}"),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call(Method::GET, &format!("{CREDS}/nope"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let reader = api.call_as(Some(READER), Method::GET, &one, None).await;
    assert_eq!(reader.status, StatusCode::OK);
    let forbidden = api
        .call_as(
            Some(READER),
            Method::POST,
            CREDS,
            Some(json!({"type": "key-auth"})),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let no_put = api
        .call(Method::PUT, &one, Some(json!({"type": "key-auth"})))
        .await;
    assert_eq!(
        no_put.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "rotate = create + delete"
    );

    let stale = api
        .call_with(
            Some(ADMIN),
            &[("if-match", "\"stale\"")],
            Method::DELETE,
            &one,
            None,
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let etag = reader.etag.unwrap();
    let del = api
        .call_with(
            Some(ADMIN),
            &[("if-match", &etag)],
            Method::DELETE,
            &one,
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(del.version.is_some());
    assert_eq!(
        api.call(Method::GET, &one, None).await.status,
        StatusCode::NOT_FOUND
    );
}
