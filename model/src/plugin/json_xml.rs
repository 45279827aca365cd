//! `json-xml`: converts request and/or response bodies between JSON and
//! XML. The XML side never expands entities and refuses any DOCTYPE.

use serde::{Deserialize, Serialize};

use super::Schema;
use crate::ValidationErrors;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonXmlConfig {
    #[serde(default)]
    pub request: Option<Conversion>,
    #[serde(default)]
    pub response: Option<Conversion>,
    /// The element that wraps a JSON document converted to XML.
    #[serde(default = "default_root")]
    pub root_element: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conversion {
    JsonToXml,
    XmlToJson,
}

fn default_root() -> String {
    "root".to_owned()
}

impl Schema for JsonXmlConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        if self.request.is_none() && self.response.is_none() {
            errors.push("request", "give request, response, or both");
        }
        let name = self.root_element.as_bytes();
        let ok = !name.is_empty()
            && name.len() <= 128
            && (name[0].is_ascii_alphabetic() || name[0] == b'_')
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
            && !self.root_element.to_ascii_lowercase().starts_with("xml");
        if !ok {
            errors.push("root_element", "must be an XML element name such as root");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::plugin::test_support::check;

    #[test]
    fn schema() {
        assert_eq!(
            check("json-xml", json!({"response": "xml_to_json"})).unwrap(),
            json!({"request": null, "response": "xml_to_json", "root_element": "root"})
        );
        assert_eq!(
            check("json-xml", json!({"root_element": "1x"})),
            Err(vec!["config.request".into(), "config.root_element".into()])
        );
        assert_eq!(
            check("json-xml", json!({"request": "yaml"})),
            Err(vec!["config.request".into()])
        );
    }
}
