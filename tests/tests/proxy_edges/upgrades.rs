//! Upgrades through the proxy: a WebSocket over the TLS listener, spliced
//! both ways; a `101` the client did not ask for (or naming another
//! protocol) is a `502`.

use super::*;

/// A test CA signing one leaf certificate.
fn ca_and_leaf(san: &str) -> (rustls::pki_types::CertificateDer<'static>, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "turnpike test CA");
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![san.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, san);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (issuer.der().clone(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls_is_spliced() {
    let upstream = RawUpstream::start().await;
    let tls_port = free_port();
    let args = ["--proxy-tls-listen".into(), format!("127.0.0.1:{tls_port}")];
    let (_db, cp, dp, _) = setup(&upstream.addr, &args).await;
    let (ca, cert, key) = ca_and_leaf("ws.example.test");
    let uploaded = cp
        .api(
            Method::POST,
            "/certificates",
            Some(json!({"cert": cert, "key": key, "snis": ["ws.example.test"]})),
        )
        .await;
    assert_status(&uploaded, StatusCode::CREATED);
    dp.wait_for_version(uploaded.version()).await;

    // HTTP/1.1 by ALPN: WebSockets over h2 (RFC 8441) are not supported.
    let mut roots = RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("ws.example.test").unwrap();
    let mut ws = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(ws.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    ws.write_all(upgrade_request("/ws/tls", "ws.example.test").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut ws).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        header(&head, "upgrade").as_deref(),
        Some("websocket"),
        "{head}"
    );
    assert!(
        header(&head, "connection").is_some_and(|c| c.eq_ignore_ascii_case("upgrade")),
        "{head}"
    );
    assert_eq!(
        header(&head, "sec-websocket-accept").as_deref(),
        Some(ACCEPT),
        "{head}"
    );

    // Both ways through TLS and the tunnel.
    assert_eq!(read_exactly(&mut ws, GREETING.len()).await, GREETING);
    round_trip(&mut ws, b"a message through TLS, in pieces").await;
    round_trip(&mut ws, &[0x81, 0x05, 0, 1, 2, 0xff, 0xfe]).await;

    // The upstream saw one upgrade, marked https.
    let sent = upstream.heads_with("/ws/tls");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("\r\nupgrade: websocket\r\n"),
        "{}",
        sent[0]
    );
    assert!(
        sent[0].contains("\r\nconnection: upgrade\r\n"),
        "{}",
        sent[0]
    );
    assert!(
        sent[0].contains("\r\nx-forwarded-proto: https\r\n"),
        "{}",
        sent[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_the_client_did_not_ask_for_is_502() {
    let upstream = RawUpstream::start().await;
    let (_db, _cp, dp, version) = setup(&upstream.addr, &[]).await;
    dp.wait_for_version(version).await;
    let addr = dp.proxy.trim_start_matches("http://");

    // The control: the same upstream's correct 101 goes through.
    let ok = answer_then_sentinel(addr, &upgrade_request("/ws/control", "h"), "/ok/0").await;
    assert_eq!(ok.status, 101, "{ok:?}");

    // A WebSocket asked, another protocol (or none) named; no upgrade asked
    // at all. The upstream switched each time, so each of its connections
    // must be dropped, never reused: the sentinel after each answer is
    // served on a fresh one (a reused one would never answer: 504).
    let cases = [
        ("h2c", upgrade_request("/h2c/ws", "h")),
        ("no Upgrade", upgrade_request("/no-upgrade/ws", "h")),
        (
            "plain GET",
            "GET /plain/get HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(),
        ),
    ];
    for (i, (case, request)) in cases.iter().enumerate() {
        let answer = answer_then_sentinel(addr, request, &format!("/ok/{}", i + 1)).await;
        assert_eq!(answer.status, 502, "{case}: {answer:?}");
        assert!(
            answer.header("upgrade").is_none(),
            "{case}: an Upgrade went back: {answer:?}"
        );
        // The proxy's own answer, for this reason (not a failed exchange).
        let message = answer.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("switched protocols"), "{case}: {answer:?}");
    }
    for path in ["/h2c/ws", "/no-upgrade/ws", "/plain/get"] {
        let sent = upstream.heads_with(path);
        assert_eq!(sent.len(), 1, "{path}: {sent:?}");
    }
    // The plain GET asked for nothing, and nothing was asked for it.
    let plain = &upstream.heads_with("/plain/get")[0];
    assert!(!plain.contains("\r\nupgrade:"), "{plain}");
    for i in 1..=3 {
        assert_eq!(upstream.heads_with(&format!("/ok/{i} ")).len(), 1);
    }
}
