//! Route matching: host, then path, then method, with one documented
//! precedence rule. Lookup cost does not grow with the number of host and
//! prefix routes: hosts and path prefixes are hash lookups, one per host
//! suffix and one per path segment.
//!
//! Precedence, highest first (the first difference decides):
//! 1. `priority` (higher wins);
//! 2. host: exact > wildcard (longer suffix first) > no host condition;
//! 3. path: exact (`=/a`) > prefix (longer first) > regex > no path;
//! 4. more method/header conditions > fewer (a method condition counts one,
//!    each header one);
//! 5. the older route (lower id) wins a remaining tie.
//!
//! Prefixes match at segment boundaries: `/users` matches `/users`,
//! `/users/` and `/users/7`, not `/usersx`.

mod table;

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use turnpike_model::{HostPattern, PathPattern, Route};

use table::{Candidate, HeaderConditions, PathTable, Rank, Request};

/// What a route match tells the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the route in the compiled route list.
    pub route: usize,
    /// Bytes of the path matched by the route's prefix (for `strip_path`).
    pub matched_len: usize,
}

#[derive(Debug, Default)]
pub struct CompiledRouter {
    exact_hosts: HashMap<Box<str>, PathTable>,
    /// Keyed by suffix with its leading dot: `.example.com`.
    wildcard_hosts: HashMap<Box<str>, PathTable>,
    any_host: PathTable,
}

impl CompiledRouter {
    /// Builds the table. `routes` must be sorted by id (snapshot order), so
    /// the index breaks ties in favour of the older route.
    pub fn build(routes: &[Route]) -> Result<CompiledRouter, String> {
        let mut router = CompiledRouter::default();
        for (index, route) in routes.iter().enumerate() {
            let spec = &route.spec;
            let methods = spec
                .methods
                .iter()
                .map(|m| {
                    Method::from_bytes(m.as_bytes())
                        .map_err(|_| format!("route {}: bad method {m}", spec.name))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let paths = spec
                .paths
                .iter()
                .map(|p| {
                    PathPattern::parse(p).map_err(|e| format!("route {}: path {p}: {e}", spec.name))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let hosts = spec
                .hosts
                .iter()
                .map(|h| {
                    HostPattern::parse(h).map_err(|e| format!("route {}: host {h}: {e}", spec.name))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let headers = header_conditions(spec)?;
            let base = Rank {
                priority: spec.priority,
                host: 0,
                path_kind: 0,
                path_len: 0,
                conditions: u8::from(!methods.is_empty()).saturating_add(headers.len() as u8),
                age: usize::MAX - index,
            };
            if hosts.is_empty() {
                router
                    .any_host
                    .insert(index, base, &paths, &methods, &headers);
            }
            for host in hosts {
                let (map, key, host_rank) = match host {
                    HostPattern::Exact(h) => (&mut router.exact_hosts, h, u32::MAX),
                    HostPattern::Wildcard(suffix) => {
                        // A longer suffix is the more specific wildcard.
                        let rank = suffix.len() as u32;
                        (&mut router.wildcard_hosts, suffix, rank)
                    }
                };
                let rank = Rank {
                    host: host_rank,
                    ..base
                };
                map.entry(key.into_boxed_str())
                    .or_default()
                    .insert(index, rank, &paths, &methods, &headers);
            }
        }
        router.finish();
        Ok(router)
    }

    fn finish(&mut self) {
        self.any_host.finish();
        self.exact_hosts.values_mut().for_each(PathTable::finish);
        self.wildcard_hosts.values_mut().for_each(PathTable::finish);
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
        let req = Request { method, headers };
        let host = normalize_host(host);
        let host = host.as_ref();
        let mut best: Option<Candidate> = None;
        if let Some(t) = self.exact_hosts.get(host) {
            t.lookup(path, &req, &mut best);
        }
        if !self.wildcard_hosts.is_empty() {
            // `a.b.example.com` tries `.b.example.com`, `.example.com`, `.com`.
            for (i, _) in host.match_indices('.') {
                if let Some(t) = self.wildcard_hosts.get(&host[i..]) {
                    t.lookup(path, &req, &mut best);
                }
            }
        }
        self.any_host.lookup(path, &req, &mut best);
        best.map(|c| RouteMatch {
            route: c.route,
            matched_len: c.matched_len,
        })
    }
}

/// Parses a route's header conditions (validated by the model already; a
/// failure here means the snapshot is not what the control plane checked).
fn header_conditions(spec: &turnpike_model::RouteSpec) -> Result<HeaderConditions, String> {
    spec.headers
        .iter()
        .map(|(name, values)| {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("route {}: bad header name {name}", spec.name))?;
            let values = values
                .iter()
                .map(|v| {
                    HeaderValue::from_str(v)
                        .map_err(|_| format!("route {}: bad header value", spec.name))
                })
                .collect::<Result<Box<[_]>, _>>()?;
            Ok((name, values))
        })
        .collect()
}

/// Lowercases and strips the port and a trailing dot; borrows when the host
/// is already canonical (the common case).
fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let without_port = match host.rfind(':') {
        // An IPv6 literal keeps its colons inside brackets.
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}

#[cfg(test)]
mod tests;
