//! The compiled router against a model: a naive matcher that scans every
//! route and applies the documented rule literally. For random routes and
//! requests both must pick the same winner (and matched length), and
//! `matches` must list the same routes in the same order.

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use regex::Regex;
use uuid::Uuid;

use super::CompiledRouter;
use crate::{Route, RouteSpec};

const LABELS: [&str; 3] = ["a", "b", "c"];
const SEGMENTS: [&str; 4] = ["a", "b", "ab", ""];
const REGEXES: [&str; 5] = ["~/a", "~/a/[ab]+$", "~/(a|b)/", "~/b.*b", "~/ab?"];

fn host_pattern() -> impl Strategy<Value = String> {
    let name =
        prop::collection::vec(prop::sample::select(&LABELS[..]), 1..=3).prop_map(|l| l.join("."));
    prop_oneof![name.clone(), name.prop_map(|n| format!("*.{n}"))]
}

fn segments(max: usize) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(&SEGMENTS[..]), 0..=max),
        any::<bool>(),
    )
        .prop_map(|(s, slash)| {
            let mut p = format!("/{}", s.join("/"));
            if slash && !p.ends_with('/') {
                p.push('/');
            }
            p
        })
}

fn path_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => segments(3),
        2 => segments(3).prop_map(|p| format!("={p}")),
        1 => prop::sample::select(&REGEXES[..]).prop_map(str::to_owned),
    ]
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    (
        prop::collection::vec(host_pattern(), 0..=2),
        prop::collection::vec(path_pattern(), 0..=2),
        prop::sample::subsequence(vec!["GET", "POST"], 0..=2),
        prop::option::of(prop::sample::subsequence(vec!["1", "2"], 1..=2)),
        any::<bool>(),
        0..=1i32,
    )
        .prop_map(|(hosts, paths, methods, xv, xw, priority)| {
            let mut headers = serde_json::Map::new();
            if let Some(v) = xv {
                headers.insert("x-v".into(), serde_json::json!(v));
            }
            if xw {
                headers.insert("x-w".into(), serde_json::json!(["1"]));
            }
            let json = serde_json::json!({"name": "r", "hosts": hosts, "paths": paths,
                "methods": methods, "headers": headers, "priority": priority, "upstream": "u"});
            let spec: RouteSpec = serde_json::from_value(json).unwrap();
            spec.validate().unwrap();
            spec
        })
}

#[derive(Debug, Clone)]
struct Req {
    host: String,
    path: String,
    method: Method,
    headers: Vec<(&'static str, &'static str)>,
}

fn request() -> impl Strategy<Value = Req> {
    // An empty first label makes hosts like `.a.b`, which no wildcard takes.
    let label = prop::sample::select(vec!["a", "b", "c", "A", "B", ""]);
    let host = (
        prop::collection::vec(label, 0..=4),
        any::<bool>(),
        prop::option::of(1..65535u16),
    )
        .prop_map(|(labels, dot, port)| {
            let mut h = labels.join(".");
            if dot && !h.is_empty() && !h.ends_with('.') {
                h.push('.');
            }
            if let Some(p) = port {
                h.push_str(&format!(":{p}"));
            }
            h
        });
    let header = prop::sample::select(vec![("x-v", "1"), ("x-v", "2"), ("x-v", "3"), ("x-w", "1")]);
    (
        host,
        segments(4),
        prop::sample::select(vec![Method::GET, Method::POST, Method::PUT]),
        prop::collection::vec(header, 0..=3),
    )
        .prop_map(|(host, path, method, headers)| Req {
            host,
            path,
            method,
            headers,
        })
}

/// The documented rule, one route at a time: (rank key, matched length,
/// host index, path index) of the best way `route` matches `req`.
type Key = (i32, u32, u8, usize, u8, usize);

