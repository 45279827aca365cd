//! Request and response hygiene at the proxy: bare LF line ends read as
//! CRLF and forwarded once; an upstream's hop-by-hop fields kept from the
//! client.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_lf_line_ends_are_read_as_crlf_and_forwarded_once() {
    let upstream = CountingUpstream::start().await;
    let (_db, _cp, dp, version) = setup(&upstream.addr, &[]).await;
    dp.wait_for_version(version).await;
    let addr = dp.proxy.trim_start_matches("http://");

    // docs/proxy.md: a bare LF ends a line; the upstream gets the fields as
    // hyper read them, re-serialised with CRLF.
    let mut conn = RawConn::connect(addr).await;
    assert!(
        conn.send(b"GET /lf/one HTTP/1.1\nHost: x\nX-A: a\nX-B: b\r\nX-C: c\n\n")
            .await
    );
    let Read::Response(first) = conn.read().await else {
        panic!("closed without an answer");
    };
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-seen-path"), Some("/lf/one"));
    assert!(!first.closes(), "{first:?}");

    // The connection goes on: the next request (bare LF again, then CRLF)
    // is parsed from where the first ended.
    assert!(conn.send(b"GET /lf/two HTTP/1.1\nHost: x\n\n").await);
    let Read::Response(second) = conn.read().await else {
        panic!("closed after the first request");
    };
    assert_eq!(second.header("x-seen-path"), Some("/lf/two"), "{second:?}");
    assert!(
        conn.send(b"GET /lf/three HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
    );
    let Read::Response(third) = conn.read().await else {
        panic!("closed after the second request");
    };
    assert_eq!(third.header("x-seen-path"), Some("/lf/three"), "{third:?}");

    // Each arrived once, as a well-formed CRLF request (the counting
    // upstream parses nothing else), with the fields split at each LF.
    let seen = upstream.requests();
    let targets: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/lf/one", "/lf/two", "/lf/three"]);
    let one = &seen[0];
    assert_eq!(one.header("x-a"), Some("a"), "{one:?}");
    assert_eq!(one.header("x-b"), Some("b"), "{one:?}");
    assert_eq!(one.header("x-c"), Some("c"), "{one:?}");
    for r in &seen {
        assert!(
            r.headers
                .iter()
                .all(|(k, v)| !k.contains(['\r', '\n']) && !v.contains(['\r', '\n'])),
            "{r:?}"
        );
    }
}

/// docs/proxy.md: an upstream's hop-by-hop fields, and the fields its
/// `Connection` names, stay between it and the proxy; the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_hop_by_hop_fields_do_not_reach_the_client() {
    let upstream = RawUpstream::start().await;
    let (_db, _cp, dp, version) = setup(&upstream.addr, &[]).await;
    dp.wait_for_version(version).await;
    let addr = dp.proxy.trim_start_matches("http://");
    let request = "GET /hop/1 HTTP/1.1\r\nHost: h\r\n\r\n";
    let answer = answer_then_sentinel(addr, request, "/ok/after-hop").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, b"ok", "{answer:?}");
    assert_eq!(answer.header("x-kept"), Some("yes"), "{answer:?}");
    for name in [
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "trailer",
        "upgrade",
        "te",
        "x-secret",
    ] {
        assert_eq!(answer.header(name), None, "{name}: {answer:?}");
    }
    // What framing and persistence the client sees are the proxy's own.
    let connection = answer
        .header("connection")
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(!connection.contains("x-secret"), "{answer:?}");
    assert_eq!(upstream.heads_with("/hop/1 ").len(), 1);
}
