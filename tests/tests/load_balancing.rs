//! Load balancing and upstream health end to end (issue 6): real control
//! plane, data plane and echo processes; which target answered is read
//! from the echo's `name`, what the data plane thinks of each target from
//! `GET /upstreams` and `/metrics` on its status port.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use turnpike_tests::{
    Answer, ControlPlane, DataPlane, Db, Echo, Http, assert_status, free_port, fresh_database_url,
    wait_for,
};

/// A control plane on a fresh database and one data plane. Fields drop in
/// order: the processes before the database.
struct Setup {
    cp: ControlPlane,
    dp: DataPlane,
    http: Http,
    _db: Db,
}

async fn setup() -> Setup {
    let (url, db) = fresh_database_url();
    let db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    Setup {
        cp,
        dp,
        http: Http::default(),
        _db: db,
    }
}

impl Setup {
    /// Creates `upstream` and a route named after it for `path`; returns
    /// the version of the route's write.
    async fn create(&self, upstream: Value, path: &str) -> u64 {
        let name = upstream["name"].as_str().unwrap().to_owned();
        let u = self
            .cp
            .api(Method::POST, "/upstreams", Some(upstream))
            .await;
        assert_status(&u, StatusCode::CREATED);
        let r = self
            .cp
            .api(
                Method::POST,
                "/routes",
                Some(json!({"name": name, "paths": [path], "upstream": name})),
            )
            .await;
        assert_status(&r, StatusCode::CREATED);
        r.version()
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.http
            .send(
                Method::GET,
                &format!("{}{path}", self.dp.proxy),
                headers,
                None,
            )
            .await
            .expect("proxy reachable")
    }

    /// A GET that must succeed; the name of the upstream that answered.
    async fn name(&self, path: &str, headers: &[(&str, &str)]) -> String {
        let a = self.get(path, headers).await;
        assert_status(&a, StatusCode::OK);
        a.json()["name"].as_str().unwrap().to_owned()
    }

