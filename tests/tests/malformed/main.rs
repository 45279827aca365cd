//! Request hygiene end to end (docs/proxy.md, "Limits and request
//! hygiene"; HARDENING §3 A–C): a control plane, a data plane and two
//! request-counting upstreams as real processes and sockets. Every case is
//! written byte for byte on a fresh keep-alive connection; it passes when
//! the data plane answers as expected (4xx/501, or closes) and the
//! upstreams received at most one well-formed request from it, never a
//! smuggled second one.
//!
//! `framing.rs`: class A (framing, headers, Host); `paths.rs`: class C;
//! `limits.rs`: class B limits, `X-Request-Id`, invalid upstream answers.

mod framing;
mod limits;
mod paths;

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::raw::{RawConn, RawResponse, Read};
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, assert_status, fresh_database_url,
};

/// A data plane routing `/admin` and host `api.example.com` to `admin`,
/// everything else to `main`.
pub struct Setup {
    pub dp: DataPlane,
    pub main: CountingUpstream,
    pub admin: CountingUpstream,
    /// host:port of the proxy listener.
    pub addr: String,
    _cp: ControlPlane,
    _db: Db,
}

impl Setup {
    pub async fn start(dp_args: &[&str]) -> Setup {
        let (url, name) = fresh_database_url();
        let db = Db(name);
        let cp = ControlPlane::start(&url).await;
        let main = CountingUpstream::start().await;
        let admin = CountingUpstream::start().await;
        let args: Vec<String> = dp_args.iter().map(|a| a.to_string()).collect();
        let dp = DataPlane::start_args(&cp.cluster, &cp.cluster_token, &args);
        for (name, up) in [("main", &main), ("admin", &admin)] {
            let body = json!({"name": name, "targets": [{"address": up.addr}], "timeouts": {"read_ms": 5000}});
            assert_status(
                &cp.api(Method::POST, "/upstreams", Some(body)).await,
                StatusCode::CREATED,
            );
        }
        let mut version = 0;
        for route in [
            json!({"name": "all", "paths": ["/"], "upstream": "main"}),
            json!({"name": "admin", "paths": ["/admin"], "upstream": "admin"}),
            json!({"name": "hosted", "hosts": ["api.example.com"], "paths": ["/hosted"], "upstream": "admin"}),
        ] {
            let a = cp.api(Method::POST, "/routes", Some(route)).await;
            assert_status(&a, StatusCode::CREATED);
            version = a.version();
        }
        dp.wait_for_version(version).await;
        let addr = dp.proxy.trim_start_matches("http://").to_owned();
        Setup {
            dp,
            main,
            admin,
            addr,
            _cp: cp,
            _db: db,
        }
    }
}

/// What a case must get.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// This status, then the connection closes; nothing forwarded.
    Status(u16),
    /// A 4xx/501 answer or a close without one; nothing forwarded.
    Refused,
    /// Forwarded once, as this target (`""`: `/c/<case name>/`), to the
    /// `admin` upstream or `main`; `closes`: the data plane closes the
    /// connection after answering.
    Forwarded {
        target: &'static str,
        admin: bool,
        closes: bool,
    },
}

pub struct Case {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub expect: Expect,
    /// Half-close after sending (for bodies that never end).
    pub half_close: bool,
}

/// Forwarded to `main` as `/c/<case name>/`.
pub const FORWARDED: Expect = Expect::Forwarded {
    target: "",
    admin: false,
    closes: false,
};
/// The same, and the connection closed after the answer.
pub const FORWARDED_THEN_CLOSED: Expect = Expect::Forwarded {
    target: "",
    admin: false,
    closes: true,
};

impl Case {
    pub fn new(name: &'static str, bytes: impl Into<Vec<u8>>, expect: Expect) -> Case {
        Case {
            name,
            bytes: bytes.into(),
            expect,
            half_close: false,
        }
    }
}

/// What a case got.
#[derive(Debug)]
struct Outcome {
    first: Option<RawResponse>,
    /// Answers after the first, before the sentinel (or the close).
    extra: Vec<RawResponse>,
    closed: bool,
    main: Vec<turnpike_tests::counting_upstream::Recorded>,
    admin: Vec<turnpike_tests::counting_upstream::Recorded>,
}

