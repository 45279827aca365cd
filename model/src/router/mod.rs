//! Route matching: which route a request hits. The data plane runs
//! [`CompiledRouter::lookup`] on every request; the control plane compiles
//! the same router per config version to answer `GET /routes/match` with
//! [`CompiledRouter::matches`]. One code, so the two cannot disagree.
//!
//! Lookup cost does not grow with the number of host and prefix routes:
//! hosts and path prefixes are hash lookups, one per host suffix and one per
//! path segment; only regexes are tried one by one (best first, stopping as
//! soon as none can beat what was found). `lookup` allocates nothing unless
//! the host has uppercase letters, and takes no lock.
//!
//! Precedence, highest first (the first difference decides):
//! 1. `priority` (higher wins);
//! 2. host: exact > wildcard (longer suffix first) > no host condition;
//! 3. path: exact (`=/a`) > prefix (longer first) > regex > no path;
//! 4. more method/header conditions > fewer (a method condition counts one,
//!    each header one);
//! 5. the older route (lower id, so created first) wins a remaining tie.
//!
//! A route with several hosts or paths matches through the best of them.
//!
//! Hosts: the request's host (`Host`, or the HTTP/2 authority) is compared
//! without its port, in lowercase, without one trailing dot.
//! `*.example.com` matches any host that ends in `.example.com` with at
//! least one label before it: `a.example.com` and `a.b.example.com`, not
//! `example.com` (as in Kong, Envoy and the Gateway API's HTTPRoute; unlike
//! a TLS certificate's `*.`, which covers one label).
//!
//! Paths are matched as given, without the query: the data plane gives the
//! path after its normalisation (docs/proxy.md), byte for byte otherwise.
//! Prefixes match at segment boundaries: `/users` matches `/users`,
//! `/users/` and `/users/7`, not `/usersx`; `/` matches every path.
//! `=/users` matches `/users` only. `~regex` is anchored at the start of
//! the path, not at its end.

mod table;

use std::borrow::Cow;
use std::collections::HashMap;

use foldhash::fast::RandomState;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::{HostPattern, PathPattern, Route, ValidationErrors};
use table::{Collector, Entry, HeaderConditions, PathTable, Request, Template};
pub use table::{Criterion, Rank};

/// What a route match tells the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the route in the list the router was built from.
    pub route: usize,
    /// Bytes of the path matched by the route's prefix (for `strip_path`).
    pub matched_len: usize,
}

/// One route a request matches, and through which of its patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchDetail {
    pub route: usize,
    pub matched_len: usize,
    /// Index into the route's `hosts` of the pattern that matched; `None`
    /// when the route has no host condition.
    pub host: Option<usize>,
    /// Index into the route's `paths`; `None` when it has no path condition.
    pub path: Option<usize>,
    pub rank: Rank,
}

/// The maps hash with foldhash, seeded per process: about twice as fast as
/// SipHash here (bench/router.sh). Requests only look keys up; what is in
/// the maps comes from the config, so a client cannot build long probes.
#[derive(Debug, Default)]
pub struct CompiledRouter {
    exact_hosts: HashMap<Box<str>, PathTable, RandomState>,
    /// Keyed by suffix with its leading dot: `.example.com`.
    wildcard_hosts: HashMap<Box<str>, PathTable, RandomState>,
    any_host: PathTable,
}

impl CompiledRouter {
    /// Builds the table. `routes` must be in snapshot order (sorted by id),
    /// so the index breaks ties in favour of the older route. Errors name
    /// the field (`routes[3].paths[0]`); a validated snapshot has none.
    pub fn build(routes: &[Route]) -> Result<CompiledRouter, ValidationErrors> {
        let mut router = CompiledRouter::default();
        let mut errors = ValidationErrors::default();
        if u32::try_from(routes.len()).is_err() {
            errors.push("routes", "too many routes");
            return Err(errors);
        }
        for (index, route) in routes.iter().enumerate() {
            if let Some(parsed) = Parsed::new(index, route, &mut errors) {
                router.add(index as u32, route.spec.priority, parsed);
            }
        }
        errors.into_result()?;
        router.any_host.finish();
        router.exact_hosts.values_mut().for_each(PathTable::finish);
        router
            .wildcard_hosts
            .values_mut()
            .for_each(PathTable::finish);
        Ok(router)
    }

    /// Puts one route in the table of each of its hosts (or the any-host
    /// table), once per path.
    fn add(&mut self, index: u32, priority: i32, route: Parsed) {
        let conditions = u8::from(!route.methods.is_empty())
            .saturating_add(u8::try_from(route.headers.len()).unwrap_or(u8::MAX));
        let mut template = Template {
            rank: Rank {
                priority,
                host: 0,
                path_kind: 0,
                path_len: 0,
                conditions,
                age: u32::MAX - index,
            },
            route: index,
            host: None,
            methods: &route.methods,
            headers: &route.headers,
        };
        if route.hosts.is_empty() {
            self.any_host.insert(&template, &route.paths);
        }
        for (i, host) in route.hosts.into_iter().enumerate() {
            let (map, key, host_rank) = match host {
                HostPattern::Exact(h) => (&mut self.exact_hosts, h, u32::MAX),
                HostPattern::Wildcard(suffix) => {
                    // A longer suffix is the more specific wildcard.
                    let rank = u32::try_from(suffix.len()).unwrap_or(u32::MAX - 1);
                    (&mut self.wildcard_hosts, suffix, rank)
                }
            };
            template.rank.host = host_rank;
            template.host = u16::try_from(i).ok();
            map.entry(key.into_boxed_str())
                .or_default()
                .insert(&template, &route.paths);
        }
    }