fn reference_match(
    index: usize,
    route: &RouteSpec,
    req: &Req,
) -> Option<(Key, usize, Option<usize>, Option<usize>)> {
    let lower = req.host.to_ascii_lowercase();
    let no_port = lower.rsplit_once(':').map_or(lower.as_str(), |(h, _)| h);
    let host = no_port.strip_suffix('.').unwrap_or(no_port);
    let first_max = |scores: Vec<Option<(u32, u8, usize, usize)>>| {
        let mut best: Option<(usize, (u32, u8, usize, usize))> = None;
        for (i, s) in scores.into_iter().enumerate() {
            if let Some(s) = s
                && best.is_none_or(|(_, b)| (s.0, s.1, s.2) > (b.0, b.1, b.2))
            {
                best = Some((i, s));
            }
        }
        best
    };
    let (host_index, host_score) = if route.hosts.is_empty() {
        (None, 0)
    } else {
        let scores = route.hosts.iter().map(|p| match p.strip_prefix("*.") {
            Some(suffix) => (host.ends_with(&format!(".{suffix}"))
                && host.len() > suffix.len() + 1)
                .then_some((suffix.len() as u32 + 1, 0, 0, 0)),
            None => (host == p).then_some((u32::MAX, 0, 0, 0)),
        });
        let (i, s) = first_max(scores.collect())?;
        (Some(i), s.0)
    };
    let path = req.path.as_str();
    let (path_index, (kind, len, matched)) = if route.paths.is_empty() {
        (None, (0, 0, 0))
    } else {
        let scores = route.paths.iter().map(|p| {
            if let Some(exact) = p.strip_prefix('=') {
                (path == exact).then_some((0, 3, exact.len(), path.len()))
            } else if let Some(re) = p.strip_prefix('~') {
                let re = Regex::new(&format!("^(?:{re})")).unwrap();
                re.find(path).map(|m| (0, 1, 0, m.end()))
            } else {
                let prefix = p.trim_end_matches('/');
                if prefix.is_empty() {
                    Some((0, 2, 1, 0))
                } else {
                    let at_boundary = path.starts_with(prefix)
                        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/');
                    at_boundary.then_some((0, 2, prefix.len(), prefix.len()))
                }
            }
        });
        let (i, s) = first_max(scores.collect())?;
        (Some(i), (s.1, s.2, s.3))
    };
    let methods_ok =
        route.methods.is_empty() || route.methods.iter().any(|m| m == req.method.as_str());
    let headers_ok = route.headers.iter().all(|(name, values)| {
        req.headers
            .iter()
            .any(|(n, v)| n == name && values.iter().any(|x| x == v))
    });
    if !methods_ok || !headers_ok {
        return None;
    }
    let conditions = u8::from(!route.methods.is_empty()) + route.headers.len() as u8;
    let key = (
        route.priority,
        host_score,
        kind,
        len,
        conditions,
        usize::MAX - index,
    );
    Some((key, matched, host_index, path_index))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_router_agrees_with_a_linear_scan(
        specs in prop::collection::vec(route_spec(), 0..12),
        requests in prop::collection::vec(request(), 1..8),
    ) {
        let routes: Vec<Route> = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| Route { id: Uuid::from_u128(i as u128 + 1), spec })
            .collect();
        let router = CompiledRouter::build(&routes).unwrap();
        for req in &requests {
            let mut headers = HeaderMap::new();
            for (k, v) in &req.headers {
                headers.append(*k, HeaderValue::from_static(v));
            }
            let mut expected: Vec<_> = routes
                .iter()
                .enumerate()
                .filter_map(|(i, r)| reference_match(i, &r.spec, req).map(|m| (i, m)))
                .collect();
            expected.sort_by_key(|e| std::cmp::Reverse(e.1.0));
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(i, (_, matched, h, p))| (i, matched, h, p))
                .collect();

            let hit = router.lookup(&req.host, &req.path, &req.method, &headers);
            prop_assert_eq!(
                hit.map(|m| (m.route, m.matched_len)),
                expected.first().map(|e| (e.0, e.1)),
                "winner for {:?}", req
            );
            let all: Vec<_> = router
                .matches(&req.host, &req.path, &req.method, &headers)
                .into_iter()
                .map(|m| (m.route, m.matched_len, m.host, m.path))
                .collect();
            prop_assert_eq!(all, expected, "every match, in order, for {:?}", req);
        }
    }
}
