//! The per-host path table: exact paths and prefixes in hash maps, regexes
//! in a list, each bucket sorted best-first so a lookup stops early.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use regex::Regex;
use turnpike_model::PathPattern;

/// How good a match is; compared field by field in declaration order (see
/// the precedence rule in the module above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank {
    pub priority: i32,
    pub host: u32,
    /// exact 3 > prefix 2 > regex 1 > no path condition 0.
    pub path_kind: u8,
    pub path_len: usize,
    /// Method and header conditions: a route with more of them wins a tie.
    pub conditions: u8,
    /// Higher for older routes (lower index).
    pub age: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub rank: Rank,
    pub route: usize,
    pub matched_len: usize,
}

/// Header conditions of a route: each header present with one of its values.
pub type HeaderConditions = Box<[(HeaderName, Box<[HeaderValue]>)]>;

#[derive(Debug)]
struct Entry {
    rank: Rank,
    route: usize,
    /// Empty: any method.
    methods: Box<[Method]>,
    headers: HeaderConditions,
}

impl Entry {
    fn accepts(&self, req: &Request<'_>) -> bool {
        (self.methods.is_empty() || self.methods.contains(req.method))
            && self
                .headers
                .iter()
                .all(|(name, values)| req.headers.get_all(name).iter().any(|v| values.contains(v)))
    }
}

/// What the conditions beyond host and path look at.
pub struct Request<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

#[derive(Debug, Default)]
pub struct PathTable {
    exact: HashMap<Box<str>, Vec<Entry>>,
    /// Keyed by the prefix without trailing slash; `/` for "every path".
    prefix: HashMap<Box<str>, Vec<Entry>>,
    regex: Vec<(Regex, Entry)>,
}

impl PathTable {
    pub fn insert(
        &mut self,
        route: usize,
        base: Rank,
        paths: &[PathPattern],
        methods: &[Method],
        headers: &HeaderConditions,
    ) {
        let entry = |rank: Rank| Entry {
            rank,
            route,
            methods: methods.into(),
            headers: headers.clone(),
        };
        if paths.is_empty() {
            let rank = Rank {
                path_kind: 0,
                ..base
            };
            self.prefix.entry("/".into()).or_default().push(entry(rank));
        }
        for p in paths {
            match p {
                PathPattern::Exact(path) => {
                    let rank = Rank {
                        path_kind: 3,
                        path_len: path.len(),
                        ..base
                    };
                    self.exact
                        .entry(path.as_str().into())
                        .or_default()
                        .push(entry(rank));
                }
                PathPattern::Prefix(prefix) => {
                    let rank = Rank {
                        path_kind: 2,
                        path_len: prefix.len(),
                        ..base
                    };
                    self.prefix
                        .entry(prefix.as_str().into())
                        .or_default()
                        .push(entry(rank));
                }
                PathPattern::Regex(re) => {
                    let rank = Rank {
                        path_kind: 1,
                        ..base
                    };
                    self.regex.push((re.clone(), entry(rank)));
                }
            }
        }
    }

    /// Sorts every bucket best-first.
    pub fn finish(&mut self) {
        let by_rank = |a: &Entry, b: &Entry| b.rank.cmp(&a.rank);
        self.exact.values_mut().for_each(|v| v.sort_by(by_rank));
        self.prefix.values_mut().for_each(|v| v.sort_by(by_rank));
        self.regex.sort_by(|a, b| by_rank(&a.1, &b.1));
    }

    /// Improves `best` with this table's matches for `path` and `req`.
    pub fn lookup(&self, path: &str, req: &Request<'_>, best: &mut Option<Candidate>) {
        if let Some(v) = self.exact.get(path) {
            consider(v.iter(), path.len(), req, best);
        }
        if !self.prefix.is_empty() {
            if let Some(v) = self.prefix.get("/") {
                consider(v.iter(), 0, req, best);
            }
            // Every segment boundary is a candidate prefix: `/a/b/c` tries
            // `/a`, `/a/b` and `/a/b/c`.
            let ends = path.match_indices('/').map(|(i, _)| i).filter(|&i| i > 0);
            let full = (!path.ends_with('/') && path.len() > 1).then_some(path.len());
            for end in ends.chain(full) {
                if let Some(v) = self.prefix.get(&path[..end]) {
                    consider(v.iter(), end, req, best);
                }
            }
        }
        for (re, e) in &self.regex {
            if best.is_some_and(|b| b.rank >= e.rank) {
                break;
            }
            if let Some(m) = re.find(path) {
                consider(std::iter::once(e), m.end(), req, best);
            }
        }
    }
}

fn consider<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    matched_len: usize,
    req: &Request<'_>,
    best: &mut Option<Candidate>,
) {
    for e in entries {
        if best.is_some_and(|b| b.rank >= e.rank) {
            return;
        }
        if e.accepts(req) {
            *best = Some(Candidate {
                rank: e.rank,
                route: e.route,
                matched_len,
            });
            return;
        }
    }
}
