//! `key-auth`: the consumer presents a key in a header or query parameter.

use serde::{Deserialize, Serialize};

use super::{Schema, check_header_name};
use crate::ValidationErrors;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthConfig {
    /// Header or query parameter names that may carry the key, tried in order.
    #[serde(default = "default_key_names")]
    pub key_names: Vec<String>,
    #[serde(default = "yes")]
    pub key_in_header: bool,
    #[serde(default = "yes")]
    pub key_in_query: bool,
    /// Remove the key before the request goes upstream.
    #[serde(default)]
    pub hide_credentials: bool,
}

fn default_key_names() -> Vec<String> {
    vec!["apikey".to_owned()]
}

fn yes() -> bool {
    true
}

impl Schema for KeyAuthConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        if self.key_names.is_empty() || self.key_names.len() > 16 {
            errors.push("key_names", "1 to 16 names");
        }
        for (i, n) in self.key_names.iter().enumerate() {
            // Header names are case-insensitive; query names are matched as
            // written, so only headers get lowercased by the data plane.
            check_header_name(&format!("key_names[{i}]"), n, errors);
        }
        if !self.key_in_header && !self.key_in_query {
            errors.push(
                "key_in_header",
                "the key must be accepted in headers, the query, or both",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::plugin::test_support::check;

    #[test]
    fn schema() {
        let c = check("key-auth", json!({})).unwrap();
        assert_eq!(
            c,
            json!({"key_names": ["apikey"], "key_in_header": true, "key_in_query": true, "hide_credentials": false})
        );
        assert_eq!(
            check(
                "key-auth",
                json!({"key_names": [], "key_in_header": false, "key_in_query": false})
            ),
            Err(vec![
                "config.key_names".into(),
                "config.key_in_header".into()
            ])
        );
        assert_eq!(
            check("key-auth", json!({"key_names": ["x y"]})),
            Err(vec!["config.key_names[0]".into()])
        );
        assert_eq!(
            check("key-auth", json!({"keys": []})),
            Err(vec!["config.keys".into()])
        );
    }
}