    /// Finds the route for a request. `host` may carry a port and any case;
    /// `path` is the request path without query.
    pub fn lookup(
        &self,
        host: &str,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<RouteMatch> {
        let mut best = Best(None);
        self.visit(host, path, &Request { method, headers }, &mut best);
        best.0.map(|(_, route, matched_len)| RouteMatch {
            route: route as usize,
            matched_len,
        })
    }

    /// Every route the request matches, each once (through its best host
    /// and path pattern), best first: the first is what [`lookup`] returns,
    /// the others are shadowed by it. Allocates; not for the request path.
    ///
    /// [`lookup`]: CompiledRouter::lookup
    pub fn matches(
        &self,
        host: &str,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Vec<MatchDetail> {
        let mut all = All(HashMap::new());
        self.visit(host, path, &Request { method, headers }, &mut all);
        let mut out: Vec<MatchDetail> = all.0.into_values().collect();
        out.sort_by_key(|m| std::cmp::Reverse(m.rank));
        out
    }

    /// Walks every table that can hold a match for the host.
    fn visit(&self, host: &str, path: &str, req: &Request<'_>, out: &mut impl Collector) {
        let host = normalize_host(host);
        let host = host.as_ref();
        if let Some(t) = self.exact_hosts.get(host) {
            t.lookup(path, req, out);
        }
        if !self.wildcard_hosts.is_empty() {
            // `a.b.example.com` tries `.b.example.com`, `.example.com` and
            // `.com`; never the whole host, so a wildcard needs a label.
            for (i, _) in host.match_indices('.').filter(|&(i, _)| i > 0) {
                if let Some(t) = self.wildcard_hosts.get(&host[i..]) {
                    t.lookup(path, req, out);
                }
            }
        }
        self.any_host.lookup(path, req, out);
    }
}

/// The request path's collector: the best entry so far (rank, route,
/// matched length); nothing ranked at or below it is looked at again.
struct Best(Option<(Rank, u32, usize)>);

impl Collector for Best {
    fn wants(&self, rank: &Rank) -> bool {
        self.0.is_none_or(|(best, _, _)| *rank > best)
    }

    fn found(&mut self, e: &Entry, matched_len: usize) -> bool {
        self.0 = Some((e.rank, e.route, matched_len));
        false
    }
}

/// `matches`' collector: the best entry of every route.
struct All(HashMap<u32, MatchDetail>);

impl Collector for All {
    fn wants(&self, _: &Rank) -> bool {
        true
    }

    fn found(&mut self, e: &Entry, matched_len: usize) -> bool {
        let detail = MatchDetail {
            route: e.route as usize,
            matched_len,
            host: e.host.map(usize::from),
            path: e.path.map(usize::from),
            rank: e.rank,
        };
        // Strictly better only: among equal ranks (one route's patterns)
        // the first found is the one `lookup` keeps.
        self.0
            .entry(e.route)
            .and_modify(|d| {
                if detail.rank > d.rank {
                    *d = detail.clone();
                }
            })
            .or_insert_with(|| detail.clone());
        true
    }
}

/// A route's patterns and conditions, parsed. The model validated them
/// already; a failure here means the snapshot is not what the control
/// plane checked.
struct Parsed {
    methods: Vec<Method>,
    paths: Vec<PathPattern>,
    hosts: Vec<HostPattern>,
    headers: HeaderConditions,
}

impl Parsed {
    /// `None` (and the reasons in `errors`) when any part does not parse.
    fn new(index: usize, route: &Route, errors: &mut ValidationErrors) -> Option<Parsed> {
        let before = errors.0.len();
        let at = |field: String| format!("routes[{index}].{field}");
        let spec = &route.spec;
        let mut parsed = Parsed {
            methods: Vec::with_capacity(spec.methods.len()),
            paths: Vec::with_capacity(spec.paths.len()),
            hosts: Vec::with_capacity(spec.hosts.len()),
            headers: header_conditions(index, route, errors),
        };
        for (i, m) in spec.methods.iter().enumerate() {
            match Method::from_bytes(m.as_bytes()) {
                Ok(m) => parsed.methods.push(m),
                Err(_) => errors.push(at(format!("methods[{i}]")), "not an HTTP method"),
            }
        }
        for (i, p) in spec.paths.iter().enumerate() {
            match PathPattern::parse(p) {
                Ok(p) => parsed.paths.push(p),
                Err(e) => errors.push(at(format!("paths[{i}]")), e),
            }
        }
        for (i, h) in spec.hosts.iter().enumerate() {
            match HostPattern::parse(h) {
                Ok(h) => parsed.hosts.push(h),
                Err(e) => errors.push(at(format!("hosts[{i}]")), e),
            }
        }
        // Entries keep pattern indexes as u16 (the model allows 100).
        if spec.hosts.len() > usize::from(u16::MAX) || spec.paths.len() > usize::from(u16::MAX) {
            errors.push(at("hosts".into()), "too many hosts or paths");
        }
        (errors.0.len() == before).then_some(parsed)
    }
}

fn header_conditions(
    index: usize,
    route: &Route,
    errors: &mut ValidationErrors,
) -> HeaderConditions {
    let mut out = Vec::with_capacity(route.spec.headers.len());
    for (name, values) in &route.spec.headers {
        let field = format!("routes[{index}].headers.{name}");
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            errors.push(field, "not a valid header name");
            continue;
        };
        let mut parsed = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match HeaderValue::from_str(v) {
                Ok(v) => parsed.push(v),
                Err(_) => errors.push(format!("{field}[{i}]"), "not a valid header value"),
            }
        }
        out.push((header, parsed.into_boxed_slice()));
    }
    out.into_boxed_slice()
}

/// Lowercases and strips the port and a trailing dot; borrows when the host
/// is already canonical (the common case).
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let without_port = match host.rfind(':') {
        // An IPv6 literal keeps its colons inside brackets.
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
