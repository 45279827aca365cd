//! Active checks against scripted probes (exact sequences: each probe
//! records the flag as it was when sent) and against a real local HTTP
//! server probed through hyper-util's client. Conditions are polled with a
//! deadline, never assumed after a fixed sleep.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use uuid::Uuid;

use super::*;
use crate::health::HealthRegistry;

const DEADLINE: Duration = Duration::from_secs(10);

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn cfg(unhealthy: u32, healthy: u32) -> ActiveHealthCheck {
    ActiveHealthCheck {
        path: "/health".into(),
        interval_ms: 10,
        timeout_ms: 1000,
        healthy_threshold: healthy,
        unhealthy_threshold: unhealthy,
        expected_statuses: Vec::new(),
    }
}

#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    Hang,
}

/// A probe answering from a script (then `last` forever), recording the
/// target's flag at each call.
struct Script {
    state: Arc<TargetState>,
    replies: Mutex<VecDeque<Reply>>,
    last: Reply,
    seen: Mutex<Vec<bool>>,
}

impl Script {
    fn new(state: &Arc<TargetState>, replies: &[Reply], last: Reply) -> Arc<Script> {
        Arc::new(Script {
            state: state.clone(),
            replies: Mutex::new(replies.iter().copied().collect()),
            last,
            seen: Mutex::default(),
        })
    }

    fn probe(self: &Arc<Self>) -> ProbeFn {
        let s = self.clone();
        Arc::new(move |_, path| {
            assert_eq!(path.as_str(), "/health");
            s.seen
                .lock()
                .unwrap()
                .push(s.state.healthy.load(Ordering::Relaxed));
            let reply = s.replies.lock().unwrap().pop_front().unwrap_or(s.last);
            Box::pin(async move {
                match reply {
                    Reply::Status(c) => Ok(StatusCode::from_u16(c).unwrap()),
                    Reply::Hang => std::future::pending().await,
                }
            })
        })
    }

    fn seen(&self) -> Vec<bool> {
        self.seen.lock().unwrap().clone()
    }
}

fn target(state: &Arc<TargetState>) -> Vec<(Authority, Arc<TargetState>)> {
    vec![("a.test:80".parse().unwrap(), state.clone())]
}

fn healthy(s: &TargetState) -> bool {
    s.healthy.load(Ordering::Relaxed)
}

#[tokio::test]
async fn thresholds_take_a_target_out_and_back() {
    let state = Arc::new(TargetState::default());
    let (bad, good) = (Reply::Status(500), Reply::Status(200));
    let script = Script::new(&state, &[bad, bad, bad], good);
    let _c = ActiveChecker::start("u", &cfg(3, 2), target(&state), script.probe());
    wait_for("7 probes", || script.seen().len() >= 7).await;
    // Out after the 3rd failure, back after the 2nd success.
    assert_eq!(
        script.seen()[..7],
        [true, true, true, false, false, true, true]
    );
}

#[tokio::test]
async fn a_timeout_counts_as_a_failure() {
    let state = Arc::new(TargetState::default());
    let script = Script::new(&state, &[Reply::Hang, Reply::Hang], Reply::Status(200));
    let mut c = cfg(2, 1);
    c.timeout_ms = 20;
    let _c = ActiveChecker::start("u", &c, target(&state), script.probe());
    wait_for("4 probes", || script.seen().len() >= 4).await;
    assert_eq!(script.seen()[..4], [true, true, false, true]);
}

#[tokio::test]
async fn expected_statuses_are_honoured() {
    let a = Arc::new(TargetState::default());
    let b = Arc::new(TargetState::default());
    let sa = Script::new(&a, &[], Reply::Status(200));
    let sb = Script::new(&b, &[], Reply::Status(204));
    let mut c = cfg(1, 1);
    c.expected_statuses = vec![204];
    let _ca = ActiveChecker::start("u", &c, target(&a), sa.probe());
    let _cb = ActiveChecker::start("u", &c, target(&b), sb.probe());
    wait_for("a out", || !healthy(&a)).await;
    wait_for("3 probes of b", || sb.seen().len() >= 3).await;
    assert!(sb.seen().iter().all(|h| *h), "204 is expected: b stays in");
}

#[test]
fn default_expected_statuses_are_2xx_and_3xx() {
    let ok = |e: &[u16], c: u16| status_ok(e, StatusCode::from_u16(c).unwrap());
    assert!(ok(&[], 200) && ok(&[], 204) && ok(&[], 302) && ok(&[], 399));
    assert!(!ok(&[], 101) && !ok(&[], 404) && !ok(&[], 500));
    assert!(ok(&[500], 500) && !ok(&[500], 200));
}

#[tokio::test]
async fn the_newest_checker_owns_the_flag_and_the_last_one_restores_it() {
    let state = Arc::new(TargetState::default());
    let failing = Script::new(&state, &[], Reply::Status(500));
    let old = ActiveChecker::start("u", &cfg(1, 1), target(&state), failing.probe());
    wait_for("out", || !healthy(&state)).await;
    // A reload: the new checker starts before the old one drops; the old
    // one's drop must not put the target back.
    let failing2 = Script::new(&state, &[], Reply::Status(500));
    let new = ActiveChecker::start("u", &cfg(1, 1), target(&state), failing2.probe());
    drop(old);
    assert!(!healthy(&state));
    wait_for("the new checker probing", || !failing2.seen().is_empty()).await;
    assert!(!healthy(&state));
    // Checks turned off: the last checker's drop puts the target back.
    drop(new);
    assert!(healthy(&state));
}

