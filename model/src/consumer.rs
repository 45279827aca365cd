//! Consumers: the clients of the gateway that credentials identify and that
//! plugins (ACLs, rate limits) can be scoped to.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ValidationErrors, check_name, check_tags};

/// What an operator writes for a consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    /// Unique; letters, digits, `.`, `_`, `~`, `-`; not a UUID.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "alice",
            min_length = 1,
            max_length = 128,
            pattern = "^[A-Za-z0-9._~-]+$"
        )
    )]
    pub username: String,
    /// Groups the `acl` plugin allows or denies.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100, example = json!(["partners"])))]
    pub groups: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

pub const MAX_GROUPS: usize = 100;

impl ConsumerSpec {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        check_name("username", &self.username, &mut errors);
        check_groups("groups", &self.groups, &mut errors);
        check_tags(&self.tags, &mut errors);
        errors.into_result()
    }
}

/// Group names follow the name rule (a UUID is a fine group name, though:
/// groups are never looked up by id). Shared with the `acl` plugin.
pub(crate) fn check_groups(field: &str, groups: &[String], errors: &mut ValidationErrors) {
    if groups.len() > MAX_GROUPS {
        errors.push(field, format!("at most {MAX_GROUPS} groups"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, g) in groups.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let mut local = ValidationErrors::default();
        check_name(&path, g, &mut local);
        local.0.retain(|e| e.message != "must not be a UUID");
        if !local.is_empty() {
            errors.0.extend(local.0);
        } else if !seen.insert(g.as_str()) {
            errors.push(path, "duplicate group");
        }
    }
}

/// A consumer as stored and distributed. Its credentials are entities of
/// their own in the snapshot ([`crate::Credential`]), each naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consumer {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: ConsumerSpec,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_rules() {
        let s: ConsumerSpec = serde_json::from_value(json!({"username": "alice"})).unwrap();
        assert!(s.groups.is_empty() && s.validate().is_ok());
        let s: ConsumerSpec = serde_json::from_value(json!({
            "username": "bad name",
            "groups": ["ok", "ok", "no space", "0191a5d6-34b2-7c6e-9a51-4f1f1a2b3c4d"],
            "tags": [""]
        }))
        .unwrap();
        let fields: Vec<String> = s
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["username", "groups[1]", "groups[2]", "tags[0]"]);
        assert!(
            serde_json::from_value::<ConsumerSpec>(json!({"username": "a", "name": "a"})).is_err()
        );
    }
}
