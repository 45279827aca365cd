//! `ip-restriction`: allows or denies the client by address. Deny wins;
//! with an allow list only its ranges pass. Refusal: 403.
//!
//! The client is the TCP peer, unless `trusted_proxies` names the peer: then
//! `X-Forwarded-For` is walked from the right (the last header first), past
//! the addresses of trusted proxies, and the first address that is not one
//! is the client (all trusted: the leftmost). Entries may carry a port
//! (`192.0.2.1:4711`, `[2001:db8::1]:4711`). An entry that is not an
//! address, written where only a trusted proxy could have written it, makes
//! the client unknown, and an unknown client is refused.
//!
//! An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, a dual-stack socket's
//! view of an IPv4 client) is that IPv4 address, and an IPv6 range over
//! mapped addresses (`::ffff:0:0/96`) matches the IPv4 addresses it maps.
//! Ranges are sorted, merged intervals per family: a lookup is a binary
//! search and allocates nothing.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::{HeaderName, StatusCode};
use turnpike_model::plugin::ip_restriction::{IpRestrictionConfig, parse_cidr};

use super::{Flow, Phase, Policy, Rejection, RequestCtx};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

pub struct IpRestriction {
    /// `None`: no allow list, every address not denied passes.
    allow: Option<Ranges>,
    deny: Ranges,
    trusted: Ranges,
}

impl IpRestriction {
    pub fn new(config: IpRestrictionConfig) -> Result<IpRestriction, String> {
        let allow = Ranges::parse(&config.allow)?;
        Ok(IpRestriction {
            allow: (!config.allow.is_empty()).then_some(allow),
            deny: Ranges::parse(&config.deny)?,
            trusted: Ranges::parse(&config.trusted_proxies)?,
        })
    }

    /// The client's address, `None` when a trusted proxy's header cannot be
    /// read.
    fn client(&self, ctx: &RequestCtx<'_>) -> Option<IpAddr> {
        let peer = ctx.client_ip;
        if self.trusted.is_empty() || !self.trusted.contains(peer) {
            return Some(peer);
        }
        let mut client = peer;
        for value in ctx.parts.headers.get_all(X_FORWARDED_FOR).iter().rev() {
            for entry in value.to_str().ok()?.rsplit(',') {
                let ip = forwarded_address(entry.trim())?;
                if !self.trusted.contains(ip) {
                    return Some(ip);
                }
                client = ip;
            }
        }
        Some(client)
    }

    fn allows(&self, ip: IpAddr) -> bool {
        !self.deny.contains(ip) && self.allow.as_ref().is_none_or(|a| a.contains(ip))
    }
}

impl Policy for IpRestriction {
    fn name(&self) -> &'static str {
        "ip-restriction"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn priority(&self) -> u16 {
        3000
    }

    fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Flow {
        if self.client(ctx).is_some_and(|ip| self.allows(ip)) {
            Flow::Continue
        } else {
            Flow::Reject(Rejection::new(
                StatusCode::FORBIDDEN,
                "your IP address is not allowed",
            ))
        }
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `::ffff:0.0.0.0`, the first IPv4-mapped IPv6 address.
const MAPPED: u128 = 0xffff_0000_0000;

/// Inclusive intervals, sorted by start and disjoint.
#[derive(Default)]
struct Ranges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Ranges {
    fn parse(list: &[String]) -> Result<Ranges, String> {
        let mut out = Ranges::default();
        for raw in list {
            let (addr, len) = parse_cidr(raw).map_err(|e| format!("{raw}: {e}"))?;
            match addr {
                IpAddr::V4(a) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    let start = u32::from(a) & mask;
                    out.v4.push((start, start | !mask));
                }
                IpAddr::V6(a) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    let start = u128::from(a) & mask;
                    let end = start | !mask;
                    out.v6.push((start, end));
                    // The IPv4 addresses the range maps, if it covers any.
                    let (lo, hi) = (start.max(MAPPED), end.min(MAPPED | 0xffff_ffff));
                    if lo <= hi {
                        out.v4.push(((lo - MAPPED) as u32, (hi - MAPPED) as u32));
                    }
                }
            }
        }
        out.v4 = merge(out.v4);
        out.v6 = merge(out.v6);
        Ok(out)
    }

    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(a) => hit(&self.v4, u32::from(a)),
            IpAddr::V6(a) => hit(&self.v6, u128::from(a)),
        }
    }
}