#[tokio::test]
async fn a_dropped_newer_checker_hands_back_to_the_older() {
    let state = Arc::new(TargetState::default());
    let good = Script::new(&state, &[], Reply::Status(200));
    let running = ActiveChecker::start("u", &cfg(1, 1), target(&state), good.probe());
    // A config that failed to apply: its checker marks the target out, then drops.
    let bad = Script::new(&state, &[], Reply::Status(500));
    let failed = ActiveChecker::start("u", &cfg(1, 1), target(&state), bad.probe());
    wait_for("out", || !healthy(&state)).await;
    let idle_calls = good.seen().len();
    drop(failed);
    // The older checker resumes and its probes bring the target back.
    wait_for("back", || healthy(&state)).await;
    assert!(good.seen().len() > idle_calls);
    drop(running);
}

#[tokio::test]
async fn the_registry_reuses_a_checker_while_config_and_targets_are_unchanged() {
    let reg = HealthRegistry::default();
    let id = Uuid::new_v4();
    let state = Arc::new(TargetState::default());
    let first = Script::new(&state, &[], Reply::Status(200));
    let a = reg.active(id, "u", &cfg(3, 2), target(&state), first.probe());
    let second = Script::new(&state, &[], Reply::Status(200));
    let b = reg.active(id, "u", &cfg(3, 2), target(&state), second.probe());
    assert!(Arc::ptr_eq(&a, &b));
    // The reused checker probes through the newest probe.
    wait_for("the new probe used", || !second.seen().is_empty()).await;
    let c = reg.active(id, "u", &cfg(4, 2), target(&state), first.probe());
    assert!(!Arc::ptr_eq(&a, &c), "another config, another checker");
    let other = Arc::new(TargetState::default());
    let d = reg.active(id, "u", &cfg(3, 2), target(&other), first.probe());
    assert!(!Arc::ptr_eq(&a, &d), "other target states, another checker");
    let gone = Arc::downgrade(&a);
    drop((a, b));
    assert!(
        gone.upgrade().is_none(),
        "the registry holds no strong reference"
    );
}

/// A local HTTP server answering `status`, counting requests.
struct Server {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicUsize>,
}

async fn server(status: u16) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let status = Arc::new(AtomicU16::new(status));
    let requests = Arc::new(AtomicUsize::new(0));
    let (st, rq) = (status.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((io, _)) = listener.accept().await else {
                return;
            };
            let (st, rq) = (st.clone(), rq.clone());
            let svc = hyper::service::service_fn(move |_req| {
                rq.fetch_add(1, Ordering::SeqCst);
                let code = StatusCode::from_u16(st.load(Ordering::SeqCst)).unwrap();
                let mut res = http::Response::new(Empty::<Bytes>::new());
                *res.status_mut() = code;
                async move { Ok::<_, Infallible>(res) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc),
            );
        }
    });
    Server {
        addr,
        status,
        requests,
    }
}

/// A probe through hyper-util's pooled client, holding `alive` so a test
/// can see when every copy of the probe is gone.
fn http_probe(alive: Arc<AtomicBool>) -> ProbeFn {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    Arc::new(move |authority, path| {
        let client = client.clone();
        let _alive = &alive;
        Box::pin(async move {
            let uri = http::Uri::builder()
                .scheme("http")
                .authority(authority)
                .path_and_query(path)
                .build()
                .map_err(|e| e.to_string())?;
            let res = client.get(uri).await.map_err(|e| e.to_string())?;
            Ok(res.status())
        })
    })
}

fn local(s: &Server, state: &Arc<TargetState>) -> Vec<(Authority, Arc<TargetState>)> {
    vec![(s.addr.to_string().parse().unwrap(), state.clone())]
}

#[tokio::test]
async fn a_real_upstream_goes_out_on_500_and_back_on_200() {
    let srv = server(500).await;
    let state = Arc::new(TargetState::default());
    let probe = http_probe(Arc::default());
    let _c = ActiveChecker::start("u", &cfg(3, 2), local(&srv, &state), probe);
    wait_for("out", || !healthy(&state)).await;
    assert!(srv.requests.load(Ordering::SeqCst) >= 3);
    srv.status.store(200, Ordering::SeqCst);
    let before = srv.requests.load(Ordering::SeqCst);
    wait_for("back", || healthy(&state)).await;
    assert!(srv.requests.load(Ordering::SeqCst) >= before + 2);
}

#[tokio::test]
async fn dropping_the_checker_stops_probing_and_restores_the_flag() {
    let srv = server(500).await;
    let state = Arc::new(TargetState::default());
    let alive = Arc::new(AtomicBool::new(true));
    let c = ActiveChecker::start(
        "u",
        &cfg(1, 1),
        local(&srv, &state),
        http_probe(alive.clone()),
    );
    wait_for("out", || !healthy(&state)).await;
    drop(c);
    assert!(healthy(&state), "no checker left: back in rotation");
    // The aborted tasks release the probe (and its client) once they stop.
    wait_for("the probe dropped", || Arc::strong_count(&alive) == 1).await;
    let count = srv.requests.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await; // 10 intervals
    assert_eq!(srv.requests.load(Ordering::SeqCst), count);
}
