//! XML → JSON for `json-xml` (the mapping is in the parent's header):
//! quick-xml's events, one element open per level (at most
//! [`MAX_DEPTH`]), each closed into its JSON value and attached to its
//! parent. A DOCTYPE, an undefined entity or anything quick-xml finds
//! ill-formed ends the conversion.

use std::borrow::Cow;
use std::collections::HashMap;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::{MAX_DEPTH, check_chars, invalid, shown};
use crate::policy::body::{BodyError, Json, OUTPUT_MAX};

/// An element being read: its attributes, then its children grouped by
/// name as they close (so a document is held once, as JSON), its text.
struct Open {
    name: String,
    fields: Vec<(String, Json)>,
    attributes: usize,
    text: String,
    /// Where each child name is in `fields`, once there are many names.
    index: Option<HashMap<String, usize>>,
}

/// Child names found by a scan up to this many, by a map beyond.
const SCAN: usize = 8;

impl Open {
    fn new(e: &BytesStart<'_>) -> Result<Open, BodyError> {
        let mut fields = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| invalid(format!("malformed XML attribute: {e}")))?;
            let value = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| invalid(format!("malformed XML attribute value: {e}")))?;
            fields.push((format!("@{}", a.key.0), Json::String(value.into_owned())));
        }
        Ok(Open {
            name: e.name().0.to_owned(),
            attributes: fields.len(),
            fields,
            text: String::new(),
            index: None,
        })
    }

    /// A closed child: a new name, or the second (an array) or a later
    /// value of a name seen before. (XML values are strings or objects, so
    /// an array here is always such a group.)
    fn add(&mut self, name: String, value: Json) {
        let seen = match &self.index {
            Some(index) => index.get(&name).copied(),
            None => self.fields[self.attributes..]
                .iter()
                .position(|(k, _)| *k == name)
                .map(|i| self.attributes + i),
        };
        if let Some(i) = seen {
            match &mut self.fields[i].1 {
                Json::Array(values) => values.push(value),
                one => {
                    let first = std::mem::replace(one, Json::Null);
                    *one = Json::Array(vec![first, value]);
                }
            }
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(name.clone(), self.fields.len());
        }
        self.fields.push((name, value));
        if self.index.is_none() && self.fields.len() - self.attributes > SCAN {
            let names = self.fields.iter().enumerate().skip(self.attributes);
            self.index = Some(names.map(|(i, (k, _))| (k.clone(), i)).collect());
        }
    }

    /// The element's JSON (see the module header).
    fn close(self) -> (String, Json) {
        let Open {
            name,
            mut fields,
            attributes,
            text,
            ..
        } = self;
        let children = fields.len() > attributes;
        if attributes == 0 && !children {
            return (name, Json::String(text));
        }
        let text = if children {
            text.trim().to_owned()
        } else {
            text
        };
        if !text.trim().is_empty() {
            fields.insert(attributes, ("#text".to_owned(), Json::String(text)));
        }
        (name, Json::Object(fields))
    }
}

/// XML → JSON.
pub fn xml_to_json(body: &[u8]) -> Result<Vec<u8>, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| invalid(format!("XML must be UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = false;
    config.trim_text(false);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Json> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            invalid(format!(
                "malformed XML at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        let piece: Cow<'_, str> = match event {
            Event::Start(e) => {
                opening(&stack, &root)?;
                stack.push(Open::new(&e)?);
                continue;
            }
            Event::Empty(e) => {
                opening(&stack, &root)?;
                let done = Open::new(&e)?.close();
                attach(&mut stack, &mut root, done);
                continue;
            }
            Event::End(_) => {
                let open = stack
                    .pop()
                    .ok_or_else(|| invalid("malformed XML: unmatched end tag"))?;
                let done = open.close();
                attach(&mut stack, &mut root, done);
                continue;
            }
            Event::Text(t) => t.xml10_content(),
            Event::CData(c) => Cow::Owned(c.xml10_content().into_owned()),
            Event::GeneralRef(r) => Cow::Owned(reference(&r)?.to_string()),
            Event::DocType(_) => {
                return Err(invalid(
                    "DOCTYPE refused: no DTD or entity declarations are accepted",
                ));
            }
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc =
                        enc.map_err(|e| invalid(format!("malformed XML declaration: {e}")))?;
                    if !enc.eq_ignore_ascii_case("utf-8") && !enc.eq_ignore_ascii_case("utf8") {
                        return Err(invalid("only UTF-8 XML is accepted"));
                    }
                }
                continue;
            }
            Event::Comment(_) | Event::PI(_) => continue,
            Event::Eof => break,
        };
        match stack.last_mut() {
            Some(open) => open.text.push_str(&piece),
            None if piece.trim().is_empty() => {}
            None => return Err(invalid("malformed XML: text outside the root element")),
        }
    }
    if let Some(open) = stack.last() {
        return Err(invalid(format!(
            "malformed XML: <{}> is not closed",
            shown(&open.name)
        )));
    }
    let doc = root.ok_or_else(|| invalid("malformed XML: no root element"))?;
    let out = doc.to_vec();
    if out.len() > OUTPUT_MAX {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

/// Whether an element may open here: inside the root, at most
/// [`MAX_DEPTH`] deep.
fn opening(stack: &[Open], root: &Option<Json>) -> Result<(), BodyError> {
    if root.is_some() {
        return Err(invalid("malformed XML: content after the root element"));
    }
    if stack.len() >= MAX_DEPTH {
        return Err(invalid(format!("nested deeper than {MAX_DEPTH} elements")));
    }
    Ok(())
}

/// A closed element goes into its parent, or is the document.
fn attach(stack: &mut [Open], root: &mut Option<Json>, (name, value): (String, Json)) {
    match stack.last_mut() {
        Some(parent) => parent.add(name, value),
        None => *root = Some(value),
    }
}

/// `&name;` in text: the five predefined entities and character
/// references; nothing else is defined (a DOCTYPE never gets this far).
fn reference(r: &BytesRef<'_>) -> Result<char, BodyError> {
    if r.is_char_ref() {
        let c = r.resolve_char_ref().ok().flatten().ok_or_else(|| {
            invalid(format!(
                "malformed XML: bad character reference &{};",
                shown(r)
            ))
        })?;
        check_chars(c.encode_utf8(&mut [0; 4]))?;
        return Ok(c);
    }
    match &**r {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(invalid(format!(
            "undefined entity &{};: only the predefined ones and character references are accepted",
            shown(other)
        ))),
    }
}
