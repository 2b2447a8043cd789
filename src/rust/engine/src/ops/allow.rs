//! Who may read the metrics and the status page: loopback clients and Unix-socket
//! clients always; others only if `metrics_allow` lists them (an address, a CIDR block
//! such as `10.0.0.0/8`, or `*` for everyone).
use std::net::IpAddr;

use crate::forwarded::canonical_ip;

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
#[error("`metrics_allow`: {0:?} is not an IP address, a CIDR block (10.0.0.0/8, fd00::/8) or \"*\"")]
pub struct BadEntry(pub String);

#[derive(Clone, Debug, Default)]
pub struct AllowList {
    everyone: bool,
    blocks: Vec<(IpAddr, u8)>,
}

fn prefix_matches(a: IpAddr, b: IpAddr, bits: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl AllowList {
    pub fn parse(entries: &[String]) -> Result<AllowList, BadEntry> {
        let mut list = AllowList::default();
        for e in entries {
            let t = e.trim();
            if t == "*" {
                list.everyone = true;
                continue;
            }
            let (addr, bits) = match t.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (t, None),
            };
            let ip: IpAddr = addr.parse().map_err(|_| BadEntry(e.clone()))?;
            let ip = canonical_ip(ip);
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b.parse::<u8>().ok().filter(|&b| b <= max).ok_or_else(|| BadEntry(e.clone()))?,
                None => max,
            };
            list.blocks.push((ip, bits));
        }
        Ok(list)
    }

    /// May a client at `ip` (`None`: a Unix socket) read the metrics?
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip.map(canonical_ip) else { return true };
        self.everyone || ip.is_loopback() || self.blocks.iter().any(|&(b, bits)| prefix_matches(ip, b, bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn loopback_and_listed_blocks_only() {
        let none = AllowList::parse(&[]).unwrap();
        assert!(none.allows(ip("127.0.0.1")) && none.allows(ip("::1")) && none.allows(ip("::ffff:127.0.0.1")));
        assert!(none.allows(None));
        assert!(!none.allows(ip("10.1.2.3")));
        let l = AllowList::parse(&["10.0.0.0/8".into(), "fd00::/8".into(), "192.168.1.7".into()]).unwrap();
        assert!(l.allows(ip("10.200.0.1")) && l.allows(ip("fd12::1")) && l.allows(ip("192.168.1.7")));
        assert!(!l.allows(ip("192.168.1.8")) && !l.allows(ip("11.0.0.1")));
        assert!(AllowList::parse(&["*".into()]).unwrap().allows(ip("8.8.8.8")));
        assert!(AllowList::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(AllowList::parse(&["example.com".into()]).is_err());
    }
}
