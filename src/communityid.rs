//! Community ID flow hashes, version 1 (https://github.com/corelight/community-id-spec): the
//! key Zeek, Suricata, Arkime, Elastic and Wireshark give a flow, so that a verdict joins
//! their logs without matching 4-tuples and times by hand. Computed once per RST here, where
//! the addresses are still numbers.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

const TCP: u8 = 6;

fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// "1:" and the base64 of a SHA-1 over the seed, the endpoints ordered lower first (address,
/// then port), the protocol and a pad byte, then the two ports: both directions of a flow give
/// the same ID.
pub fn community_id(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, seed: u16) -> String {
    let a = (octets(src), sport);
    let b = (octets(dst), dport);
    let ((addr1, port1), (addr2, port2)) = if a <= b { (a, b) } else { (b, a) };
    let mut hash = Sha1::new();
    hash.update(seed.to_be_bytes());
    hash.update(&addr1);
    hash.update(&addr2);
    hash.update([TCP, 0]);
    hash.update(port1.to_be_bytes());
    hash.update(port2.to_be_bytes());
    let digest = hash.finalize();
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    // The specification's reference values (its baseline tcp.pcap and ipv6.pcap), seeds 0 and 1.
    #[test]
    fn tcp_over_ipv4_gives_the_specifications_values() {
        let (a, b) = (ip("128.232.110.120"), ip("66.35.250.204"));
        assert_eq!(
            community_id(a, 34855, b, 80, 0),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id(a, 34855, b, 80, 1),
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc="
        );
    }

    #[test]
    fn both_directions_of_a_flow_give_one_id() {
        let (a, b) = (ip("128.232.110.120"), ip("66.35.250.204"));
        assert_eq!(
            community_id(a, 34855, b, 80, 0),
            community_id(b, 80, a, 34855, 0)
        );
    }

    #[test]
    fn tcp_over_ipv6_gives_the_specifications_values() {
        let (a, b) = (
            ip("2001:470:e5bf:dead:4957:2174:e82c:4887"),
            ip("2607:f8b0:400c:c03::1a"),
        );
        assert_eq!(
            community_id(a, 63943, b, 25, 0),
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="
        );
        assert_eq!(
            community_id(b, 25, a, 63943, 0),
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="
        );
        assert_eq!(
            community_id(a, 63943, b, 25, 1),
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw="
        );
    }
}
