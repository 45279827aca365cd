//! A write to a target that stops reading times out after `write_ms`.

use super::*;

/// A request body of `left` bytes in 64 KiB chunks, made as it is sent.
struct Filler {
    left: usize,
}

impl Body for Filler {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        const CHUNK: usize = 64 * 1024;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_reading_fails_the_request_after_write_ms() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);

    // Accepts connections and keeps them open, never reading a byte.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let upstream = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });

    let read_ms = 30_000;
    configure(
        &cp,
        &dp,
        json!({
            "targets": [{"address": addr}],
            "timeouts": {"write_ms": 300, "read_ms": read_ms},
        }),
    )
    .await;

    // 16 MiB, far more than the loopback socket buffers take (about 4 MiB
    // here), streamed: the proxy's writes stall once they are full.
    let tcp = TcpStream::connect(dp.proxy.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/upload")
        .header(http::header::HOST, "gateway.test")
        .body(Filler {
            left: 16 * 1024 * 1024,
        })
        .unwrap();
    let started = Instant::now();
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .expect("an answer before the read timeout")
        .expect("the proxy answers while the body is still unsent");
    let elapsed = started.elapsed();
    assert!(accepted.load(Ordering::SeqCst) >= 1, "the proxy connected");
    assert_eq!(
        resp.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "a stalled write is a timeout (answered after {elapsed:?})"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}: write_ms is 300, read_ms {read_ms}"
    );
    upstream.abort();
}
