//! `GET /api/v1/routes/match?method=&host=&path=&header=name:value`: which
//! route a request would hit in the current config, through which host and
//! path pattern, and which other routes match it too but are shadowed (best
//! first, each with the step of the precedence rule it lost on).
//!
//! It runs the data plane's own matcher (`turnpike_model::router`), compiled
//! once per published version (`snapshot::Routing`), so its answer is the
//! data planes' answer for that version.

use std::str::FromStr;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Serialize;
use turnpike_model::ValidationErrors;
use turnpike_model::router::{Criterion, MatchDetail};
use uuid::Uuid;

use crate::snapshot::Routing;
use crate::{AppState, Error};

/// At most this many `header=` parameters (a route has at most 20
/// conditions; more cannot change an answer).
pub const MAX_HEADERS: usize = 100;

/// The request to match, as a data plane would see it.
#[derive(Debug)]
struct Probe {
    method: Method,
    /// The `Host` header (or HTTP/2 authority), port and case as sent.
    host: String,
    /// The path as the router sees it (after the proxy's normalisation),
    /// without the query.
    path: String,
    headers: HeaderMap,
}

#[derive(Debug, Serialize)]
pub struct MatchAnswer {
    /// The config version that answered.
    version: u64,
    route: MatchedRoute,
    /// Other routes the request matches, best first.
    shadowed: Vec<MatchedRoute>,
}

#[derive(Debug, Serialize)]
struct MatchedRoute {
    id: Uuid,
    name: String,
    upstream: UpstreamRef,
    priority: i32,
    /// The host pattern that matched; `None`: the route has no hosts.
    host: Option<String>,
    /// The path pattern that matched; `None`: the route has no paths.
    path: Option<String>,
    /// The part of the request path the pattern matched (what
    /// `strip_path` removes).
    matched_path: String,
    /// The route's method and header conditions, counted.
    conditions: u8,
    /// Shadowed routes only: the first step of the precedence rule on
    /// which the winner beats this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    lost_on: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct UpstreamRef {
    id: String,
    name: String,
}

type RawPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub async fn handle(
    State(state): State<AppState>,
    raw: RawPairs,
) -> Result<Json<MatchAnswer>, Error> {
    let probe = probe(raw)?;
    let published = state.publisher.current();
    let routing = published.routing().await?;
    let all = routing
        .router
        .matches(&probe.host, &probe.path, &probe.method, &probe.headers);
    let Some((winner, rest)) = all.split_first() else {
        return Err(Error::NotFound {
            kind: "route for the request",
            key: format!("{} {}{}", probe.method, probe.host, probe.path),
        });
    };
    Ok(Json(MatchAnswer {
        version: published.version,
        route: view(&routing, &probe.path, winner, None),
        shadowed: rest
            .iter()
            .map(|m| {
                // Two routes always differ in age at least.
                let lost_on = winner.rank.decided_by(&m.rank).unwrap_or(Criterion::Age);
                view(&routing, &probe.path, m, Some(lost_on.as_str()))
            })
            .collect(),
    }))
}

fn view(
    routing: &Routing,
    path: &str,
    m: &MatchDetail,
    lost_on: Option<&'static str>,
) -> MatchedRoute {
    let route = &routing.snapshot.routes[m.route];
    let spec = &route.spec;
    // Snapshots are validated: the upstream exists (sorted by id).
    let upstream_name = Uuid::parse_str(&spec.upstream)
        .ok()
        .and_then(|id| {
            let u = &routing.snapshot.upstreams;
            u.binary_search_by_key(&id, |u| u.id).ok().map(|i| &u[i])
        })
        .map(|u| u.spec.name.clone())
        .unwrap_or_default();
    MatchedRoute {
        id: route.id,
        name: spec.name.clone(),
        upstream: UpstreamRef {
            id: spec.upstream.clone(),
            name: upstream_name,
        },
        priority: spec.priority,
        host: m.host.and_then(|i| spec.hosts.get(i)).cloned(),
        path: m.path.and_then(|i| spec.paths.get(i)).cloned(),
        matched_path: path.get(..m.matched_len).unwrap_or_default().to_owned(),
        conditions: u8::from(!spec.methods.is_empty())
            .saturating_add(u8::try_from(spec.headers.len()).unwrap_or(u8::MAX)),
        lost_on,
    }
}

