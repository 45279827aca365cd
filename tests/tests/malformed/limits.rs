//! Class B limits (HARDENING §3 B 15–17), `X-Request-Id`, and invalid
//! upstream answers (§3 A 14).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use turnpike_tests::raw::{RawConn, RawResponse, Read};
use turnpike_tests::wait_for;

use super::{Case, Expect, FORWARDED, Setup, run_all};

fn get_with(name: &str, target_suffix: &str, headers: &str) -> Vec<u8> {
    format!("GET /c/{name}/{target_suffix} HTTP/1.1\r\nHost: h\r\n{headers}\r\n").into_bytes()
}

fn headers(n: usize) -> String {
    (0..n).map(|i| format!("X-H{i}: v\r\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_and_long_targets_414() {
    let s = Setup::start(&[]).await;
    let target_8k = "a".repeat(8192 - "/c/target-8k/".len());
    let cases = vec![
        // Host + 99 = 100 headers: the limit; one more is 431.
        Case::new(
            "headers-100",
            get_with("headers-100", "", &headers(99)),
            FORWARDED,
        ),
        Case::new(
            "headers-101",
            get_with("headers-101", "", &headers(100)),
            Expect::Status(431),
        ),
        Case::new(
            "header-line-64k",
            get_with(
                "header-line-64k",
                "",
                &format!("X-Big: {}\r\n", "a".repeat(64 * 1024)),
            ),
            Expect::Status(431),
        ),
        Case::new(
            "headers-60k-total",
            get_with(
                "headers-60k-total",
                "",
                &format!("X-Big: {}\r\n", "a".repeat(60 * 1024)),
            ),
            FORWARDED,
        ),
        Case::new(
            "target-8k",
            get_with("target-8k", &target_8k, ""),
            Expect::Forwarded {
                target: Box::leak(format!("/c/target-8k/{target_8k}").into_boxed_str()),
                admin: false,
                closes: false,
            },
        ),
        Case::new(
            "target-16k",
            get_with("target-16k", &"a".repeat(16 * 1024), ""),
            Expect::Status(414),
        ),
        // Past the 64 KiB head buffer hyper answers first, with 431.
        Case::new(
            "target-70k",
            get_with("target-70k", &"a".repeat(70 * 1024), ""),
            Expect::Status(431),
        ),
    ];
    run_all(&s, &cases).await;
}

/// A simple request on a fresh connection; its answer.
async fn ask(addr: &str, target: &str, extra: &str) -> RawResponse {
    let mut c = RawConn::connect(addr).await;
    c.send(format!("GET {target} HTTP/1.1\r\nHost: h\r\n{extra}\r\n").as_bytes())
        .await;
    match c.read().await {
        Read::Response(r) => r,
        Read::Closed => panic!("{target}: closed without an answer"),
    }
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_kept_or_generated_and_on_every_answer() {
    let s = Setup::start(&[]).await;
    // None given: generated, the same upstream and back.
    let r = ask(&s.addr, "/c/rid-none/", "").await;
    let id = r.header("x-request-id").unwrap();
    assert!(is_generated(id), "{id}");
    assert_eq!(r.header("x-seen-request-id"), Some(id));
    // A sane one is passed through both ways.
    let r = ask(&s.addr, "/c/rid-sane/", "X-Request-Id: abc-123.XYZ_~\r\n").await;
    assert_eq!(r.header("x-request-id"), Some("abc-123.XYZ_~"));
    assert_eq!(r.header("x-seen-request-id"), Some("abc-123.XYZ_~"));
    // 200 characters pass, 201 do not; nor spaces, nor two ids.
    let max = "r".repeat(200);
    let r = ask(&s.addr, "/c/rid-200/", &format!("X-Request-Id: {max}\r\n")).await;
    assert_eq!(r.header("x-request-id"), Some(max.as_str()));
    for (name, extra) in [
        ("rid-201", format!("X-Request-Id: {}\r\n", "r".repeat(201))),
        ("rid-space", "X-Request-Id: a b\r\n".to_owned()),
        (
            "rid-two",
            "X-Request-Id: a\r\nX-Request-Id: b\r\n".to_owned(),
        ),
    ] {
        let r = ask(&s.addr, &format!("/c/{name}/"), &extra).await;
        let id = r.header("x-request-id").unwrap();
        assert!(is_generated(id), "{name}: {id}");
        assert_eq!(r.header("x-seen-request-id"), Some(id), "{name}");
    }
    // The proxy's own answers carry it too, in the header and the body.
    for (target, extra, status) in [
        ("/c/rid-error/a%2Fb", "", 400),
        ("/c/rid-error-given/a%2Fb", "X-Request-Id: given-1\r\n", 400),
        (&*format!("/c/rid-414/{}", "a".repeat(9000)), "", 414),
        ("/bad-response/cl-te/rid", "X-Request-Id: given-2\r\n", 502),
    ] {
        let r = ask(&s.addr, target, extra).await;
        assert_eq!(r.status, status, "{target}");
        let id = r.header("x-request-id").unwrap().to_owned();
        let body = r.json();
        assert_eq!(body["request_id"], id.as_str(), "{target}: {body}");
        assert!(body["message"].is_string(), "{body}");
        if let Some(given) = extra.strip_prefix("X-Request-Id: ") {
            assert_eq!(id, given.trim());
        } else {
            assert!(is_generated(&id));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_upstream_answers_are_502_and_their_connection_is_dropped() {
    let s = Setup::start(&[]).await;
    for kind in [
        "cl-te",
        "two-cl",
        "same-cl-twice",
        "cl-list",
        "bare-cr",
        "obs-fold",
        "bad-cl",
    ] {
        let target = format!("/bad-response/{kind}/");
        let r = ask(&s.addr, &target, "").await;
        assert_eq!(r.status, 502, "{kind}: {r:?}");
        assert!(r.json()["message"].is_string());
        let bad = s.main.matching(&target);
        assert_eq!(bad.len(), 1, "{kind}");
        let bad_conn = bad[0].conn;
        // The connection that carried the bad answer is never used again.
        for i in 0..4 {
            let r = ask(&s.addr, &format!("/c/after-{kind}-{i}/"), "").await;
            assert_eq!(r.status, 200, "{kind}");
            let conn: usize = r.header("x-upstream-conn").unwrap().parse().unwrap();
            assert_ne!(conn, bad_conn, "{kind}: the bad connection was reused");
        }
    }
    // A 204 followed by stray bytes: the 204 is fine to pass on; the stray
    // bytes must never be read as the answer to a later request.
    let r = ask(&s.addr, "/bad-response/204-body/", "").await;
    assert_eq!(r.status, 204);
    for i in 0..4 {
        let target = format!("/c/after-204-body-{i}/");
        let r = ask(&s.addr, &target, "").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("x-seen-path"),
            Some(target.as_str()),
            "a forged answer was served"
        );
    }
}

/// An answer's fields reach an HTTP/1 client as the upstream sent them
/// (passed as bytes: `proxy::h1::passed`) but for the hop-by-hop ones,
/// those `Connection` names, and the upstream's `X-Request-Id`; a head
/// with bare LF line endings is re-written with CRLF; trailers when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_fields_pass_without_hop_by_hop_ones_or_a_second_request_id() {
    let s = Setup::start(&[]).await;
    let r = ask(
        &s.addr,
        "/bad-response/own-fields/",
        "X-Request-Id: mine\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let named = |n: &str| -> Vec<&str> {
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(named("x-request-id"), ["mine"]);
    assert_eq!(named("x-kept"), ["1", "2"]);
    assert!(
        named("keep-alive").is_empty() && named("x-secret").is_empty(),
        "{r:?}"
    );
    assert_eq!(r.body, b"ok");
    let r = ask(&s.addr, "/bad-response/lf-endings/", "").await;
    assert_eq!((r.status, r.header("x-kept")), (200, Some("1")), "{r:?}");
    assert_eq!(r.body, b"ok");
    // Trailers reach an HTTP/1 client that asked for them (`TE: trailers`),
    // without the fields a trailer must not carry; one that did not ask
    // gets none.
    let r = ask(&s.addr, "/bad-response/trailers/", "TE: trailers\r\n").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]), "{r:?}");
    assert_eq!(r.trailers, [("x-checksum".to_owned(), "abc".to_owned())]);
    let r = ask(&s.addr, "/bad-response/trailers/", "").await;
    assert_eq!((r.status, r.trailers.len()), (200, 0), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_heads_are_cut_at_the_header_timeout_and_idle_clients_kept() {
    let s = Setup::start(&[]).await;
    // A keep-alive client that made one request and then stays idle.
    let mut idle = RawConn::connect(&s.addr).await;
    idle.send(b"GET /c/idle-1/ HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert!(matches!(idle.read().await, Read::Response(r) if r.status == 200));

    let start = Instant::now();
    // Connects and sends nothing (not even enough to pick HTTP/1 or 2).
    let silent = tokio::spawn({
        let addr = s.addr.clone();
        async move {
            let mut c = RawConn::connect(&addr).await;
            assert!(matches!(c.read().await, Read::Closed));
            start.elapsed()
        }
    });
    // Sends a head one byte every 500 ms, never finishing it in time.
    let slowloris = tokio::spawn({
        let addr = s.addr.clone();
        async move {
            let mut c = RawConn::connect(&addr).await;
            let head = b"GET /c/slowloris/ HTTP/1.1\r\nHost: h\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for b in head {
                if !c.send(&[*b]).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            start.elapsed()
        }
    });
    let silent = silent.await.unwrap();
    let slow = slowloris.await.unwrap();
    for (what, t) in [("silent", silent), ("slowloris", slow)] {
        assert!(
            t >= Duration::from_secs(9) && t < Duration::from_secs(14),
            "{what} closed after {t:?}, want ~10 s"
        );
    }
    // Idle for longer than the header timeout, the keep-alive client is
    // still served (the idle timeout is 60 s).
    assert!(start.elapsed() > Duration::from_secs(10));
    idle.send(b"GET /c/idle-2/ HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert!(matches!(idle.read().await, Read::Response(r) if r.status == 200));
    assert!(s.main.matching("/slowloris/").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_and_existing_ones_served() {
    let s = Setup::start(&["--max-connections", "3"]).await;
    let mut open = Vec::new();
    for i in 0..3 {
        let mut c = RawConn::connect(&s.addr).await;
        c.send(format!("GET /c/cap-{i}/ HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .await;
        assert!(matches!(c.read().await, Read::Response(r) if r.status == 200));
        open.push(c);
    }
    // The fourth is refused at once: a 503 or a plain close.
    let refused_at = Instant::now();
    let mut extra = RawConn::connect(&s.addr).await;
    extra
        .send(b"GET /c/cap-extra/ HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    match extra.read().await {
        Read::Closed => {}
        Read::Response(r) => assert_eq!(r.status, 503),
    }
    assert!(refused_at.elapsed() < Duration::from_secs(2));
    assert!(s.main.matching("/cap-extra/").is_empty());
    // The three are still served.
    for (i, c) in open.iter_mut().enumerate() {
        c.send(format!("GET /c/cap-again-{i}/ HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .await;
        assert!(matches!(c.read().await, Read::Response(r) if r.status == 200));
    }
    // One leaves: a new client gets its place.
    drop(open.pop());
    wait_for("a freed slot", Duration::from_secs(10), || async {
        let mut c = RawConn::connect(&s.addr).await;
        c.send(b"GET /c/cap-after/ HTTP/1.1\r\nHost: h\r\n\r\n")
            .await;
        matches!(c.read().await, Read::Response(r) if r.status == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_still_works_under_the_limits() {
    let s = Setup::start(&[]).await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let resp = client
        .get(format!("{}/c/h2/", s.dp.proxy).parse().unwrap())
        .await
        .expect("h2 request");
    assert_eq!(resp.status(), 200);
    assert!(is_generated(
        resp.headers()["x-request-id"].to_str().unwrap()
    ));
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    // A path without a leading '/' cannot be sent by this client; an encoded
    // slash shows the same refusal over HTTP/2.
    let resp = client
        .get(format!("{}/c/h2/a%2Fb", s.dp.proxy).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
