//! `key-auth`: the consumer presents a key in a header or a query parameter
//! (the configured names, tried in order). A known key identifies the
//! consumer; an unknown one is 401 at once. With `hide_credentials` the key
//! is removed before the request goes upstream.

use std::borrow::Cow;

use http::header::WWW_AUTHENTICATE;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, StatusCode, Uri};
use turnpike_model::plugin::key_auth::KeyAuthConfig;

use super::{Flow, Phase, Policy, Rejection, RequestCtx};

pub struct KeyAuth {
    config: KeyAuthConfig,
    headers: Vec<HeaderName>,
}

impl KeyAuth {
    pub fn new(config: KeyAuthConfig) -> KeyAuth {
        let headers = config
            .key_names
            .iter()
            .filter_map(|n| HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).ok())
            .collect();
        KeyAuth { config, headers }
    }

    fn challenge(message: &'static str) -> Rejection {
        Rejection::new(StatusCode::UNAUTHORIZED, message).with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Key realm=\"turnpike\""),
        )
    }

    /// The presented key and where it was: a header name, or the index of
    /// the query parameter name.
    fn find<'a>(&self, ctx: &'a RequestCtx<'_>) -> Option<(Cow<'a, [u8]>, Found)> {
        if self.config.key_in_header {
            for (i, h) in self.headers.iter().enumerate() {
                if let Some(v) = ctx.parts.headers.get(h) {
                    return Some((Cow::Borrowed(v.as_bytes()), Found::Header(i)));
                }
            }
        }
        if self.config.key_in_query
            && let Some(q) = ctx.parts.uri.query()
        {
            for name in &self.config.key_names {
                for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                    if k == name.as_str() {
                        let v = match v {
                            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
                        };
                        return Some((v, Found::Query(name.clone())));
                    }
                }
            }
        }
        None
    }
}

enum Found {
    Header(usize),
    Query(String),
}

impl Policy for KeyAuth {
    fn name(&self) -> &'static str {
        "key-auth"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn priority(&self) -> u16 {
        1250
    }

    fn authenticates(&self) -> bool {
        true
    }

    fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Flow {
        let Some((key, found)) = self.find(ctx) else {
            return Flow::Absent(Self::challenge("no API key found in the request"));
        };
        let Some(consumer) = ctx.consumers.by_key(&key).cloned() else {
            return Flow::Reject(Self::challenge("invalid API key"));
        };
        ctx.consumer = Some(consumer);
        if self.config.hide_credentials {
            match found {
                Found::Header(i) => {
                    ctx.parts.headers.remove(&self.headers[i]);
                }
                Found::Query(name) => remove_query_param(&mut ctx.parts.uri, &name),
            }
        }
        Flow::Continue
    }
}

/// Removes every `name=` pair from the URI's query, keeping the others as
/// they were written.
fn remove_query_param(uri: &mut Uri, name: &str) {
    let Some(q) = uri.query() else { return };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| {
            let k = pair.split('=').next().unwrap_or("");
            form_urlencoded::parse(k.as_bytes())
                .next()
                .is_none_or(|(k, _)| k != name)
        })
        .collect();
    let pq = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    if let Ok(pq) = PathAndQuery::try_from(pq) {
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(u) = Uri::from_parts(parts) {
            *uri = u;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_the_named_parameter() {
        let mut uri: Uri = "/a?x=1&apikey=s3cret&y=2&apikey=again".parse().unwrap();
        remove_query_param(&mut uri, "apikey");
        assert_eq!(uri.to_string(), "/a?x=1&y=2");
        let mut uri: Uri = "/a?apikey=s3cret".parse().unwrap();
        remove_query_param(&mut uri, "apikey");
        assert_eq!(uri.to_string(), "/a");
    }
}
