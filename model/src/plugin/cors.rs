//! `cors`: answers preflight requests and adds the CORS response headers.

use serde::{Deserialize, Serialize};

use super::{Schema, check_header_name};
use crate::ValidationErrors;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// `*` or origins such as `https://app.example.com`.
    #[serde(default = "any_origin")]
    pub origins: Vec<String>,
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Request headers allowed; empty echoes what the preflight asks for.
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub exposed_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`; never with origin `*`.
    #[serde(default)]
    pub credentials: bool,
    #[serde(default)]
    pub max_age_s: Option<u32>,
    /// Pass preflight requests upstream instead of answering them.
    #[serde(default)]
    pub preflight_continue: bool,
}

fn any_origin() -> Vec<String> {
    vec!["*".to_owned()]
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"]
        .map(String::from)
        .to_vec()
}

impl Schema for CorsConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        if self.origins.is_empty() {
            errors.push("origins", "at least one origin (or \"*\")");
        }
        for (i, o) in self.origins.iter_mut().enumerate() {
            if o == "*" {
                continue;
            }
            o.make_ascii_lowercase();
            let ok = o.parse::<http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https"))
                    && u.host().is_some()
                    && u.path_and_query()
                        .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/")
                    && !o.ends_with('/')
            });
            if !ok {
                errors.push(
                    format!("origins[{i}]"),
                    "must be \"*\" or scheme://host[:port]",
                );
            }
        }
        // Browsers ignore credentials with a wildcard origin, and reflecting
        // any origin with credentials would hand every site the user's session.
        if self.credentials && self.origins.iter().any(|o| o == "*") {
            errors.push("credentials", "cannot be true when origins contains \"*\"");
        }
        for (i, m) in self.methods.iter_mut().enumerate() {
            m.make_ascii_uppercase();
            if m.is_empty() || m.len() > 32 || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                errors.push(
                    format!("methods[{i}]"),
                    "must be an HTTP method such as GET",
                );
            }
        }
        for (field, list) in [
            ("headers", &self.headers),
            ("exposed_headers", &self.exposed_headers),
        ] {
            for (i, h) in list.iter().enumerate() {
                check_header_name(&format!("{field}[{i}]"), h, errors);
            }
        }
        if self.max_age_s.is_some_and(|s| s > 86_400) {
            errors.push("max_age_s", "must be 0 to 86400");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::plugin::test_support::check;

    #[test]
    fn schema() {
        let c = check("cors", json!({})).unwrap();
        assert_eq!(c["origins"], json!(["*"]));
        assert_eq!(c["methods"].as_array().unwrap().len(), 7);
        assert_eq!(c["credentials"], json!(false));
        let c = check("cors", json!({"origins": ["HTTPS://App.example.com:8443"], "credentials": true, "methods": ["get"]})).unwrap();
        assert_eq!(c["origins"], json!(["https://app.example.com:8443"]));
        assert_eq!(c["methods"], json!(["GET"]));
        assert_eq!(
            check(
                "cors",
                json!({"credentials": true, "origins": ["*", "ftp://x", "https://x/path"], "headers": ["a b"], "max_age_s": 100000})
            ),
            Err(vec![
                "config.origins[1]".into(),
                "config.origins[2]".into(),
                "config.credentials".into(),
                "config.headers[0]".into(),
                "config.max_age_s".into()
            ])
        );
    }
}
