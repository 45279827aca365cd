//! Parsing of the route match patterns: hosts (`api.example.com`,
//! `*.example.com`) and paths (`/prefix`, `=/exact`, `~regex`).
//!
//! `router` compiles the parsed patterns (in the data plane, and in the
//! control plane for `GET /routes/match`); validation uses the same parser,
//! so both sides agree on what a pattern means.

/// A route host, lowercased, without port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `api.example.com`
    Exact(String),
    /// `*.example.com` matches `a.example.com` and `a.b.example.com`, not
    /// `example.com`. Holds the suffix with its leading dot: `.example.com`.
    Wildcard(String),
}

impl HostPattern {
    pub fn parse(raw: &str) -> Result<HostPattern, String> {
        if raw.len() > 253 {
            return Err("must be at most 253 characters".into());
        }
        if raw.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("must be lowercase".into());
        }
        if let Some(rest) = raw.strip_prefix("*.") {
            check_dns_name(rest)?;
            return Ok(HostPattern::Wildcard(format!(".{rest}")));
        }
        if raw.contains('*') {
            return Err(
                "a wildcard is only allowed as the whole first label, as in '*.example.com'".into(),
            );
        }
        if raw.contains(':') {
            return Err("must not contain a port: ports are ignored when matching".into());
        }
        check_dns_name(raw)?;
        Ok(HostPattern::Exact(raw.to_owned()))
    }
}

fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must be 1 to 63 characters".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("may only contain letters, digits, '-' and '.'".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label must not start or end with '-'".into());
        }
    }
    Ok(())
}

/// A route path.
#[derive(Debug, Clone)]
pub enum PathPattern {
    /// `/users` matches `/users`, `/users/` and `/users/7`, never `/usersx`:
    /// prefixes match at segment boundaries. `/` matches every path.
    Prefix(String),
    /// `=/users` matches `/users` only.
    Exact(String),
    /// `~/users/\d+` is a regular expression anchored at the start of the
    /// path (not at its end).
    Regex(regex::Regex),
}

/// Regexes come from operators, but a pathological one must not eat the data
/// plane's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl PathPattern {
    pub fn parse(raw: &str) -> Result<PathPattern, String> {
        if raw.len() > 1024 {
            return Err("must be at most 1024 characters".into());
        }
        if let Some(re) = raw.strip_prefix('~') {
            if re.is_empty() {
                return Err("the regex after '~' must not be empty".into());
            }
            return regex::RegexBuilder::new(&format!("^(?:{re})"))
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map(PathPattern::Regex)
                .map_err(|e| format!("invalid regex: {e}"));
        }
        let (exact, path) = match raw.strip_prefix('=') {
            Some(p) => (true, p),
            None => (false, raw),
        };
        if !path.starts_with('/') {
            return Err("must start with '/', '=/' (exact) or '~' (regex)".into());
        }
        if path
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#')
        {
            return Err("must not contain spaces, control characters, '?' or '#'".into());
        }
        if exact {
            Ok(PathPattern::Exact(path.to_owned()))
        } else {
            // `/users/` and `/users` mean the same prefix.
            let trimmed = path.trim_end_matches('/');
            Ok(PathPattern::Prefix(if trimmed.is_empty() {
                "/".to_owned()
            } else {
                trimmed.to_owned()
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            HostPattern::parse("api.example.com"),
            Ok(HostPattern::Exact("api.example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("*.example.com"),
            Ok(HostPattern::Wildcard(".example.com".into()))
        );
        for bad in [
            "",
            "API.example.com",
            "a.*.com",
            "*",
            "*.",
            "a..b",
            "-a.com",
            "a.com:80",
            "a b",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn paths() {
        assert!(
            matches!(PathPattern::parse("/users/"), Ok(PathPattern::Prefix(p)) if p == "/users")
        );
        assert!(matches!(PathPattern::parse("/"), Ok(PathPattern::Prefix(p)) if p == "/"));
        assert!(
            matches!(PathPattern::parse("=/users"), Ok(PathPattern::Exact(p)) if p == "/users")
        );
        let Ok(PathPattern::Regex(re)) = PathPattern::parse(r"~/users/\d+") else {
            panic!("regex expected")
        };
        assert!(re.is_match("/users/42/x"));
        assert!(!re.is_match("/v1/users/42"), "anchored at the start");
        for bad in ["users", "=users", "~", "~(", "/a b", "/a?b", "/a\u{7f}"] {
            assert!(PathPattern::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