async fn run(s: &Setup, case: &Case) -> Outcome {
    let tag = format!("/{}/", case.name);
    let mut conn = RawConn::connect(&s.addr).await;
    conn.send(&case.bytes).await;
    if case.half_close {
        conn.finish_sending().await;
    }
    let (first, extra, closed) = match conn.read().await {
        Read::Closed => (None, Vec::new(), true),
        Read::Response(r) if r.closes() || case.half_close => {
            (Some(r), conn.read_to_close().await, true)
        }
        Read::Response(r) => {
            // Kept alive: a sentinel request on the same connection shows
            // whether anything else was parsed from it (answers come in
            // order), and that the connection is still in step.
            let sentinel = format!("/sentinel/{}/", case.name);
            let req = format!("GET {sentinel} HTTP/1.1\r\nHost: h\r\n\r\n");
            conn.send(req.as_bytes()).await;
            let mut extra = Vec::new();
            let closed = loop {
                match conn.read().await {
                    Read::Response(a) if a.header("x-seen-path") == Some(&sentinel) => break false,
                    Read::Response(a) => extra.push(a),
                    Read::Closed => break true,
                }
            };
            (Some(r), extra, closed)
        }
    };
    let of = |up: &CountingUpstream| {
        up.matching(&tag)
            .into_iter()
            .filter(|r| !r.target.starts_with("/sentinel/"))
            .collect::<Vec<_>>()
    };
    Outcome {
        first,
        extra,
        closed,
        main: of(&s.main),
        admin: of(&s.admin),
    }
}

fn check(case: &Case, o: &Outcome) -> Result<(), String> {
    let forwarded = o.main.len() + o.admin.len();
    if forwarded > 1 {
        return Err(format!("upstreams received {forwarded} requests"));
    }
    if let Some(r) = o
        .main
        .iter()
        .chain(&o.admin)
        .find(|r| r.target.contains("smuggled"))
    {
        return Err(format!(
            "smuggled request forwarded: {} {}",
            r.method, r.target
        ));
    }
    if !o.extra.is_empty() {
        let statuses: Vec<u16> = o.extra.iter().map(|r| r.status).collect();
        return Err(format!("extra answers on the connection: {statuses:?}"));
    }
    let status = o.first.as_ref().map(|r| r.status);
    match case.expect {
        Expect::Status(want) => {
            if status != Some(want) || !o.closed || forwarded != 0 {
                return Err(format!("want {want} and close, nothing forwarded"));
            }
        }
        Expect::Refused => {
            let refused = match status {
                None => o.closed,
                Some(s) => (s == 501 || (400..500).contains(&s)) && o.closed,
            };
            if !refused || forwarded != 0 {
                return Err("want 4xx/501 or a close, nothing forwarded".into());
            }
        }
        Expect::Forwarded {
            target,
            admin,
            closes,
        } => {
            let got = if admin { &o.admin } else { &o.main };
            let target = match target {
                "" => format!("/c/{}/", case.name),
                t => t.to_owned(),
            };
            let ok = status == Some(200)
                && got.len() == 1
                && got[0].target == target
                && got[0].trailers.is_empty()
                && o.closed == closes;
            if !ok {
                return Err(format!(
                    "want 200 via {} as {target} (closes: {closes})",
                    if admin { "admin" } else { "main" }
                ));
            }
        }
    }
    Ok(())
}

/// Runs every case on its own connection, prints what each got, and fails
/// listing every case that did not pass.
pub async fn run_all(s: &Setup, cases: &[Case]) {
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for case in cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
        let o = run(s, case).await;
        let verdict = check(case, &o);
        println!(
            "{:<34} status={:<5} closed={:<5} forwarded={} {}",
            case.name,
            o.first
                .as_ref()
                .map_or("-".into(), |r| r.status.to_string()),
            o.closed,
            o.main.len() + o.admin.len(),
            verdict.as_ref().err().map_or("ok", String::as_str),
        );
        if let Err(e) = verdict {
            failures.push(format!("{}: {e} (got {o:?})", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