    /// `n` sequential GETs that must all succeed: answers per upstream name.
    async fn tally(&self, path: &str, n: usize) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            *out.entry(self.name(path, &[]).await).or_default() += 1;
        }
        out
    }

    /// `workers` clients, each sending `each` GETs one after the other
    /// (a closed loop: a client stuck on a slow target sends nothing else
    /// meanwhile), all of which must succeed: answers per upstream name.
    async fn tally_concurrent(
        &self,
        path: &str,
        workers: usize,
        each: usize,
    ) -> BTreeMap<String, usize> {
        let url = format!("{}{path}", self.dp.proxy);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (http, url) = (self.http.clone(), url.clone());
            set.spawn(async move {
                let mut names = Vec::new();
                for _ in 0..each {
                    let a = http.get(&url).await.expect("proxy reachable");
                    assert_status(&a, StatusCode::OK);
                    names.push(a.json()["name"].as_str().unwrap().to_owned());
                }
                names
            });
        }
        let mut out = BTreeMap::new();
        while let Some(names) = set.join_next().await {
            for n in names.unwrap() {
                *out.entry(n).or_default() += 1;
            }
        }
        out
    }

    /// `GET /upstreams` on the status port.
    async fn upstreams(&self) -> Value {
        let a = self
            .http
            .get(&format!("{}/upstreams", self.dp.status))
            .await
            .expect("status port reachable");
        assert_status(&a, StatusCode::OK);
        a.json()
    }

    /// Target `address` of upstream `upstream` in `GET /upstreams`.
    async fn target(&self, upstream: &str, address: &str) -> Value {
        let view = self.upstreams().await;
        let u = view["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == upstream)
            .unwrap_or_else(|| panic!("no upstream {upstream} in {view}"));
        u["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["address"] == address)
            .unwrap_or_else(|| panic!("no target {address} in {u}"))
            .clone()
    }

    /// The `requests` counter of each listed target.
    async fn requests(&self, upstream: &str, addresses: &[&str]) -> Vec<u64> {
        let mut out = Vec::new();
        for a in addresses {
            out.push(self.target(upstream, a).await["requests"].as_u64().unwrap());
        }
        out
    }

    async fn metrics(&self) -> String {
        let a = self
            .http
            .get(&format!("{}/metrics", self.dp.status))
            .await
            .expect("status port reachable");
        assert_status(&a, StatusCode::OK);
        String::from_utf8(a.body.to_vec()).unwrap()
    }
}

fn count(tally: &BTreeMap<String, usize>, name: &str) -> usize {
    tally.get(name).copied().unwrap_or(0)
}

/// An upstream in the test process that answers every request with
/// `{"name": name}` after `delay`: a target that is always slow, whatever
/// the request (the echo's `?delay_ms` applies to every target alike).
struct SlowUpstream {
    addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlowUpstream {
    async fn start(name: &str, delay: Duration) -> SlowUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let body: Arc<str> = json!({ "name": name }).to_string().into();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // Bodyless requests only: a head ends the request.
                        let end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        buf.drain(..end);
                        tokio::time::sleep(delay).await;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SlowUpstream { addr, task }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_target_is_hidden_by_retries_taken_out_and_brought_back() {
    let s = setup().await;
    let a = Echo::start("a").await;
    let mut b = Echo::start("b").await;
    let c = Echo::start("c").await;
    let addrs = [a.addr.as_str(), b.addr.as_str(), c.addr.as_str()];
    let v = s
        .create(
            json!({
                "name": "trio",
                "algorithm": "round_robin",
                "retries": 2,
                "targets": addrs.map(|a| json!({"address": a})),
                "health_checks": {
                    "active": {
                        "path": "/health",
                        "interval_ms": 200,
                        "timeout_ms": 500,
                        "healthy_threshold": 2,
                        "unhealthy_threshold": 2
                    },
                    "passive": {
                        "consecutive_failures": 3,
                        "ejection_ms": 1000,
                        "max_ejection_ms": 2000
                    }
                }
            }),
            "/trio",
        )
        .await;
    s.dp.wait_for_version(v).await;
    let all = s.tally("/trio", 9).await;
    assert_eq!(
        all.values().copied().collect::<Vec<_>>(),
        [3, 3, 3],
        "{all:?}"
    );

    // Killed: retries hide it from the clients.
    b.proc.kill();
    let during = s.tally("/trio", 30).await;
    assert_eq!(count(&during, "b"), 0, "{during:?}");
    assert_eq!(count(&during, "a") + count(&during, "c"), 30, "{during:?}");

    // The active checks take it out.
    wait_for(
        "b unhealthy and out of rotation",
        Duration::from_secs(10),
        || async {
            let t = s.target("trio", &b.addr).await;
            (t["healthy"] == false && t["available"] == false).then_some(())
        },
    )
    .await;
    let t = s.target("trio", &b.addr).await;
    assert!(t["failures"].as_u64().unwrap() >= 1, "{t}");

    // Out of rotation, it gets no attempt at all while the others grow.
    let before = s.requests("trio", &addrs).await;
    let out = s.tally("/trio", 30).await;
    let after = s.requests("trio", &addrs).await;
    assert_eq!(count(&out, "b"), 0, "{out:?}");
    assert_eq!(
        after[1], before[1],
        "b got attempts while out: {before:?} → {after:?}"
    );
    assert!(
        after[0] > before[0] && after[2] > before[2],
        "{before:?} → {after:?}"
    );
    assert_eq!(
        (after[0] - before[0]) + (after[2] - before[2]),
        30,
        "one attempt per request: {before:?} → {after:?}"
    );

    // Back on the same address: in rotation again after the healthy
    // threshold, and served its turns.
    let _revived = Echo::start_on("b-revived", &b.addr).await;
    wait_for(
        "b healthy and in rotation again",
        Duration::from_secs(10),
        || async {
            let t = s.target("trio", &b.addr).await;
            (t["healthy"] == true && t["available"] == true).then_some(())
        },
    )
    .await;
    let back = s.tally("/trio", 9).await;
    assert_eq!(count(&back, "b-revived"), 3, "{back:?}");
    assert_eq!(count(&back, "a"), 3, "{back:?}");
    assert_eq!(count(&back, "c"), 3, "{back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_and_latency_favour_the_fast_target() {
    let s = setup().await;
    let fast = Echo::start("fast").await;
    let slow = SlowUpstream::start("slow", Duration::from_millis(300)).await;
    let targets = json!([{"address": fast.addr}, {"address": slow.addr}]);
    s.create(
        json!({"name": "lc", "algorithm": "least_connections", "targets": targets}),
        "/lc",
    )
    .await;
    let v = s
        .create(
            json!({"name": "lat", "algorithm": "latency", "targets": targets}),
            "/lat",
        )
        .await;
    s.dp.wait_for_version(v).await;

    // Least connections: the slow target's requests pile up in flight, so
    // the fast one takes the next ones. (Forty requests sent in one burst
    // would all be picked before any answer came back, with equal counts
    // in flight: round robin. Eight clients in a closed loop keep the
    // counts apart.)
    let lc = s.tally_concurrent("/lc", 8, 5).await;
    assert_eq!(count(&lc, "fast") + count(&lc, "slow"), 40, "{lc:?}");
    assert!(
        count(&lc, "fast") >= 2 * count(&lc, "slow"),
        "least_connections: {lc:?}"
    );

    // Latency: once both targets have a measured response time (an
    // unmeasured target idle costs 0, so two requests measure both), the
    // slow one costs 300 ms a request and is chosen only when the fast
    // one is far busier.
    let warm = s.tally("/lat", 4).await;
    assert!(count(&warm, "slow") >= 1, "warm-up measured both: {warm:?}");
    let lat = s.tally_concurrent("/lat", 8, 5).await;
    assert_eq!(count(&lat, "fast") + count(&lat, "slow"), 40, "{lat:?}");
    assert!(count(&lat, "fast") >= 34, "latency: {lat:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_keeps_users_on_their_target_across_reloads_and_removals() {
    let s = setup().await;
    let echoes = [
        Echo::start("h1").await,
        Echo::start("h2").await,
        Echo::start("h3").await,
    ];
    let targets: Vec<Value> = echoes.iter().map(|e| json!({"address": e.addr})).collect();
    let v = s
        .create(
            json!({
                "name": "hash",
                "algorithm": "consistent_hash",
                "hash_on": {"header": "x-user"},
                "targets": targets
            }),
            "/hash",
        )
        .await;
    s.dp.wait_for_version(v).await;

    let users: Vec<String> = (0..20).map(|i| format!("user-{i}")).collect();
    let mut placed: HashMap<&str, String> = HashMap::new();
    for u in &users {
        let first = s.name("/hash", &[("x-user", u)]).await;
        for _ in 0..4 {
            let again = s.name("/hash", &[("x-user", u)]).await;
            assert_eq!(again, first, "{u} moved without any change");
        }
        placed.insert(u, first);
    }
    let used: std::collections::BTreeSet<&String> = placed.values().collect();
    assert!(used.len() >= 2, "20 users all on one target: {used:?}");

    // A change that does not touch the upstream moves nobody.
    let r =
        s.cp.api(
            Method::POST,
            "/routes",
            Some(json!({"name": "unrelated", "paths": ["/unrelated"], "upstream": "hash"})),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
    s.dp.wait_for_version(r.version()).await;
    for u in &users {
        let now = s.name("/hash", &[("x-user", u)]).await;
        assert_eq!(
            now,
            placed[u.as_str()],
            "{u} moved after an unrelated change"
        );
    }

    // Removing h3: its users go elsewhere, the others mostly stay.
    let patch =
        s.cp.api(
            Method::PATCH,
            "/upstreams/hash",
            Some(json!({"targets": &targets[..2]})),
        )
        .await;
    assert_status(&patch, StatusCode::OK);
    s.dp.wait_for_version(patch.version()).await;
    let (mut kept, mut stayed) = (0, 0);
    for u in &users {
        let now = s.name("/hash", &[("x-user", u)]).await;
        assert_ne!(now, "h3", "{u} still on the removed target");
        if placed[u.as_str()] != "h3" {
            kept += 1;
            if now == placed[u.as_str()] {
                stayed += 1;
            }
        }
    }
    assert!(
        kept >= 1,
        "no user was on the remaining targets: {placed:?}"
    );
    assert!(
        stayed * 10 >= kept * 8,
        "only {stayed} of {kept} users of the remaining targets stayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_the_weights_exactly() {
    let s = setup().await;
    let light = Echo::start("light").await;
    let heavy = Echo::start("heavy").await;
    let v = s
        .create(
            json!({
                "name": "wrr",
                "algorithm": "weighted_round_robin",
                "targets": [
                    {"address": light.addr, "weight": 1},
                    {"address": heavy.addr, "weight": 3}
                ]
            }),
            "/wrr",
        )
        .await;
    s.dp.wait_for_version(v).await;
    // Sequential requests walk the smooth sequence (period 4), so any 40
    // of them split exactly 10 / 30.
    let got = s.tally("/wrr", 40).await;
    assert_eq!(count(&got, "light"), 10, "{got:?}");
    assert_eq!(count(&got, "heavy"), 30, "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_target_out_the_answer_is_a_fast_503() {
    let s = setup().await;
    let dead = [
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    ];
    let targets: Vec<Value> = dead.iter().map(|a| json!({"address": a})).collect();
    // Ejected by passive checks after their first failure.
    s.create(
        json!({
            "name": "ejected",
            "retries": 1,
            "targets": targets,
            "health_checks": {"passive": {
                "consecutive_failures": 1,
                "ejection_ms": 60000,
                "max_ejection_ms": 60000,
                "max_ejected_percent": 100
            }}
        }),
        "/ejected",
    )
    .await;
    // Taken out by active checks, never tried by a request.
    let dark = [
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    ];
    let v = s
        .create(
            json!({
                "name": "dark",
                "targets": dark.iter().map(|a| json!({"address": a})).collect::<Vec<_>>(),
                "health_checks": {"active": {"interval_ms": 100, "unhealthy_threshold": 1}}
            }),
            "/dark",
        )
        .await;
    s.dp.wait_for_version(v).await;

    // The first request tries both (refused), which ejects both: 502.
    let first = s.get("/ejected", &[]).await;
    assert_status(&first, StatusCode::BAD_GATEWAY);
    for a in &dead {
        let t = s.target("ejected", a).await;
        assert_eq!(t["ejected"], true, "{t}");
        assert_eq!(t["requests"], 1, "{t}");
    }
    let started = Instant::now();
    let none = s.get("/ejected", &[]).await;
    let took = started.elapsed();
    assert_status(&none, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_millis(100), "503 took {took:?}");
    for a in &dead {
        let t = s.target("ejected", a).await;
        assert_eq!(t["requests"], 1, "an ejected target was tried: {t}");
    }

    wait_for(
        "both dark targets unhealthy",
        Duration::from_secs(10),
        || async {
            let mut all = true;
            for a in &dark {
                all &= s.target("dark", a).await["healthy"] == false;
            }
            all.then_some(())
        },
    )
    .await;
    let started = Instant::now();
    let none = s.get("/dark", &[]).await;
    let took = started.elapsed();
    assert_status(&none, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_millis(100), "503 took {took:?}");
    for a in &dark {
        let t = s.target("dark", a).await;
        assert_eq!(t["requests"], 0, "an unhealthy target was tried: {t}");
    }
}

/// The series of metric `name` in Prometheus text: labels and value.
fn series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            let labels = labels
                .split(',')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// The value of `name{upstream, target}`; panics when the series is absent.
fn value(text: &str, name: &str, upstream: &str, target: &str) -> f64 {
    series(text, name)
        .into_iter()
        .find(|(l, _)| l["upstream"] == upstream && l["target"] == target)
        .unwrap_or_else(|| panic!("no {name}{{upstream={upstream},target={target}}} in:\n{text}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_targets_attempts_and_failures() {
    let s = setup().await;
    let m1 = Echo::start("m1").await;
    let m2 = Echo::start("m2").await;
    let dead = format!("127.0.0.1:{}", free_port());
    let addrs = [m1.addr.as_str(), m2.addr.as_str(), dead.as_str()];
    let v = s
        .create(
            json!({
                "name": "metered",
                "retries": 1,
                "targets": addrs.map(|a| json!({"address": a}))
            }),
            "/metered",
        )
        .await;
    s.dp.wait_for_version(v).await;

    let got = s.tally("/metered", 12).await;
    let text = s.metrics().await;
    let requests = "turnpike_upstream_target_requests_total";
    let failures = "turnpike_upstream_target_failures_total";
    for (e, addr) in [(&m1, &m1.addr), (&m2, &m2.addr)] {
        assert_eq!(
            value(&text, requests, "metered", addr),
            count(&got, &e.name) as f64,
            "{got:?}\n{text}"
        );
        assert_eq!(value(&text, failures, "metered", addr), 0.0, "{text}");
        assert_eq!(
            value(&text, "turnpike_upstream_target_healthy", "metered", addr),
            1.0
        );
        assert_eq!(
            value(&text, "turnpike_upstream_target_in_flight", "metered", addr),
            0.0
        );
    }
    assert_eq!(count(&got, "m1") + count(&got, "m2"), 12, "{got:?}");
    // Each attempt on the dead target failed and was retried on a live one.
    let dead_requests = value(&text, requests, "metered", &dead);
    assert!(dead_requests >= 1.0, "{text}");
    assert_eq!(
        value(&text, failures, "metered", &dead),
        dead_requests,
        "{text}"
    );
    // The same counts as /upstreams.
    let counted = s.requests("metered", &addrs).await;
    for (addr, n) in addrs.iter().zip(&counted) {
        assert_eq!(value(&text, requests, "metered", addr), *n as f64, "{addr}");
    }
}
