//! `json-xml` (rewrite phase, 700, for requests; after the response phase
//! for answers): converts bodies between JSON and XML, `request` and
//! `response` each `json_to_xml` or `xml_to_json`. Only a body of the
//! source type is converted (`application/json` or `+json`; `application/xml`,
//! `text/xml` or `+xml`); others pass untouched. The result gets
//! `Content-Type: application/xml` or `application/json` (and its own
//! `Content-Length`, policy/mod.rs "Bodies").
//!
//! The mapping, reversible for documents whose values are strings:
//!
//! | JSON | XML |
//! |---|---|
//! | the document | the root element, named `root_element` (XML → JSON: any name, dropped) |
//! | `"k": {…}` | `<k>…</k>` |
//! | `"k": [a, b]` | `<k>a</k><k>b</k>` (XML → JSON: a name seen twice or more is an array, once a value; `"k": []` gives nothing) |
//! | `"@k": "v"` | attribute `k="v"` of the enclosing element |
//! | `"#text": "t"` | the element's text beside attributes or children |
//! | `"k": "t"`, `"k": 1.5`, `"k": true` | `<k>t</k>`, `<k>1.5</k>`, `<k>true</k>` (XML → JSON: always strings) |
//! | `"k": null`, `"k": ""` | `<k/>` (XML → JSON: `""`) |
//! | an array in an array, or the document | an element holding one `<item>` per value |
//!
//! XML → JSON: an element with neither attributes nor child elements is its
//! text (exactly); otherwise an object: attributes (`@name`) first, then
//! `#text` if there is text that is not only whitespace (trimmed when there
//! are child elements; the pieces between them joined), then the children
//! by name in order of first appearance. Comments, processing instructions
//! and the XML declaration are dropped; CDATA is text; names keep their
//! prefixes (`xmlns:p` is the attribute `@xmlns:p`). JSON → XML: field
//! names must be XML names, attribute and `#text` values scalars, and
//! strings XML characters.
//!
//! Refused (400 for a request, nothing sent upstream; 502 for a response):
//! anything not well-formed, a DOCTYPE (so no entity is ever declared, let
//! alone expanded), an entity other than the five predefined ones and
//! character references, XML not in UTF-8, nesting deeper than
//! [`MAX_DEPTH`] elements, invalid JSON (and JSON nested deeper than
//! serde_json's 128), numbers out of range; a result over
//! `body::OUTPUT_MAX` is a 413 / 502.
//!
//! Memory: the document is held once, as a tree, while it is converted: at
//! worst (8 MiB of empty elements or empty arrays) about 90 MB for
//! XML → JSON and 120 MB for JSON → XML; a smaller body limit on the route
//! (`request-size-limit`) lowers the bound for requests.

mod read;

use std::borrow::Cow;
use std::collections::HashSet;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use turnpike_model::plugin::json_xml::{Conversion, JsonXmlConfig};

use super::body::{BodyError, BodyRewrite, Json, OUTPUT_MAX, is_json, is_xml};
use super::{Phase, Policy};
pub use read::xml_to_json;

/// The deepest an element may nest, the root being 1.
pub const MAX_DEPTH: usize = 64;

pub struct JsonXml {
    request: Option<Converter>,
    response: Option<Converter>,
}

struct Converter {
    to: Conversion,
    root: String,
}

impl JsonXml {
    pub fn new(c: JsonXmlConfig) -> JsonXml {
        let converter = |to| Converter {
            to,
            root: c.root_element.clone(),
        };
        JsonXml {
            request: c.request.map(converter),
            response: c.response.map(converter),
        }
    }
}

impl Policy for JsonXml {
    fn name(&self) -> &'static str {
        "json-xml"
    }

    fn phase(&self) -> Phase {
        Phase::Rewrite
    }

    fn priority(&self) -> u16 {
        700
    }

    fn request_body(&self) -> Option<&dyn BodyRewrite> {
        self.request.as_ref().map(|c| c as &dyn BodyRewrite)
    }

    fn response_body(&self) -> Option<&dyn BodyRewrite> {
        self.response.as_ref().map(|c| c as &dyn BodyRewrite)
    }
}

impl BodyRewrite for Converter {
    fn wants(&self, headers: &HeaderMap) -> bool {
        match self.to {
            Conversion::JsonToXml => is_json(headers),
            Conversion::XmlToJson => is_xml(headers),
        }
    }

    fn rewrite(&self, headers: &mut HeaderMap, body: &[u8]) -> Result<Option<Vec<u8>>, BodyError> {
        let (out, media) = match self.to {
            Conversion::JsonToXml => (json_to_xml(body, &self.root)?, "application/xml"),
            Conversion::XmlToJson => (xml_to_json(body)?, "application/json"),
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(media));
        Ok(Some(out))
    }
}