fn merge<T: Ord + Copy>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Whether `x` is in one of the sorted, disjoint intervals.
fn hit<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.0 <= x);
    i > 0 && ranges[i - 1].1 >= x
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::policy::CompiledConsumers;

    fn policy(allow: &[&str], deny: &[&str], trusted: &[&str]) -> IpRestriction {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        IpRestriction::new(IpRestrictionConfig {
            allow: strings(allow),
            deny: strings(deny),
            trusted_proxies: strings(trusted),
        })
        .unwrap()
    }

    /// Whether a request from `peer` with these `X-Forwarded-For` headers
    /// passes.
    fn passes(p: &IpRestriction, peer: &str, xff: &[&str]) -> bool {
        let mut parts = http::Request::new(()).into_parts().0;
        for v in xff {
            parts
                .headers
                .append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        let consumers = CompiledConsumers::default();
        let mut ctx = RequestCtx {
            parts: &mut parts,
            client_ip: peer.parse().unwrap(),
            route: "r",
            consumers: &consumers,
            consumer: None,
            response_headers: HeaderMap::new(),
            body_limit: None,
        };
        match p.on_request(&mut ctx) {
            Flow::Continue => true,
            Flow::Reject(r) => {
                assert_eq!(r.status, StatusCode::FORBIDDEN);
                assert_eq!(r.message, "your IP address is not allowed");
                false
            }
            _ => panic!("ip-restriction continues or rejects"),
        }
    }

    #[test]
    fn allow_and_deny_both_families() {
        let p = policy(
            &["10.0.0.0/8", "2001:db8::/32"],
            &["10.1.0.0/16", "2001:db8:bad::/48"],
            &[],
        );
        assert!(passes(&p, "10.0.0.1", &[]));
        assert!(passes(&p, "10.255.255.255", &[]));
        assert!(!passes(&p, "10.1.2.3", &[]), "deny wins over allow");
        assert!(!passes(&p, "11.0.0.0", &[]));
        assert!(!passes(&p, "9.255.255.255", &[]));
        assert!(passes(&p, "2001:db8::1", &[]));
        assert!(!passes(&p, "2001:db8:bad::1", &[]));
        assert!(!passes(&p, "2001:db9::1", &[]));
        // A dual-stack socket's view of an IPv4 client.
        assert!(passes(&p, "::ffff:10.0.0.1", &[]));
        assert!(!passes(&p, "::ffff:10.1.0.1", &[]));
    }

    #[test]
    fn deny_only_whole_space_and_single_addresses() {
        let p = policy(&[], &["127.0.0.1", "::1"], &[]);
        assert!(!passes(&p, "127.0.0.1", &[]));
        assert!(!passes(&p, "::ffff:127.0.0.1", &[]));
        assert!(!passes(&p, "::1", &[]));
        assert!(passes(&p, "127.0.0.2", &[]));
        let all = policy(&[], &["0.0.0.0/0"], &[]);
        assert!(!passes(&all, "255.255.255.255", &[]));
        assert!(passes(&all, "::2", &[]), "IPv6 is another family");
        let mapped = policy(&[], &["::ffff:192.0.2.0/120"], &[]);
        assert!(!passes(&mapped, "192.0.2.200", &[]));
        assert!(passes(&mapped, "192.0.3.0", &[]));
    }

    #[test]
    fn overlapping_ranges_are_merged() {
        let r = Ranges::parse(
            &[
                "10.0.0.0/8",
                "10.2.0.0/16",
                "10.0.0.0/24",
                "12.0.0.0/8",
                "11.0.0.0/8",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(
            r.v4,
            [
                (0x0a00_0000, 0x0aff_ffff),
                (0x0b00_0000, 0x0bff_ffff),
                (0x0c00_0000, 0x0cff_ffff)
            ],
            "10/8 swallows its parts; adjacent ranges stay apart"
        );
        for ip in ["10.2.3.4", "10.200.0.0", "11.0.0.0", "12.255.255.255"] {
            assert!(r.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(!r.contains("13.0.0.0".parse().unwrap()));
        assert!(!r.contains("9.9.9.9".parse().unwrap()));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let p = policy(&[], &["203.0.113.7"], &["10.0.0.0/8"]);
        // Not trusted: the header is the client's own claim, ignored.
        assert!(passes(&p, "198.51.100.1", &["198.51.100.2"]));
        assert!(!passes(&p, "203.0.113.7", &["10.0.0.9"]));
        // Trusted peer: the rightmost untrusted entry is the client, so a
        // forged entry further left changes nothing.
        assert!(!passes(&p, "10.0.0.1", &["203.0.113.7"]));
        assert!(!passes(&p, "10.0.0.1", &["1.2.3.4, 203.0.113.7, 10.0.0.2"]));
        assert!(passes(&p, "10.0.0.1", &["203.0.113.7, 1.2.3.4"]));
        // Several headers: the last one is the nearest.
        assert!(!passes(&p, "10.0.0.1", &["1.2.3.4", "203.0.113.7:4711"]));
        assert!(passes(&p, "10.0.0.1", &["203.0.113.7", "[2001:db8::1]:80"]));
        // No header, or only proxies: the leftmost proxy.
        assert!(passes(&p, "10.0.0.1", &[]));
        let p = policy(&["10.0.0.0/8"], &[], &["10.0.0.0/8"]);
        assert!(passes(&p, "10.0.0.1", &["10.0.0.3, 10.0.0.2"]));
        // Unreadable entries where a trusted proxy wrote: refused.
        assert!(!passes(&p, "10.0.0.1", &["10.0.0.3, nonsense"]));
        assert!(!passes(&p, "10.0.0.1", &["10.0.0.3,,10.0.0.2"]));
        // ...but past the first untrusted entry nothing is read.
        let p = policy(&[], &["203.0.113.7"], &["10.0.0.0/8"]);
        assert!(passes(&p, "10.0.0.1", &["nonsense, 198.51.100.1"]));
    }

    #[test]
    fn forwarded_entries_with_ports_and_brackets() {
        assert_eq!(
            forwarded_address("192.0.2.1"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            forwarded_address("192.0.2.1:80"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(forwarded_address("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(forwarded_address("[::1]:443"), Some("::1".parse().unwrap()));
        assert_eq!(forwarded_address("unknown"), None);
        assert_eq!(forwarded_address(""), None);
    }
}
