//! Which peers may speak for a client: the proxies whose forwarding
//! headers are believed, and those allowed to send a PROXY protocol header.
//!
//! A peer on a Unix-domain socket has no address and is always allowed:
//! only processes on this host that can open the socket file reach it,
//! which is the same trust that `127.0.0.1` expresses for TCP.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Networks of allowed peers. Matching is a scan: lists are a few entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Allows the peers in `nets` (and Unix-socket peers). `0.0.0.0/0`
    /// with `::/0` allows everyone.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// `127.0.0.1` and `::1`: gunicorn's default.
    pub fn localhost() -> Self {
        Self::new(vec![
            IpNet::from(IpAddr::from([127, 0, 0, 1])),
            IpNet::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ])
    }

    /// Whether a connection from `peer` (`None`: a Unix-domain socket) is
    /// allowed.
    pub fn allows(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_none_or(|peer| self.contains(peer.ip()))
    }

    /// Whether `ip` is in one of the networks. An IPv4 peer seen on an IPv6
    /// socket (`::ffff:10.0.0.1`) matches as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(nets: &[&str]) -> AllowList {
        AllowList::new(nets.iter().map(|n| n.parse().expect("a net")).collect())
    }

    #[test]
    fn matches_addresses_ranges_and_mapped_ipv4() {
        let allow = list(&["10.0.0.0/8", "2001:db8::/32", "127.0.0.1/32"]);
        for ip in ["10.1.2.3", "::ffff:10.9.9.9", "2001:db8::7", "127.0.0.1"] {
            assert!(allow.contains(ip.parse().expect("an ip")), "{ip}");
        }
        for ip in ["11.0.0.1", "2001:db9::1", "127.0.0.2", "::1"] {
            assert!(!allow.contains(ip.parse().expect("an ip")), "{ip}");
        }
        assert!(allow.allows(None), "Unix-socket peers are allowed");
        assert!(!AllowList::default().allows(Some("127.0.0.1:1".parse().expect("addr"))));
        assert!(AllowList::localhost().allows(Some("[::1]:1".parse().expect("addr"))));
    }
}
