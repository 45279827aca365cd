//! `ip-restriction`: allows or denies clients by address (CIDR ranges).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Schema;
use crate::ValidationErrors;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRestrictionConfig {
    /// When set, only these ranges pass.
    #[serde(default)]
    pub allow: Vec<String>,
    /// These ranges get 403; deny wins over allow.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Proxies in front of the gateway whose `X-Forwarded-For` is believed.
    /// Empty: the TCP peer is the client. Otherwise, when the peer is one of
    /// these, the client is the rightmost `X-Forwarded-For` address that is
    /// not one of these.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

pub const MAX_RANGES: usize = 1000;

impl Schema for IpRestrictionConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        if self.allow.is_empty() && self.deny.is_empty() {
            errors.push("allow", "give allow or deny ranges");
        }
        for (field, list) in [
            ("allow", &mut self.allow),
            ("deny", &mut self.deny),
            ("trusted_proxies", &mut self.trusted_proxies),
        ] {
            if list.len() > MAX_RANGES {
                errors.push(field, format!("at most {MAX_RANGES} ranges"));
            }
            for (i, range) in list.iter_mut().enumerate() {
                match parse_cidr(range) {
                    Ok((addr, len)) => *range = format!("{addr}/{len}"),
                    Err(msg) => errors.push(format!("{field}[{i}]"), msg),
                }
            }
        }
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a single address (a /32 or /128).
/// Host bits must be zero, so a range means what it reads.
pub fn parse_cidr(raw: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match raw.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (raw, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| "must be an IP address or a CIDR range such as 10.0.0.0/8".to_owned())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("the prefix length must be 0 to {max}"))?,
    };
    let host_bits_zero = match addr {
        IpAddr::V4(a) => u32::from(a).checked_shl(u32::from(len)).unwrap_or(0) == 0,
        IpAddr::V6(a) => u128::from(a).checked_shl(u32::from(len)).unwrap_or(0) == 0,
    };
    if !host_bits_zero {
        return Err("the address has bits set past the prefix length".into());
    }
    Ok((addr, len))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugin::test_support::check;

    #[test]
    fn schema() {
        assert_eq!(
            check(
                "ip-restriction",
                json!({"allow": ["10.0.0.0/8", "192.168.1.1", "2001:DB8::/32"]})
            )
            .unwrap(),
            json!({"allow": ["10.0.0.0/8", "192.168.1.1/32", "2001:db8::/32"], "deny": [], "trusted_proxies": []})
        );
        assert_eq!(
            check("ip-restriction", json!({})),
            Err(vec!["config.allow".into()])
        );
        assert_eq!(
            check(
                "ip-restriction",
                json!({"deny": ["10.0.0.1/8", "10.0.0.0/33", "nope", "::/0"]})
            ),
            Err(vec![
                "config.deny[0]".into(),
                "config.deny[1]".into(),
                "config.deny[2]".into()
            ])
        );
        assert!(parse_cidr("0.0.0.0/0").is_ok());
    }

    #[test]
    fn trusted_proxies_are_ranges_too() {
        assert_eq!(
            check(
                "ip-restriction",
                json!({"deny": ["192.0.2.0/24"], "trusted_proxies": ["10.0.0.1", "FD00::/8"]})
            )
            .unwrap()["trusted_proxies"],
            json!(["10.0.0.1/32", "fd00::/8"])
        );
        // Trusted proxies alone restrict nothing: allow or deny is still needed.
        assert_eq!(
            check("ip-restriction", json!({"trusted_proxies": ["10.0.0.0/8"]})),
            Err(vec!["config.allow".into()])
        );
        assert_eq!(
            check(
                "ip-restriction",
                json!({"deny": ["192.0.2.0/24"], "trusted_proxies": ["10.0.0.1/8"]})
            ),
            Err(vec!["config.trusted_proxies[0]".into()])
        );
    }
}
