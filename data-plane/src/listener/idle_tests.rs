//! The deadlines of `IdleIo` under tokio's paused clock: each phase's
//! timeout fires when due and not before.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

const HEAD: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(60);

fn pair() -> (IdleIo<DuplexStream>, DuplexStream, Arc<Activity>) {
    let (server, client) = tokio::io::duplex(1024);
    let activity = Arc::new(Activity::default());
    (
        IdleIo::new(server, activity.clone(), HEAD, IDLE),
        client,
        activity,
    )
}

/// A request in flight until the returned response is dropped.
async fn request(activity: &Arc<Activity>, version: Version) -> Response<Tracked<Full<Bytes>>> {
    track(activity, version, async {
        Ok(Response::new(Full::new(Bytes::new())))
    })
    .await
    .unwrap()
}

/// Reads until an error; returns its kind and when it came.
async fn read_until_error(io: &mut IdleIo<DuplexStream>) -> (io::ErrorKind, Instant) {
    let mut buf = [0u8; 64];
    loop {
        match io.read(&mut buf).await {
            Ok(0) => panic!("unexpected EOF"),
            Ok(_) => continue,
            Err(e) => return (e.kind(), Instant::now()),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_at_the_header_timeout() {
    let (mut io, _client, _) = pair();
    let start = Instant::now();
    let (kind, at) = read_until_error(&mut io).await;
    assert_eq!(kind, io::ErrorKind::TimedOut);
    assert_eq!(at - start, HEAD);
}

#[tokio::test(start_paused = true)]
async fn a_slow_head_is_cut_at_the_header_timeout_even_while_bytes_trickle() {
    let (mut io, mut client, _) = pair();
    let start = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if client.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let (kind, at) = read_until_error(&mut io).await;
    assert_eq!(kind, io::ErrorKind::TimedOut);
    assert_eq!(at - start, HEAD);
    trickle.abort();
}

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_is_never_timed_out_by_the_connection() {
    let (mut io, _client, activity) = pair();
    let resp = request(&activity, Version::HTTP_11).await;
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(600), io.read(&mut buf)).await;
    assert!(read.is_err(), "still waiting after 10 min: {read:?}");
    drop(resp);
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_gets_the_idle_timeout_then_a_head_deadline() {
    let (mut io, mut client, activity) = pair();
    // One request, answered: the connection is idle from here.
    drop(request(&activity, Version::HTTP_11).await);
    let mut buf = [0u8; 8];
    assert!(
        tokio::time::timeout(Duration::from_secs(30), io.read(&mut buf))
            .await
            .is_err(),
        "idle for 30 s is fine"
    );
    // The next request's first bytes arrive: its head is due in 10 s.
    client.write_all(b"GET").await.unwrap();
    assert_eq!(io.read(&mut buf).await.unwrap(), 3);
    let since = Instant::now();
    let (kind, at) = read_until_error(&mut io).await;
    assert_eq!(kind, io::ErrorKind::TimedOut);
    assert_eq!(at - since, HEAD);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_at_the_idle_timeout() {
    let (mut io, _client, activity) = pair();
    drop(request(&activity, Version::HTTP_11).await);
    // The first read after the request notices the connection went idle.
    let start = Instant::now();
    let (kind, at) = read_until_error(&mut io).await;
    assert_eq!(kind, io::ErrorKind::TimedOut);
    assert_eq!(at - start, IDLE);
}

#[tokio::test(start_paused = true)]
async fn http2_frames_without_a_stream_do_not_reset_the_idle_timeout() {
    let (mut io, mut client, activity) = pair();
    drop(request(&activity, Version::HTTP_2).await);
    let start = Instant::now();
    let pinger = tokio::spawn(async move {
        for _ in 0..100 {
            if client.write_all(b"P").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let (kind, at) = read_until_error(&mut io).await;
    assert_eq!(kind, io::ErrorKind::TimedOut);
    assert_eq!(
        at - start,
        IDLE,
        "pings neither reset it nor start a head deadline"
    );
    pinger.abort();
}

#[tokio::test(start_paused = true)]
async fn an_upgraded_connection_held_in_flight_has_no_deadline() {
    let (mut io, mut client, activity) = pair();
    // The 101's request ends; the tunnel's hold keeps the connection busy.
    let resp = request(&activity, Version::HTTP_11).await;
    let hold = InFlight::hold(&activity);
    drop(resp);
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(30)).await;
            client.write_all(b"x").await.unwrap();
        }
        client
    });
    let mut buf = [0u8; 1];
    for _ in 0..10 {
        io.read_exact(&mut buf).await.unwrap();
    }
    assert!(Instant::now() - start >= Duration::from_secs(300));
    let _client = writer.await.unwrap();
    // Without the hold, the idle timeout applies again.
    drop(hold);
    let start = Instant::now();
    let (kind, at) = read_until_error(&mut io).await;
    assert_eq!(kind, io::ErrorKind::TimedOut);
    assert_eq!(at - start, IDLE);
}
