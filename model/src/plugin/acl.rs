//! `acl`: allows or denies consumers by their groups (after an
//! authentication plugin identified the consumer).

use serde::{Deserialize, Serialize};

use super::Schema;
use crate::ValidationErrors;
use crate::consumer::check_groups;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// Consumers in one of these groups pass; everyone else gets 403.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Consumers in one of these groups get 403.
    #[serde(default)]
    pub deny: Vec<String>,
}

impl Schema for AclConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        // As in Kong: one list or the other, so the outcome never depends on
        // a precedence rule.
        match (self.allow.is_empty(), self.deny.is_empty()) {
            (true, true) => errors.push("allow", "give allow or deny groups"),
            (false, false) => errors.push("deny", "give allow or deny groups, not both"),
            _ => {}
        }
        check_groups("allow", &self.allow, errors);
        check_groups("deny", &self.deny, errors);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::plugin::test_support::check;

    #[test]
    fn schema() {
        assert_eq!(
            check("acl", json!({"deny": ["bots"]})).unwrap(),
            json!({"allow": [], "deny": ["bots"]})
        );
        assert_eq!(check("acl", json!({})), Err(vec!["config.allow".into()]));
        assert_eq!(
            check("acl", json!({"allow": ["a"], "deny": ["b c"]})),
            Err(vec!["config.deny".into(), "config.deny[0]".into()])
        );
    }
}
