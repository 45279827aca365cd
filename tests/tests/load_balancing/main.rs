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

mod algorithms;
mod health;
mod metrics;
