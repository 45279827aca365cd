//! `response-transformer`: edits the response before it goes back to the
//! client: headers and top-level JSON body fields (no query string). Same
//! order of operations as `request-transformer`, and the same headers
//! refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request_transformer::{check_names, check_plain_name, check_transformable};
use super::{Schema, check_header_value};
use crate::ValidationErrors;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseTransformerConfig {
    #[serde(default)]
    pub remove: Names,
    #[serde(default)]
    pub rename: Renames,
    #[serde(default)]
    pub replace: Values,
    #[serde(default)]
    pub add: Values,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub json: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Renames {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub json: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub json: BTreeMap<String, Value>,
}

impl Schema for ResponseTransformerConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        check_names(
            "remove.headers",
            &self.remove.headers,
            errors,
            check_transformable,
        );
        check_names("remove.json", &self.remove.json, errors, check_plain_name);
        for (from, to) in &self.rename.headers {
            check_transformable(&format!("rename.headers.{from}"), from, errors);
            check_transformable(&format!("rename.headers.{from}"), to, errors);
        }
        for (from, to) in &self.rename.json {
            check_plain_name(&format!("rename.json.{from}"), from, errors);
            check_plain_name(&format!("rename.json.{from}"), to, errors);
        }
        for (op, v) in [("replace", &self.replace), ("add", &self.add)] {
            for (name, value) in &v.headers {
                let field = format!("{op}.headers.{name}");
                check_transformable(&field, name, errors);
                check_header_value(&field, value, errors);
            }
            for name in v.json.keys() {
                check_plain_name(&format!("{op}.json.{name}"), name, errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::plugin::test_support::check;

    #[test]
    fn schema() {
        let c = check(
            "response-transformer",
            json!({"remove": {"headers": ["server"]}}),
        )
        .unwrap();
        assert_eq!(c["remove"], json!({"headers": ["server"], "json": []}));
        assert_eq!(c["add"], json!({"headers": {}, "json": {}}));
        assert_eq!(
            check(
                "response-transformer",
                json!({"add": {"querystring": {"a": "b"}}})
            ),
            Err(vec!["config.add.querystring".into()])
        );
        assert_eq!(
            check(
                "response-transformer",
                json!({"replace": {"headers": {"x": "\u{0}"}}})
            ),
            Err(vec!["config.replace.headers.x".into()])
        );
        assert_eq!(
            check(
                "response-transformer",
                json!({"add": {"headers": {"transfer-encoding": "chunked"}}})
            ),
            Err(vec!["config.add.headers.transfer-encoding".into()])
        );
    }
}
