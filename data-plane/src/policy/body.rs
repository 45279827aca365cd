//! Whole bodies, for the policies that rewrite them (`request-transformer`,
//! `response-transformer`, `json-xml`): the [`BodyRewrite`] hook a policy
//! hands out (`Policy::request_body`, `Policy::response_body`), the
//! media-type tests they share, and [`Json`], a JSON document that keeps
//! its fields in the order they came (serde_json's `Value` sorts them) and
//! keeps repeated names.

use std::borrow::Cow;
use std::fmt;

use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::Rejection;

/// The most the proxy reads of a body it must rewrite: a request over it
/// (or over the route's body limit, if smaller) is a 413, a response over
/// it a 502.
pub const BUFFER_MAX: u64 = 8 << 20;

/// The most a rewrite may produce (JSON → XML repeats names, so a body can
/// grow): over it, 413 for a request, 502 for a response.
pub const OUTPUT_MAX: usize = 16 << 20;

/// A policy's rewrite of whole bodies. The proxy asks [`wants`] with the
/// headers as the policies before it left them; when one says yes, it reads
/// the whole body (bounded), calls [`rewrite`] of each that said yes in
/// chain order, and sends the result with its own `Content-Length`.
///
/// [`wants`]: BodyRewrite::wants
/// [`rewrite`]: BodyRewrite::rewrite
pub trait BodyRewrite: Send + Sync {
    /// Whether this message's body is one this rewrite handles (usually:
    /// its `Content-Type`).
    fn wants(&self, headers: &HeaderMap) -> bool;

    /// The new body (`None`: unchanged); sets `Content-Type` if it changes
    /// it. Called with the body's current headers, so a rewrite that no
    /// longer applies after an earlier one (a converted `Content-Type`)
    /// leaves the body alone.
    fn rewrite(&self, headers: &mut HeaderMap, body: &[u8]) -> Result<Option<Vec<u8>>, BodyError>;
}

/// Why a body could not be rewritten. The proxy answers a request's with
/// 400 / 413, a response's with 502.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body does not parse as what its `Content-Type` says, or cannot
    /// be expressed in the target format.
    Invalid(String),
    /// The rewritten body would be larger than [`OUTPUT_MAX`].
    TooLarge,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Invalid(m) => f.write_str(m),
            BodyError::TooLarge => {
                write!(f, "the rewritten body is larger than {OUTPUT_MAX} bytes")
            }
        }
    }
}

impl BodyError {
    /// The answer to a request whose body this is.
    pub fn rejection(&self) -> Rejection {
        let status = match self {
            BodyError::Invalid(_) => StatusCode::BAD_REQUEST,
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        };
        Rejection::new(status, self.to_string())
    }
}

/// The media type of `Content-Type`, without parameters.
fn media_type(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim())
}

fn is_type(headers: &HeaderMap, exact: &[&str], suffix: &str) -> bool {
    media_type(headers).is_some_and(|m| {
        exact.iter().any(|e| m.eq_ignore_ascii_case(e))
            || m.len() > suffix.len()
                && m.is_char_boundary(m.len() - suffix.len())
                && m[m.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                && m.contains('/')
    })
}

/// `application/json` or any `+json` type (`application/problem+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    is_type(headers, &["application/json"], "+json")
}

/// `application/xml`, `text/xml` or any `+xml` type.
pub fn is_xml(headers: &HeaderMap) -> bool {
    is_type(headers, &["application/xml", "text/xml"], "+xml")
}

/// Whether the body has a `Content-Encoding` other than `identity` (gzip,
/// br...): such bodies are never rewritten.
pub fn is_encoded(headers: &HeaderMap) -> bool {
    headers.get_all(CONTENT_ENCODING).iter().any(|v| {
        v.to_str().map_or(true, |s| {
            s.split(',')
                .map(str::trim)
                .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
        })
    })
}

/// A JSON document, fields in their order, repeated names kept. Numbers
/// are serde_json's: 64-bit integers or f64 (a number out of f64's range
/// does not parse). Nesting is bounded by serde_json's recursion limit
/// (128).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole body; the error is serde_json's, with its position.
    pub fn parse(body: &[u8]) -> Result<Json, String> {
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))
    }

    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing a tree of strings and numbers into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl From<&serde_json::Value> for Json {
    fn from(v: &serde_json::Value) -> Json {
        use serde_json::Value;
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(s.clone()),
            Value::Array(a) => Json::Array(a.iter().map(Json::from).collect()),
            Value::Object(o) => {
                Json::Object(o.iter().map(|(k, v)| (k.clone(), v.into())).collect())
            }
        }
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<Cow<'de, str>, Json>()? {
            fields.push((k.into_owned(), v));
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn media_types() {
        let json = [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
        ];
        for t in json {
            assert!(is_json(&headers(&[("content-type", t)])), "{t}");
        }
        for t in [
            "text/plain",
            "application/jsonx",
            "+json",
            "application/xml",
        ] {
            assert!(!is_json(&headers(&[("content-type", t)])), "{t}");
        }
        assert!(!is_json(&HeaderMap::new()));
        for t in [
            "application/xml",
            "text/xml; charset=UTF-8",
            "application/soap+xml",
        ] {
            assert!(is_xml(&headers(&[("content-type", t)])), "{t}");
        }
        assert!(!is_xml(&headers(&[("content-type", "application/json")])));
    }

    #[test]
    fn encodings() {
        assert!(!is_encoded(&HeaderMap::new()));
        assert!(!is_encoded(&headers(&[("content-encoding", "identity")])));
        assert!(is_encoded(&headers(&[("content-encoding", "gzip")])));
        assert!(is_encoded(&headers(&[(
            "content-encoding",
            "identity, br"
        )])));
    }

    #[test]
    fn json_keeps_order_and_repeated_names() {
        let text = br#"{"z":1,"a":[true,null,-2.5],"z":"again","n":{"\u00e9":"\"x\""}}"#;
        let doc = Json::parse(text).unwrap();
        let Json::Object(fields) = &doc else {
            panic!("{doc:?}")
        };
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["z", "a", "z", "n"]);
        assert_eq!(
            String::from_utf8(doc.to_vec()).unwrap(),
            r#"{"z":1,"a":[true,null,-2.5],"z":"again","n":{"é":"\"x\""}}"#
        );
        for bad in [&b"{"[..], b"[1,]", b"1e400", b"{} x", b"\xff", b""] {
            assert!(Json::parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(Json::parse(deep.as_bytes()).is_err(), "bounded nesting");
    }
}
