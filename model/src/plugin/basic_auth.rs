//! `basic-auth`: the consumer presents `Authorization: Basic` (RFC 7617).

use serde::{Deserialize, Serialize};

use super::Schema;
use crate::ValidationErrors;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// Remove the Authorization header before the request goes upstream.
    #[serde(default)]
    pub hide_credentials: bool,
    /// The realm of the `WWW-Authenticate` challenge on a 401.
    #[serde(default = "default_realm")]
    pub realm: String,
}

fn default_realm() -> String {
    "turnpike".to_owned()
}

impl Schema for BasicAuthConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        // The realm is written inside a quoted string of a response header.
        let ok = !self.realm.is_empty()
            && self.realm.len() <= 128
            && self
                .realm
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !ok {
            errors.push(
                "realm",
                "1 to 128 printable ASCII characters, no quotes or backslashes",
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
        assert_eq!(
            check("basic-auth", json!({})).unwrap(),
            json!({"hide_credentials": false, "realm": "turnpike"})
        );
        assert_eq!(
            check("basic-auth", json!({"realm": "a\"b"})),
            Err(vec!["config.realm".into()])
        );
        assert_eq!(
            check("basic-auth", json!({"hide_credentials": "yes"})),
            Err(vec!["config.hide_credentials".into()])
        );
    }
}
