//! Router unit tests: each precedence rule, segment-boundary prefixes, host
//! normalization, and `matches` (every match, best first, with its reason).

use crate::{Route, RouteSpec};
use http::{HeaderMap, HeaderValue, Method};
use uuid::Uuid;

use super::{CompiledRouter, Criterion, normalize_host};

fn route(json: serde_json::Value) -> Route {
    let mut spec: RouteSpec = serde_json::from_value(json).unwrap();
    spec.normalize();
    spec.validate().unwrap();
    Route {
        id: Uuid::now_v7(),
        spec,
    }
}

/// Builds a router from routes given in creation order; returns the name of
/// the route a request hits.
struct Table(Vec<Route>, CompiledRouter);

impl Table {
    fn new(routes: Vec<serde_json::Value>) -> Table {
        let routes: Vec<Route> = routes.into_iter().map(route).collect();
        let router = CompiledRouter::build(&routes).unwrap();
        Table(routes, router)
    }

    fn hit(&self, method: &str, host: &str, path: &str) -> Option<(&str, usize)> {
        self.hit_with(method, host, path, &HeaderMap::new())
    }

    fn hit_with(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<(&str, usize)> {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let m = self.1.lookup(host, path, &method, headers)?;
        Some((self.0[m.route].spec.name.as_str(), m.matched_len))
    }

    fn name(&self, method: &str, host: &str, path: &str) -> Option<&str> {
        self.hit(method, host, path).map(|h| h.0)
    }
}

#[test]
fn prefixes_match_at_segment_boundaries_longest_first() {
    let t = Table::new(vec![
        serde_json::json!({"name": "root", "paths": ["/"], "upstream": "u"}),
        serde_json::json!({"name": "users", "paths": ["/users"], "upstream": "u"}),
        serde_json::json!({"name": "users-admin", "paths": ["/users/admin/"], "upstream": "u"}),
    ]);
    assert_eq!(t.hit("GET", "h", "/users"), Some(("users", 6)));
    assert_eq!(t.hit("GET", "h", "/users/"), Some(("users", 6)));
    assert_eq!(t.hit("GET", "h", "/users/7"), Some(("users", 6)));
    assert_eq!(
        t.hit("GET", "h", "/users/admin/x"),
        Some(("users-admin", 12))
    );
    assert_eq!(t.name("GET", "h", "/usersx"), Some("root"));
    assert_eq!(t.hit("GET", "h", "/"), Some(("root", 0)));
}

#[test]
fn exact_beats_prefix_beats_regex() {
    let t = Table::new(vec![
        serde_json::json!({"name": "regex", "paths": ["~/a/\\d+"], "upstream": "u"}),
        serde_json::json!({"name": "prefix", "paths": ["/a"], "upstream": "u"}),
        serde_json::json!({"name": "exact", "paths": ["=/a/1"], "upstream": "u"}),
        serde_json::json!({"name": "only-regex", "paths": ["~/b/[a-z]+$"], "upstream": "u"}),
    ]);
    assert_eq!(t.name("GET", "h", "/a/1"), Some("exact"));
    assert_eq!(t.name("GET", "h", "/a/2"), Some("prefix"));
    assert_eq!(t.hit("GET", "h", "/b/xyz"), Some(("only-regex", 6)));
    assert_eq!(t.name("GET", "h", "/b/x1"), None);
}

#[test]
fn priority_wins_over_specificity() {
    let t = Table::new(vec![
        serde_json::json!({"name": "long", "paths": ["/api/v1"], "upstream": "u"}),
        serde_json::json!({"name": "short-but-urgent", "paths": ["/api"], "priority": 10, "upstream": "u"}),
    ]);
    assert_eq!(t.name("GET", "h", "/api/v1/x"), Some("short-but-urgent"));
}

#[test]
fn hosts_exact_then_wildcard_then_any() {
    let t = Table::new(vec![
        serde_json::json!({"name": "any", "upstream": "u"}),
        serde_json::json!({"name": "wild", "hosts": ["*.example.com"], "upstream": "u"}),
        serde_json::json!({"name": "wild-deeper", "hosts": ["*.eu.example.com"], "upstream": "u"}),
        serde_json::json!({"name": "exact", "hosts": ["api.example.com"], "upstream": "u"}),
    ]);
    assert_eq!(t.name("GET", "api.example.com", "/"), Some("exact"));
    assert_eq!(
        t.name("GET", "API.Example.COM:8443", "/"),
        Some("exact"),
        "case and port ignored"
    );
    assert_eq!(
        t.name("GET", "api.example.com.", "/"),
        Some("exact"),
        "trailing dot ignored"
    );
    assert_eq!(t.name("GET", "www.example.com", "/"), Some("wild"));
    assert_eq!(t.name("GET", "a.b.example.com", "/"), Some("wild"));
    assert_eq!(t.name("GET", "x.eu.example.com", "/"), Some("wild-deeper"));
    assert_eq!(
        t.name("GET", "example.com", "/"),
        Some("any"),
        "a wildcard needs a label"
    );
    assert_eq!(t.name("GET", "other.org", "/"), Some("any"));
    assert_eq!(
        t.name("GET", ".example.com", "/"),
        Some("any"),
        "an empty first label is not a label"
    );
}

#[test]
fn methods_filter_and_rank() {
    let t = Table::new(vec![
        serde_json::json!({"name": "all", "paths": ["/x"], "upstream": "u"}),
        serde_json::json!({"name": "post", "paths": ["/x"], "methods": ["post"], "upstream": "u"}),
        serde_json::json!({"name": "only-put", "paths": ["/y"], "methods": ["PUT"], "upstream": "u"}),
    ]);
    assert_eq!(t.name("POST", "h", "/x"), Some("post"));
    assert_eq!(t.name("GET", "h", "/x"), Some("all"));
    assert_eq!(t.name("GET", "h", "/y"), None);
    assert_eq!(t.name("PUT", "h", "/y/1"), Some("only-put"));
}

#[test]
fn older_route_wins_a_full_tie() {
    let t = Table::new(vec![
        serde_json::json!({"name": "first", "paths": ["/same"], "upstream": "u"}),
        serde_json::json!({"name": "second", "paths": ["/same"], "upstream": "u"}),
    ]);
    assert_eq!(t.name("GET", "h", "/same"), Some("first"));
}

#[test]
fn no_routes_no_match() {
    let t = Table::new(vec![]);
    assert_eq!(t.name("GET", "h", "/"), None);
}

#[test]
fn host_normalization() {
    assert_eq!(normalize_host("Example.COM:80"), "example.com");
    assert_eq!(normalize_host("example.com."), "example.com");
    assert_eq!(normalize_host("[::1]:8080"), "[::1]");
    assert_eq!(normalize_host("[::1]"), "[::1]");
    assert!(matches!(
        normalize_host("plain.host"),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn header_conditions_filter_and_outrank() {
    let t = Table::new(vec![
        serde_json::json!({"name": "v1", "paths": ["/api"], "upstream": "u"}),
        serde_json::json!({"name": "v2", "paths": ["/api"], "headers": {"X-Version": ["2", "2.1"]}, "upstream": "u"}),
        serde_json::json!({"name": "v2-beta", "paths": ["/api"], "headers": {"x-version": ["2"], "x-beta": ["yes"]}, "upstream": "u"}),
    ]);
    let with = |pairs: &[(&'static str, &'static str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    };
    assert_eq!(t.hit_with("GET", "h", "/api", &with(&[])).unwrap().0, "v1");
    assert_eq!(
        t.hit_with("GET", "h", "/api", &with(&[("x-version", "2.1")]))
            .unwrap()
            .0,
        "v2"
    );
    assert_eq!(
        t.hit_with("GET", "h", "/api", &with(&[("x-version", "3")]))
            .unwrap()
            .0,
        "v1"
    );
    assert_eq!(
        t.hit_with(
            "GET",
            "h",
            "/api",
            &with(&[("x-version", "2"), ("x-beta", "yes")])
        )
        .unwrap()
        .0,
        "v2-beta",
        "two conditions beat one"
    );
    // Any of a repeated header's values may match.
    assert_eq!(
        t.hit_with(
            "GET",
            "h",
            "/api",
            &with(&[("x-version", "9"), ("x-version", "2")])
        )
        .unwrap()
        .0,
        "v2"
    );
}

#[test]
fn double_slashes_do_not_offer_the_root_twice() {
    let t = Table::new(vec![
        serde_json::json!({"name": "root", "paths": ["/"], "upstream": "u"}),
        serde_json::json!({"name": "a", "paths": ["/a"], "upstream": "u"}),
    ]);
    assert_eq!(t.hit("GET", "h", "//a"), Some(("root", 0)));
    assert_eq!(t.hit("GET", "h", "/a//b"), Some(("a", 2)));
}

#[test]
fn matches_lists_every_route_best_first_with_its_patterns() {
    let t = Table::new(vec![
        serde_json::json!({"name": "catch-all", "upstream": "u"}),
        serde_json::json!({"name": "users", "hosts": ["other.org", "*.example.com"], "paths": ["~/u", "/users"], "upstream": "u"}),
        serde_json::json!({"name": "users-exact-host", "hosts": ["api.example.com"], "paths": ["/users"], "upstream": "u"}),
        serde_json::json!({"name": "posts", "paths": ["/posts"], "upstream": "u"}),
    ]);
    let all = t.1.matches(
        "API.example.com:443",
        "/users/7",
        &Method::GET,
        &HeaderMap::new(),
    );
    let names: Vec<&str> = all
        .iter()
        .map(|m| t.0[m.route].spec.name.as_str())
        .collect();
    assert_eq!(names, ["users-exact-host", "users", "catch-all"]);
    let first =
        t.1.lookup(
            "API.example.com:443",
            "/users/7",
            &Method::GET,
            &HeaderMap::new(),
        )
        .unwrap();
    assert_eq!(
        (all[0].route, all[0].matched_len),
        (first.route, first.matched_len)
    );
    // `users` matched through its wildcard host and its prefix (the better
    // of its two paths), and lost to the exact host.
    assert_eq!(
        (all[1].host, all[1].path, all[1].matched_len),
        (Some(1), Some(1), 6)
    );
    assert_eq!(all[0].rank.decided_by(&all[1].rank), Some(Criterion::Host));
    assert_eq!((all[2].host, all[2].path), (None, None));
    assert_eq!(all[1].rank.decided_by(&all[2].rank), Some(Criterion::Host));
    assert!(
        t.1.matches("h", "/nothing", &Method::GET, &HeaderMap::new())
            .len()
            == 1
    );
}

#[test]
fn build_names_the_broken_field() {
    let mut bad = route(serde_json::json!({"name": "r", "paths": ["/ok"], "upstream": "u"}));
    bad.spec.paths.push("nope".into());
    bad.spec.methods.push("G ET".into());
    let err = CompiledRouter::build(&[
        route(serde_json::json!({"name": "fine", "upstream": "u"})),
        bad,
    ])
    .unwrap_err();
    let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["routes[1].methods[0]", "routes[1].paths[1]"]);
}
