//! How many requests each plugin refused, by status class: auth failures
//! (401 from key-auth, basic-auth, jwt), ACL and IP denials (403), rate
//! limits (429), size limits (413)... Counted by the chain where a refusal
//! leaves it, in a fixed table of relaxed atomics indexed by plugin name
//! (no lock, no allocation), for `/metrics`
//! (`turnpike_policy_rejections_total{plugin, status}`). Process-wide, so
//! counts survive config reloads.

use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use turnpike_model::plugin::NAMES;

/// Status classes counted: a plugin answers 2xx (a CORS preflight), 4xx or
/// 5xx (a fail-closed rate limit).
pub const CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

static COUNTS: [[AtomicU64; 3]; NAMES.len()] =
    [const { [const { AtomicU64::new(0) }; 3] }; NAMES.len()];

fn class(status: StatusCode) -> usize {
    match status.as_u16() {
        500.. => 2,
        400..=499 => 1,
        _ => 0,
    }
}

pub fn count(plugin: &str, status: StatusCode) {
    if let Some(i) = NAMES.iter().position(|n| *n == plugin) {
        COUNTS[i][class(status)].fetch_add(1, Ordering::Relaxed);
    }
}

/// (plugin, class, count) for every plugin and class.
pub fn all() -> impl Iterator<Item = (&'static str, &'static str, u64)> {
    NAMES.iter().enumerate().flat_map(|(i, name)| {
        CLASSES
            .iter()
            .enumerate()
            .map(move |(c, class)| (*name, *class, COUNTS[i][c].load(Ordering::Relaxed)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(plugin: &str, class: &str) -> u64 {
        all()
            .find(|(p, c, _)| *p == plugin && *c == class)
            .map(|(_, _, n)| n)
            .unwrap()
    }

    #[test]
    fn counts_by_plugin_and_class() {
        let before = (get("acl", "4xx"), get("rate-limit", "5xx"));
        count("acl", StatusCode::FORBIDDEN);
        count("rate-limit", StatusCode::SERVICE_UNAVAILABLE);
        count("no-such-plugin", StatusCode::FORBIDDEN);
        assert_eq!(get("acl", "4xx"), before.0 + 1);
        assert_eq!(get("rate-limit", "5xx"), before.1 + 1);
        assert_eq!(all().count(), NAMES.len() * 3);
    }
}
