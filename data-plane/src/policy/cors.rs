//! `cors`: cross-origin requests from browsers (the Fetch standard's CORS
//! protocol). One policy in two places: the access phase (2000, before
//! authentication, since browsers send preflights without credentials) and
//! the answer (`responds`, after the response phase).
//!
//! - A preflight (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`) is answered by the gateway and never
//!   forwarded: 204 with `Access-Control-Allow-Origin`, `-Methods`,
//!   `-Headers` (the configured ones, or an echo of what the preflight
//!   asks), `-Credentials`, `-Max-Age`; an origin not allowed gets 403
//!   without any of them. With `preflight_continue` the preflight goes
//!   upstream like any request.
//! - Any other request with an allowed `Origin` gets
//!   `Access-Control-Allow-Origin` (and `-Credentials`, `-Expose-Headers`)
//!   on its answer, through `RequestCtx::response_headers`: so on the
//!   upstream's response (replacing the upstream's own) and also on the
//!   refusals of the policies after this one (401, 403, 429), which a page
//!   could not read otherwise. The proxy's own errors past the policies
//!   (413, 502...) carry none.
//! - Origins are `*` or exact `scheme://host[:port]` (the control plane
//!   lowercases them; a default port is ignored here), compared without
//!   regard to case. With `*` the answer is `*` (never with credentials:
//!   the schema refuses that pair); otherwise the request's origin is
//!   echoed and every answer, the upstream's included, says
//!   `Vary: Origin`, added to the upstream's `Vary`, so a cache never gives
//!   one origin's answer to another.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use turnpike_model::plugin::cors::CorsConfig;

use super::{Flow, Phase, Policy, Rejection, RequestCtx, ResponseCtx};

pub struct Cors {
    /// `None`: any origin.
    origins: Option<Vec<String>>,
    credentials: bool,
    preflight_continue: bool,
    methods: Option<HeaderValue>,
    /// `None`: echo the preflight's `Access-Control-Request-Headers`.
    headers: Option<HeaderValue>,
    exposed: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

const TRUE: HeaderValue = HeaderValue::from_static("true");
const ANY: HeaderValue = HeaderValue::from_static("*");

impl Cors {
    pub fn new(config: CorsConfig) -> Result<Cors, String> {
        let list = |l: &[String]| {
            (!l.is_empty())
                .then(|| HeaderValue::from_str(&l.join(", ")))
                .transpose()
                .map_err(|e| e.to_string())
        };
        let origins = (!config.origins.iter().any(|o| o == "*")).then(|| {
            config
                .origins
                .iter()
                .map(|o| without_default_port(&o.to_ascii_lowercase()).to_owned())
                .collect()
        });
        Ok(Cors {
            origins,
            credentials: config.credentials,
            preflight_continue: config.preflight_continue,
            methods: list(&config.methods)?,
            headers: list(&config.headers)?,
            exposed: list(&config.exposed_headers)?,
            max_age: config.max_age_s.map(HeaderValue::from),
        })
    }

    /// The `Access-Control-Allow-Origin` for this origin, if it is allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let Some(origins) = &self.origins else {
            return Some(ANY);
        };
        let asked = without_default_port(origin.to_str().ok()?);
        origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(asked))
            .then(|| origin.clone())
    }

    /// The answer to an allowed preflight.
    fn preflight(&self, allow_origin: HeaderValue, request: &HeaderMap) -> Rejection {
        let mut r = Rejection::new(StatusCode::NO_CONTENT, "preflight answered by the gateway");
        let h = &mut r.headers;
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.origins.is_some() {
            h.append(VARY, HeaderValue::from_static("Origin"));
        }
        if self.credentials {
            h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        if let Some(methods) = &self.methods {
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, methods.clone());
        }
        match &self.headers {
            Some(allowed) => {
                h.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
            }
            None => {
                h.append(
                    VARY,
                    HeaderValue::from_static("Access-Control-Request-Headers"),
                );
                if let Some(asked) = request.get(ACCESS_CONTROL_REQUEST_HEADERS) {
                    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
                }
            }
        }
        if let Some(max_age) = &self.max_age {
            h.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        r
    }
}

/// `https://x:443` is `https://x`, and `http://x:80` is `http://x`: browsers
/// leave the default port out of `Origin`.
fn without_default_port(origin: &str) -> &str {
    let lower_starts = |p: &str| {
        origin
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    match (origin.strip_suffix(":443"), origin.strip_suffix(":80")) {
        (Some(o), _) if lower_starts("https://") => o,
        (_, Some(o)) if lower_starts("http://") => o,
        _ => origin,
    }
}

impl Policy for Cors {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn priority(&self) -> u16 {
        2000
    }

    fn responds(&self) -> bool {
        true
    }

    fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Flow {
        let headers = &ctx.parts.headers;
        let Some(origin) = headers.get(ORIGIN) else {
            return Flow::Continue;
        };
        let allowed = self.allow_origin(origin);
        let preflight = ctx.parts.method == Method::OPTIONS
            && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if preflight && !self.preflight_continue {
            return Flow::Reject(match allowed {
                Some(o) => self.preflight(o, headers),
                None => Rejection::new(StatusCode::FORBIDDEN, "origin not allowed"),
            });
        }
        if let Some(o) = allowed {
            let h = &mut ctx.response_headers;
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, o);
            if self.credentials {
                h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
            }
            if let Some(exposed) = &self.exposed {
                h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, exposed.clone());
            }
        }
        Flow::Continue
    }

    /// `Vary: Origin` on every answer when the origin is echoed, whether or
    /// not the request had one (a cached answer without the CORS headers
    /// must not serve a cross-origin request).
    fn on_response(&self, ctx: &mut ResponseCtx<'_>) {
        if self.origins.is_none() {
            return;
        }
        let varies = ctx.headers.get_all(VARY).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("origin"))
            })
        });
        if !varies {
            ctx.headers.append(VARY, HeaderValue::from_static("Origin"));
        }
    }
}

#[cfg(test)]
#[path = "cors_tests.rs"]
mod tests;
