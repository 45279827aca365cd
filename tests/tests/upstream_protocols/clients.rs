//! Clients speaking HTTP/2 to the proxy: h2c on the plain listener, h2 by
//! ALPN on the TLS one.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_speak_http2_to_the_proxy_in_cleartext_and_over_tls() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let tls_port = free_port();
    let dp = DataPlane::start_args(
        &cp.cluster,
        &cp.cluster_token,
        &["--proxy-tls-listen".into(), format!("127.0.0.1:{tls_port}")],
    );
    let up = Upstream::start(Speaks::Http1, None).await;
    configure(&cp, &dp, json!({"targets": [{"address": up.addr}]})).await;
    let ca = Ca::new("proxy CA");
    let (cert, key) = ca.leaf("proxy.example.test");
    let c = cp
        .api(
            Method::POST,
            "/certificates",
            Some(json!({"cert": cert, "key": key, "snis": ["proxy.example.test"]})),
        )
        .await;
    assert_status(&c, StatusCode::CREATED);
    dp.wait_for_version(c.version()).await;

    // h2c with prior knowledge on the plain listener; HTTP/1.1 upstream.
    let h2c = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let req = Request::get(format!("{}/h2c", dp.proxy))
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, h2c.request(req))
        .await
        .expect("an answer in time")
        .expect("the proxy speaks h2c");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "HTTP/1.1", "the upstream got HTTP/1.1");
    assert_eq!(up.seen("/h2c").len(), 1);

    // h2 by ALPN on the TLS listener.
    let tcp = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    let tls = ca
        .connector(b"h2")
        .connect(ServerName::try_from("proxy.example.test").unwrap(), tcp)
        .await
        .expect("TLS handshake with the proxy");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://proxy.example.test/tls-h2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .expect("an answer in time")
        .expect("the proxy answers over h2");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "HTTP/1.1");
    assert_eq!(up.seen("/tls-h2").len(), 1);
}
