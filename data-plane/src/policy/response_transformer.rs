//! `response-transformer` (response phase, 800): edits the upstream's
//! answer before it goes back, as `request-transformer` edits requests
//! (same order of operations, same refused headers), on headers and
//! top-level fields of a JSON body (`Content-Type` JSON, an object; any
//! other body goes back untouched). The body is read whole (policy/mod.rs,
//! "Bodies") only when there are JSON operations and the answer is JSON
//! and uncompressed (a compressed one goes back untouched; on such routes
//! the upstream is asked for none). Answers the proxy or a policy makes
//! itself (401, 429, 502...) are not edited.

use turnpike_model::plugin::response_transformer::ResponseTransformerConfig;

use super::body::BodyRewrite;
use super::request_transformer::{HeaderOps, JsonOps};
use super::{Phase, Policy, ResponseCtx};

pub struct ResponseTransformer {
    headers: HeaderOps,
    json: Option<JsonOps>,
}

impl ResponseTransformer {
    pub fn new(c: ResponseTransformerConfig) -> Result<ResponseTransformer, String> {
        Ok(ResponseTransformer {
            headers: HeaderOps::new(
                &c.remove.headers,
                &c.rename.headers,
                &c.replace.headers,
                &c.add.headers,
            )?,
            json: JsonOps::new(&c.remove.json, &c.rename.json, &c.replace.json, &c.add.json),
        })
    }
}

impl Policy for ResponseTransformer {
    fn name(&self) -> &'static str {
        "response-transformer"
    }

    fn phase(&self) -> Phase {
        Phase::Response
    }

    fn priority(&self) -> u16 {
        800
    }

    fn on_response(&self, ctx: &mut ResponseCtx<'_>) {
        self.headers.apply(ctx.headers);
    }

    fn response_body(&self) -> Option<&dyn BodyRewrite> {
        self.json.as_ref().map(|j| j as &dyn BodyRewrite)
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, StatusCode};
    use serde_json::json;

    use super::*;

    fn transformer(config: serde_json::Value) -> ResponseTransformer {
        ResponseTransformer::new(serde_json::from_value(config).unwrap()).unwrap()
    }

    #[test]
    fn edits_headers_then_json_fields() {
        let t = transformer(json!({
            "remove": {"headers": ["server"], "json": ["secret"]},
            "rename": {"headers": {"x-upstream-id": "x-id"}, "json": {"name": "service"}},
            "replace": {"headers": {"cache-control": "no-store", "x-absent": "no"}, "json": {"method": "VERB"}},
            "add": {"headers": {"x-added": "1", "cache-control": "not added"}, "json": {"gateway": {"name": "turnpike"}}}
        }));
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("server", "echo"),
            ("x-upstream-id", "u1"),
            ("cache-control", "max-age=60"),
            ("content-type", "application/json"),
        ] {
            headers.insert(k, HeaderValue::from_static(v));
        }
        let request = HeaderMap::new();
        let mut ctx = ResponseCtx {
            status: StatusCode::OK,
            headers: &mut headers,
            request_headers: &request,
        };
        t.on_response(&mut ctx);
        assert_eq!(headers.get("server"), None);
        assert_eq!(headers.get("x-id").unwrap(), "u1");
        assert_eq!(headers.get("x-upstream-id"), None);
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(headers.get("x-absent"), None, "replace only what is there");
        assert_eq!(headers.get("x-added").unwrap(), "1");

        let body = t.response_body().expect("JSON operations");
        assert!(body.wants(&headers));
        let out = body
            .rewrite(
                &mut headers,
                br#"{"name":"echo","secret":"s","method":"GET","path":"/"}"#,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"service":"echo","method":"VERB","path":"/","gateway":{"name":"turnpike"}}"#
        );
        // Not JSON: not wanted; JSON that is not an object: untouched.
        headers.insert("content-type", HeaderValue::from_static("text/html"));
        assert!(!body.wants(&headers));
        assert_eq!(body.rewrite(&mut headers, b"[1,2]").unwrap(), None);
        assert_eq!(body.rewrite(&mut headers, b"{oops").unwrap(), None);
    }

    #[test]
    fn no_json_operations_no_body_rewrite() {
        let t = transformer(json!({"add": {"headers": {"x-a": "1"}}}));
        assert!(t.response_body().is_none());
    }

    #[test]
    fn gateway_headers_are_refused() {
        for config in [
            json!({"add": {"headers": {"Content-Length": "1"}}}),
            json!({"rename": {"headers": {"x-a": "transfer-encoding"}}}),
            json!({"remove": {"headers": ["connection"]}}),
        ] {
            let c = serde_json::from_value(config.clone()).unwrap();
            assert!(ResponseTransformer::new(c).is_err(), "{config}");
        }
    }
}
