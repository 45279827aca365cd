//! Route lookup cost at 100, 10,000 and 100,000 routes: the data plane runs
//! one lookup per request. Routes are what large gateways hold: mostly exact
//! hosts with a handful of prefixes each, some wildcard hosts, some routes
//! on any host, a few regexes. Requests cycle through hits of every kind and
//! some misses. Run with `bench/router.sh` (targets in docs/PERFORMANCE.md).

use divan::{Bencher, black_box};
use http::{HeaderMap, Method};
use turnpike_model::router::CompiledRouter;
use turnpike_model::{Route, RouteSpec};
use uuid::Uuid;

fn main() {
    divan::main();
}

const SIZES: [usize; 3] = [100, 10_000, 100_000];
/// Prefix routes per host.
const PER_HOST: usize = 10;

fn spec(name: String, hosts: Vec<String>, paths: Vec<String>) -> RouteSpec {
    RouteSpec {
        name,
        hosts,
        paths,
        headers: Default::default(),
        methods: Vec::new(),
        priority: 0,
        upstream: Uuid::from_u128(1).to_string(),
        strip_path: false,
        preserve_host: false,
        tags: Vec::new(),
    }
}

/// `n` routes: 80% on exact hosts, 10% on wildcard hosts, 10% on any host,
/// plus five regex routes.
fn routes(n: usize) -> Vec<Route> {
    let mut specs = Vec::with_capacity(n + 5);
    for i in 0..n {
        let (host, res) = (i / PER_HOST, i % PER_HOST);
        let path = format!("/api/v1/res{res}");
        let hosts = match i % 10 {
            0..=7 => vec![format!("svc{host}.example.com")],
            8 => vec![format!("*.tenant{host}.example.net")],
            _ => Vec::new(),
        };
        let path = if hosts.is_empty() {
            format!("/shared/{i}")
        } else {
            path
        };
        specs.push(spec(format!("r{i}"), hosts, vec![path]));
    }
    for (i, re) in [
        r"~/legacy/\d+/item",
        r"~/v[0-9]+/users/[a-z]+$",
        r"~/files/.*\.png$",
        r"~/export-[0-9]{4}",
        r"~/(old|older)/api",
    ]
    .into_iter()
    .enumerate()
    {
        specs.push(spec(format!("regex{i}"), Vec::new(), vec![re.to_owned()]));
    }
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| Route {
            id: Uuid::from_u128(i as u128 + 1),
            spec,
        })
        .collect()
}

/// 1,024 requests spread over the table: exact-host hits (some with a port
/// and uppercase, as clients send them), wildcard hits two labels deep,
/// any-host hits, regex hits (which scan the regex list) and misses.
fn requests(n: usize) -> Vec<(String, String)> {
    let groups = n.div_ceil(PER_HOST).max(1);
    (0..1024usize)
        .map(|k| {
            // Spread over every host group, not just the first ones.
            let group = k.wrapping_mul(7919) % groups;
            match k % 16 {
                0..=8 => (
                    format!("svc{group}.example.com"),
                    format!("/api/v1/res{}/items/{k}", k % 8),
                ),
                9 => (
                    format!("SVC{group}.Example.com:8443"),
                    format!("/api/v1/res{}", k % 8),
                ),
                10 | 11 => (
                    format!("eu.a{k}.tenant{group}.example.net"),
                    "/api/v1/res8/x".to_owned(),
                ),
                12 => (
                    "other.org".into(),
                    format!("/shared/{}/list", group * 10 + 9),
                ),
                13 => ("other.org".into(), format!("/legacy/{k}/item")),
                14 => ("other.org".into(), "/v2/users/alice".to_owned()),
                _ => ("nowhere.example".into(), format!("/missing/{k}")),
            }
        })
        .collect()
}

/// One sample runs the whole mix of 1,024 requests, so each sample's time
/// per lookup is the mix's mean, well above the timer's precision.
#[divan::bench(args = SIZES, sample_size = 1024)]
fn lookup(bencher: Bencher, n: usize) {
    let router = CompiledRouter::build(&routes(n)).unwrap();
    let requests = requests(n);
    let headers = HeaderMap::new();
    // Every kind but the misses must hit, or this measures something else.
    let hits = requests
        .iter()
        .filter(|(h, p)| router.lookup(h, p, &Method::GET, &headers).is_some())
        .count();
    assert_eq!(hits, requests.len() / 16 * 15, "{n} routes");
    let mut k = 0;
    bencher.bench_local(|| {
        k = (k + 1) % requests.len();
        let (host, path) = &requests[k];
        router.lookup(black_box(host), black_box(path), &Method::GET, &headers)
    });
}

/// What a data plane spends compiling a config of this size (and the
/// control plane, once per version, for `GET /routes/match`).
#[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
fn build(bencher: Bencher, n: usize) {
    let routes = routes(n);
    bencher.bench_local(|| CompiledRouter::build(black_box(&routes)).unwrap());
}