/// Parses the query strictly: unknown or repeated parameters (but
/// `header`), a missing path and malformed values are 400s naming the
/// parameter (`header[1]` for the second `header=`).
fn probe(raw: RawPairs) -> Result<Probe, Error> {
    let Query(pairs) = raw.map_err(|e| Error::BadRequest(e.body_text()))?;
    let mut errors = ValidationErrors::default();
    let (mut method, mut host, mut path) = (None, None, None);
    let mut header_params = Vec::new();
    for (key, value) in pairs {
        let slot = match key.as_str() {
            "method" => &mut method,
            "host" => &mut host,
            "path" => &mut path,
            "header" => {
                header_params.push(value);
                continue;
            }
            _ => {
                errors.push(key, "is not a known query parameter");
                continue;
            }
        };
        if slot.replace(value).is_some() {
            errors.push(key, "must be given at most once");
        }
    }
    let method = match method {
        None => Some(Method::GET),
        Some(m) => Method::from_bytes(m.as_bytes()).ok().or_else(|| {
            errors.push(
                "method",
                "must be an HTTP method token such as GET (case-sensitive)",
            );
            None
        }),
    };
    let host = host.unwrap_or_default();
    if !host.is_empty() && (host.contains('@') || Authority::from_str(&host).is_err()) {
        errors.push(
            "host",
            "must be a host as in a Host header, optionally with a port",
        );
    }
    match &path {
        None => errors.push("path", "is required: the request path, such as /users/7"),
        Some(p) => check_path(p, &mut errors),
    }
    if header_params.len() > MAX_HEADERS {
        errors.push("header", format!("at most {MAX_HEADERS} headers"));
    }
    let mut headers = HeaderMap::new();
    for (i, raw) in header_params.iter().enumerate() {
        match parse_header(raw) {
            Ok((name, value)) => {
                headers.append(name, value);
            }
            Err(msg) => errors.push(format!("header[{i}]"), msg),
        }
    }
    errors.into_result()?;
    Ok(Probe {
        method: method.unwrap_or_default(),
        host,
        path: path.unwrap_or_default(),
        headers,
    })
}

/// A path a data plane can receive: origin-form, no query or fragment.
fn check_path(path: &str, errors: &mut ValidationErrors) {
    if !path.starts_with('/') {
        errors.push("path", "must start with '/'");
    } else if path.contains(['?', '#']) {
        errors.push("path", "must not contain a query or fragment ('?', '#')");
    } else if PathAndQuery::from_str(path).is_err() {
        errors.push(
            "path",
            "must be a request path as sent (percent-encode spaces and other special characters)",
        );
    }
}

/// `name:value`, the value's surrounding spaces and tabs ignored as in
/// HTTP/1.
fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), &'static str> {
    let Some((name, value)) = raw.split_once(':') else {
        return Err("must be name:value");
    };
    let name = HeaderName::from_str(name).map_err(|_| "the name is not a valid header name")?;
    if name == http::header::HOST {
        return Err("give the host with the `host` parameter");
    }
    let value = value.trim_matches([' ', '\t']);
    let value = HeaderValue::from_str(value)
        .map_err(|_| "the value must be visible ASCII (spaces and tabs inside allowed)")?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Probe, Vec<String>> {
        let pairs = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        probe(Ok(Query(pairs))).map_err(|e| match e {
            Error::Validation(v) => v.0.into_iter().map(|e| e.field).collect(),
            other => panic!("{other}"),
        })
    }

    #[test]
    fn defaults_and_repeated_headers() {
        let p = parse(&[("path", "/a"), ("header", "X-V: 1"), ("header", "x-v:2")]).unwrap();
        assert_eq!(p.method, Method::GET);
        assert_eq!(p.host, "");
        let values: Vec<_> = p.headers.get_all("x-v").iter().collect();
        assert_eq!(values, ["1", "2"]);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let fields = parse(&[
            ("method", "G T"),
            ("host", "a b"),
            ("header", "novalue"),
            ("header", "ok:1"),
            ("header", "bad name:1"),
            ("header", "host:x"),
            ("extra", "1"),
        ])
        .unwrap_err();
        assert_eq!(
            fields,
            [
                "extra",
                "method",
                "host",
                "path",
                "header[0]",
                "header[2]",
                "header[3]"
            ]
        );
        assert_eq!(
            parse(&[("path", "/a"), ("path", "/b")]).unwrap_err(),
            ["path"]
        );
        for bad in ["users", "/a?b=1", "/a#x", "/a b", "/\u{1}"] {
            assert_eq!(parse(&[("path", bad)]).unwrap_err(), ["path"], "{bad:?}");
        }
        assert!(parse(&[("path", "/a%20b"), ("host", "API.example.com:8443")]).is_ok());
    }
}