fn invalid(message: impl Into<String>) -> BodyError {
    BodyError::Invalid(message.into())
}

/// At most 64 characters of a name, for messages.
fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(64).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s
}

/// An XML name (letters, digits, `_`, `-`, `.`, `:`; not starting with a
/// digit, `-` or `.`).
fn check_name(name: &str) -> Result<(), BodyError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_alphanumeric() || "_-.:\u{b7}".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("'{}' is not an XML name", shown(name))))
    }
}

/// Characters XML 1.0 can carry (escaped or not).
fn check_chars(text: &str) -> Result<(), BodyError> {
    let bad = text.chars().find(|&c| {
        !(matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}'))
    });
    match bad {
        Some(c) => Err(invalid(format!(
            "the character U+{:04X} cannot appear in XML",
            c as u32
        ))),
        None => Ok(()),
    }
}

/// The text of a scalar (`None` for null); objects and arrays have none.
fn scalar(v: &Json) -> Result<Option<Cow<'_, str>>, ()> {
    Ok(match v {
        Json::Null => None,
        Json::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Json::Number(n) => Some(Cow::Owned(n.to_string())),
        Json::String(s) => Some(Cow::Borrowed(s)),
        Json::Array(_) | Json::Object(_) => return Err(()),
    })
}

/// JSON → XML, with `root` as the document element.
pub fn json_to_xml(body: &[u8], root: &str) -> Result<Vec<u8>, BodyError> {
    let doc = Json::parse(body).map_err(BodyError::Invalid)?;
    let mut w = Writer::new(Vec::with_capacity(body.len() + body.len() / 2 + 64));
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(|e| invalid(e.to_string()))?;
    element(&mut w, root, &doc, 1)?;
    Ok(w.into_inner())
}

type XmlWriter = Writer<Vec<u8>>;

fn write(w: &mut XmlWriter, e: Event<'_>) -> Result<(), BodyError> {
    w.write_event(e).map_err(|e| invalid(e.to_string()))?;
    if w.get_ref().len() > OUTPUT_MAX {
        return Err(BodyError::TooLarge);
    }
    Ok(())
}

/// Writes `value` as the element `name` at `depth`.
fn element(w: &mut XmlWriter, name: &str, value: &Json, depth: usize) -> Result<(), BodyError> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!("nested deeper than {MAX_DEPTH} elements")));
    }
    let mut start = BytesStart::new(name);
    let items: &[(String, Json)] = match value {
        Json::Object(fields) => fields,
        Json::Array(values) => {
            write(w, Event::Start(start))?;
            for v in values {
                element(w, "item", v, depth + 1)?;
            }
            return write(w, Event::End(BytesEnd::new(name)));
        }
        scalar_value => {
            let text = scalar(scalar_value).unwrap_or(None).unwrap_or_default();
            if text.is_empty() {
                return write(w, Event::Empty(start));
            }
            check_chars(&text)?;
            write(w, Event::Start(start.borrow()))?;
            write(w, Event::Text(BytesText::new(&text)))?;
            return write(w, Event::End(start.to_end()));
        }
    };
    // A set: an object may hold many thousands of attributes.
    let mut attributes: HashSet<&str> = HashSet::new();
    for (key, v) in items {
        let Some(attr) = key.strip_prefix('@') else {
            continue;
        };
        check_name(attr)?;
        if !attributes.insert(attr) {
            return Err(invalid(format!("attribute '{}' given twice", shown(attr))));
        }
        let text = scalar(v).map_err(|()| {
            invalid(format!(
                "attribute '{}' must be a string, number or boolean",
                shown(attr)
            ))
        })?;
        if let Some(text) = text {
            check_chars(&text)?;
            start.push_attribute((attr, text.as_ref()));
        }
    }
    let content = items.iter().filter(|(k, _)| !k.starts_with('@'));
    if content.clone().next().is_none() {
        return write(w, Event::Empty(start));
    }
    write(w, Event::Start(start.borrow()))?;
    for (key, v) in content {
        if key == "#text" {
            let text =
                scalar(v).map_err(|()| invalid("#text must be a string, number or boolean"))?;
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                check_chars(&text)?;
                write(w, Event::Text(BytesText::new(&text)))?;
            }
            continue;
        }
        check_name(key)?;
        match v {
            Json::Array(values) => {
                for v in values {
                    element(w, key, v, depth + 1)?;
                }
            }
            v => element(w, key, v, depth + 1)?,
        }
    }
    write(w, Event::End(start.to_end()))
}

#[cfg(test)]
mod tests;
