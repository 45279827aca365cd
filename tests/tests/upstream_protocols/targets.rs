//! The data plane to its targets: TLS verified against the upstream's CA
//! (or not at all), HTTP/2 by ALPN over TLS, h2c with prior knowledge.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verifies_targets_against_the_upstreams_ca() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let ca = Ca::new("upstream CA");
    let other = Ca::new("another CA");
    let up = Upstream::start(Speaks::Http1, Some(ca.server(b"http/1.1"))).await;
    // One target and no retries: each request makes exactly one attempt.
    let targets = json!([{"address": up.addr}]);

    // The upstream's CA and the name on its certificate: served over TLS.
    configure(
        &cp,
        &dp,
        json!({"targets": targets, "retries": 0, "tls": {"ca": ca.pem(), "server_name": "localhost"}}),
    )
    .await;
    assert_ok_via(&get(&dp, "/verified").await, "HTTP/1.1");
    let seen = up.seen("/verified");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].tls, "over TLS: {seen:?}");
    assert_eq!(seen[0].version, Version::HTTP_11);

    // Another CA: the certificate does not verify, nothing reaches the
    // upstream.
    configure(
        &cp,
        &dp,
        json!({"targets": targets, "retries": 0, "tls": {"ca": other.pem(), "server_name": "localhost"}}),
    )
    .await;
    let refused = get(&dp, "/other-ca").await;
    assert_status(&refused, StatusCode::BAD_GATEWAY);
    assert!(refused.json()["message"].is_string(), "{refused:?}");
    assert!(up.seen("/other-ca").is_empty());

    // The right CA but a name the certificate does not carry: refused too.
    configure(
        &cp,
        &dp,
        json!({"targets": targets, "retries": 0, "tls": {"ca": ca.pem(), "server_name": "elsewhere.test"}}),
    )
    .await;
    assert_status(&get(&dp, "/wrong-name").await, StatusCode::BAD_GATEWAY);
    assert!(up.seen("/wrong-name").is_empty());

    // No verification (and so no CA needed): served again.
    configure(
        &cp,
        &dp,
        json!({"targets": targets, "retries": 0, "tls": {"verify": false}}),
    )
    .await;
    assert_ok_via(&get(&dp, "/unverified").await, "HTTP/1.1");
    assert_eq!(up.seen("/unverified").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_to_the_upstream_over_tls_by_alpn() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let ca = Ca::new("upstream CA");
    // Speaks h2 only, and agrees to no other ALPN protocol.
    let up = Upstream::start(Speaks::Http2, Some(ca.server(b"h2"))).await;

    configure(
        &cp,
        &dp,
        json!({
            "targets": [{"address": up.addr}],
            "protocol": "http2",
            "tls": {"ca": ca.pem(), "server_name": "localhost"},
        }),
    )
    .await;
    assert_ok_via(&get(&dp, "/h2").await, "HTTP/2.0");
    let seen = up.seen("/h2");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].version, Version::HTTP_2);
    assert!(seen[0].tls, "over TLS: {seen:?}");
    assert_eq!(seen[0].alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_to_the_upstream_in_cleartext_with_prior_knowledge() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let up = Upstream::start(Speaks::Http2, None).await;
    let targets = json!([{"address": up.addr}]);

    // HTTP/1.1 (the default) to an HTTP/2-only server fails...
    configure(&cp, &dp, json!({"targets": targets, "retries": 0})).await;
    assert_status(&get(&dp, "/h1").await, StatusCode::BAD_GATEWAY);
    assert!(up.seen("/h1").is_empty());

    // ...h2c works.
    configure(&cp, &dp, json!({"targets": targets, "protocol": "http2"})).await;
    assert_ok_via(&get(&dp, "/h2c").await, "HTTP/2.0");
    let seen = up.seen("/h2c");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].version, Version::HTTP_2);
    assert!(!seen[0].tls, "cleartext: {seen:?}");
}
