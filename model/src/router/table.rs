//! The per-host path table: exact paths and prefixes in hash maps, regexes
//! in a list, each bucket sorted best-first so a lookup stops early.
//!
//! A lookup hands what it finds to a [`Collector`]: the request path keeps
//! only the best match (and stops as soon as nothing better can come), the
//! control plane's `routes/match` collects every match to show what is
//! shadowed. Both walk the same buckets, so they cannot disagree.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use regex::Regex;

use crate::PathPattern;

/// How good a match is; compared field by field in declaration order, which
/// is the precedence rule of the module above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rank {
    pub(crate) priority: i32,
    /// Exact `u32::MAX` > wildcard (its suffix length, so longer first) >
    /// no host condition 0.
    pub(crate) host: u32,
    /// Exact 3 > prefix 2 > regex 1 > no path condition 0.
    pub(crate) path_kind: u8,
    /// Length of an exact path or prefix (longer first); 0 for a regex.
    pub(crate) path_len: u32,
    /// Method and header conditions: a route with more of them wins a tie.
    pub(crate) conditions: u8,
    /// Higher for older routes (lower index in the snapshot's id order).
    pub(crate) age: u32,
}

/// Which step of the precedence rule decides between two matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    Priority,
    Host,
    Path,
    Conditions,
    Age,
}

impl Criterion {
    pub fn as_str(self) -> &'static str {
        match self {
            Criterion::Priority => "priority",
            Criterion::Host => "host",
            Criterion::Path => "path",
            Criterion::Conditions => "conditions",
            Criterion::Age => "age",
        }
    }
}

impl Rank {
    /// The first step of the rule on which `self` and `other` differ; `None`
    /// for the same rank (only ever the same route).
    pub fn decided_by(&self, other: &Rank) -> Option<Criterion> {
        if self.priority != other.priority {
            Some(Criterion::Priority)
        } else if self.host != other.host {
            Some(Criterion::Host)
        } else if (self.path_kind, self.path_len) != (other.path_kind, other.path_len) {
            Some(Criterion::Path)
        } else if self.conditions != other.conditions {
            Some(Criterion::Conditions)
        } else if self.age != other.age {
            Some(Criterion::Age)
        } else {
            None
        }
    }
}

/// Header conditions of a route: each header present with one of its values.
pub(crate) type HeaderConditions = Box<[(HeaderName, Box<[HeaderValue]>)]>;

/// One (route, host pattern, path pattern) in a bucket.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) rank: Rank,
    pub(crate) route: u32,
    /// Indexes into the route's `hosts` and `paths`: what `matches` reports
    /// as the reason. `None` when the route has no such condition.
    pub(crate) host: Option<u16>,
    pub(crate) path: Option<u16>,
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
pub(crate) struct Request<'a> {
    pub(crate) method: &'a Method,
    pub(crate) headers: &'a HeaderMap,
}

/// Receives the entries a lookup finds, in each bucket best-first.
pub(crate) trait Collector {
    /// False when an entry of `rank` cannot change the outcome any more;
    /// since buckets are sorted, the rest of the bucket is skipped too.
    fn wants(&self, rank: &Rank) -> bool;
    /// An entry whose conditions the request meets; returns whether the
    /// (lower ranked) rest of its bucket still matters.
    fn found(&mut self, entry: &Entry, matched_len: usize) -> bool;
}

/// A route's shared part of every entry it puts in the tables.
pub(crate) struct Template<'a> {
    pub(crate) rank: Rank,
    pub(crate) route: u32,
    pub(crate) host: Option<u16>,
    pub(crate) methods: &'a [Method],
    pub(crate) headers: &'a HeaderConditions,
}

#[derive(Debug, Default)]
pub(crate) struct PathTable {
    exact: HashMap<Box<str>, Vec<Entry>, RandomState>,
    /// Keyed by the prefix without trailing slash; `/` for "every path"
    /// (prefix `/` and routes without paths).
    prefix: HashMap<Box<str>, Vec<Entry>, RandomState>,
    regex: Vec<(Regex, Entry)>,
}

impl PathTable {
    pub(crate) fn insert(&mut self, t: &Template<'_>, paths: &[PathPattern]) {
        let entry = |path_kind: u8, path_len: usize, path: Option<u16>| Entry {
            rank: Rank {
                path_kind,
                // Patterns are at most 1024 bytes (model validation).
                path_len: u32::try_from(path_len).unwrap_or(u32::MAX),
                ..t.rank
            },
            route: t.route,
            host: t.host,
            path,
            methods: t.methods.into(),
            headers: t.headers.clone(),
        };
        if paths.is_empty() {
            self.prefix
                .entry("/".into())
                .or_default()
                .push(entry(0, 0, None));
        }
        for (i, p) in paths.iter().enumerate() {
            let index = u16::try_from(i).ok();
            match p {
                PathPattern::Exact(path) => self
                    .exact
                    .entry(path.as_str().into())
                    .or_default()
                    .push(entry(3, path.len(), index)),
                PathPattern::Prefix(prefix) => self
                    .prefix
                    .entry(prefix.as_str().into())
                    .or_default()
                    .push(entry(2, prefix.len(), index)),
                PathPattern::Regex(re) => self.regex.push((re.clone(), entry(1, 0, index))),
            }
        }
    }

    /// Sorts every bucket best-first. Stable, so entries of equal rank (one
    /// route's patterns) keep the order the operator wrote them in.
    pub(crate) fn finish(&mut self) {
        let by_rank = |a: &Entry, b: &Entry| b.rank.cmp(&a.rank);
        self.exact.values_mut().for_each(|v| v.sort_by(by_rank));
        self.prefix.values_mut().for_each(|v| v.sort_by(by_rank));
        self.regex.sort_by(|a, b| by_rank(&a.1, &b.1));
    }

    /// Hands this table's matches for `path` and `req` to `out`.
    pub(crate) fn lookup(&self, path: &str, req: &Request<'_>, out: &mut impl Collector) {
        if let Some(v) = self.exact.get(path) {
            scan(v.iter(), path.len(), req, out);
        }
        if !self.prefix.is_empty() {
            if let Some(v) = self.prefix.get("/") {
                scan(v.iter(), 0, req, out);
            }
            // Every segment boundary is a candidate prefix: `/a/b/c` tries
            // `/a`, `/a/b` and `/a/b/c`: one hash lookup per segment, however
            // many prefixes there are. `/` was tried above (`//x` would
            // offer it again).
            let ends = path
                .match_indices('/')
                .map(|(i, _)| i)
                .filter(|&i| i > 0 && &path[..i] != "/");
            let full = (!path.ends_with('/') && path.len() > 1).then_some(path.len());
            for end in ends.chain(full) {
                if let Some(v) = self.prefix.get(&path[..end]) {
                    scan(v.iter(), end, req, out);
                }
            }
        }
        for (re, e) in &self.regex {
            if !out.wants(&e.rank) {
                break;
            }
            if let Some(m) = re.find(path)
                && e.accepts(req)
                && !out.found(e, m.end())
            {
                break;
            }
        }
    }
}

fn scan<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    matched_len: usize,
    req: &Request<'_>,
    out: &mut impl Collector,
) {
    for e in entries {
        if !out.wants(&e.rank) {
            return;
        }
        if e.accepts(req) && !out.found(e, matched_len) {
            return;
        }
    }
}
