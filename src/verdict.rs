//! The RST cause taxonomy (shared/docs/causes.md): labels, hints, and the verdict record.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a RST was sent, in the taxonomy's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    ClosedPort,
    AcceptOverflow,
    LingerAbort,
    UnreadData,
    DataAfterClose,
    HalfOpen,
    KeepaliveTimeout,
    Injected,
    ClientAbort,
    FollowUp,
    Unknown,
}

impl Label {
    pub const ALL: [Label; 11] = [
        Label::ClosedPort,
        Label::AcceptOverflow,
        Label::LingerAbort,
        Label::UnreadData,
        Label::DataAfterClose,
        Label::HalfOpen,
        Label::KeepaliveTimeout,
        Label::Injected,
        Label::ClientAbort,
        Label::FollowUp,
        Label::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::ClosedPort => "closed-port",
            Label::AcceptOverflow => "accept-overflow",
            Label::LingerAbort => "linger-abort",
            Label::UnreadData => "unread-data",
            Label::DataAfterClose => "data-after-close",
            Label::HalfOpen => "half-open",
            Label::KeepaliveTimeout => "keepalive-timeout",
            Label::Injected => "injected",
            Label::ClientAbort => "client-abort",
            Label::FollowUp => "follow-up",
            Label::Unknown => "unknown",
        }
    }

    /// What the operator should look at for this cause.
    pub fn hint(self) -> &'static str {
        match self {
            Label::ClosedPort => {
                "is the service running and bound to that address/port? \
                 a firewall REJECT looks the same but differs in TTL"
            }
            Label::AcceptOverflow => {
                "raise the listen() backlog and net.core.somaxconn, accept faster; \
                 nstat TcpExtListenOverflows counts them"
            }
            Label::LingerAbort => {
                "intended by the application? a client library that 'closes fast' \
                 this way makes the peer see ECONNRESET"
            }
            Label::UnreadData => {
                "the application closed without reading the whole request; \
                 drain or shut down properly"
            }
            Label::DataAfterClose => {
                "the peer kept writing after the close: check who closes first, \
                 or keep-alive reuse of a connection the other side already closed"
            }
            Label::HalfOpen => {
                "look for a restart of the RST sender or a middlebox idle timeout \
                 shorter than the application's keepalive"
            }
            Label::KeepaliveTimeout => {
                "the peer or the path died; tune tcp_keepalive_* to detect it sooner"
            }
            Label::Injected => {
                "find the device: traceroute towards the claimed sender, \
                 compare the TTL with the hop count"
            }
            Label::ClientAbort => "scans look like this; so do clients that time out too early",
            Label::FollowUp => "look at the first RST of the flow",
            Label::Unknown => {
                "the capture does not show enough; capture closer to the endpoints \
                 or from the start of the connection"
            }
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who really sent the RST (`Path`: forged by a device between the endpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sender {
    Client,
    Server,
    Path,
    Unknown,
}

impl Sender {
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::Client => "client",
            Sender::Server => "server",
            Sender::Path => "path",
            Sender::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the receiver could accept the RST (RFC 793, RFC 5961), as the packets after it
/// show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// exactly the next expected sequence number; the receiver went silent, or answers later
    /// packets as a stack without the connection
    Accepted,
    /// outside the window: the receiver kept sending or retransmitting
    Ignored,
    /// in the window but not exact: answered by a challenge ACK
    Challenged,
    /// the capture ends before it shows
    Unknown,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Accepted => "accepted",
            Effect::Ignored => "ignored",
            Effect::Challenged => "challenged",
            Effect::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Confidence {
    High,
    Medium,
    Low,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One end of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    /// As Python's `str(Endpoint)`: brackets around any address text holding a colon.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = AddrText(self.addr);
        match self.addr {
            IpAddr::V4(_) => write!(f, "{text}:{}", self.port),
            IpAddr::V6(_) => write!(f, "[{text}]:{}", self.port),
        }
    }
}

/// One RST explained. `src`/`dst` are as on the wire; `sender` is who really sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub frame: u64,
    pub ts: f64,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub flags: u8,
    pub client: Endpoint,
    pub server: Endpoint,
    pub sender: Sender,
    pub label: Label,
    pub confidence: Confidence,
    pub evidence: String,
    pub duplicate_of: Option<u64>,
    /// the other labels the same wire evidence allows (a kernel's reason would decide)
    pub alternatives: Vec<Label>,
    pub effect: Effect,
    /// a hint for this RST's story when it says more than its label's (a closed listener)
    pub story_hint: Option<&'static str>,
}

/// The hint of the RSTs a closing listener causes: its queued connections', later SYNs'.
pub const LISTENER_CLOSED_HINT: &str = "the service's listener closed (stop, restart or \
     deploy) with connections still in its accept queue: stop taking connections and drain \
     the queue before closing, or hand the listening socket to the new process (socket \
     activation, SO_REUSEPORT)";

impl Verdict {
    pub fn hint(&self) -> &'static str {
        self.story_hint.unwrap_or(self.label.hint())
    }
}

/// An address as Python's `socket.inet_ntop` writes it on glibc.
pub fn addr_text(addr: IpAddr) -> String {
    AddrText(addr).to_string()
}

/// `addr_text` as a Display, to write an address where it goes (an IPv4 one without an
/// allocation).
pub struct AddrText(pub IpAddr);

impl fmt::Display for AddrText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => f.write_str(&ipv6_text(v6)),
        }
    }
}

/// glibc's inet_ntop6: the first longest run (two words or more) of zero words becomes "::",
/// and an address starting with six zero words (the longest run exactly that long) or with
/// five and then ffff ends in dotted IPv4. So "::2" stays hex but "::0.1.0.0" does not: the
/// run of zeros decides, not the value (Rust's Display differs on these).
fn ipv6_text(addr: Ipv6Addr) -> String {
    let words = addr.segments();
    let (best_base, best_len) = longest_zero_run(&words);
    let mut out = String::with_capacity(40);
    for (i, word) in words.iter().enumerate() {
        if best_len > 0 && i >= best_base && i < best_base + best_len {
            if i == best_base {
                out.push(':');
            }
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        let embedded_v4 = i == 6
            && best_len > 0
            && best_base == 0
            && (best_len == 6 || (best_len == 5 && words.get(5) == Some(&0xffff)));
        if embedded_v4 {
            let [.., a, b, c, d] = addr.octets();
            out.push_str(&Ipv4Addr::new(a, b, c, d).to_string());
            return out;
        }
        out.push_str(&format!("{word:x}"));
    }
    if best_len > 0 && best_base + best_len == words.len() {
        out.push(':');
    }
    out
}

/// (start, length) of the first longest run of zero words; length 0 when none is 2 or longer.
fn longest_zero_run(words: &[u16; 8]) -> (usize, usize) {
    let (mut best, mut best_len) = (0, 0);
    let (mut cur, mut cur_len) = (0, 0);
    for (i, word) in words.iter().enumerate() {
        if *word == 0 {
            if cur_len == 0 {
                cur = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                best = cur;
                best_len = cur_len;
            }
        } else {
            cur_len = 0;
        }
    }
    if best_len < 2 {
        (0, 0)
    } else {
        (best, best_len)
    }
}

/// Python's `f"{x:.{digits}f}"`: correctly rounded on the exact binary value, ties to even
/// (Rust's formatter does the same), with Python's spelling of the non-finite values.
pub fn py_fixed(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{x:.digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().unwrap_or(Ipv6Addr::UNSPECIFIED))
    }

    #[test]
    fn ipv4_address_text_is_dotted() {
        assert_eq!(
            addr_text(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            "192.0.2.1"
        );
    }

    // Expected texts from python3 -c "socket.inet_ntop(AF_INET6, inet_pton(AF_INET6, a))".
    #[test]
    fn ipv6_address_text_is_what_glibc_inet_ntop_writes() {
        for (given, glibc) in [
            ("::", "::"),
            ("::1", "::1"),
            ("::2", "::2"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::0.0.1.2", "::102"),
            ("::0.1.0.0", "::0.1.0.0"),
            ("::255.255.0.1", "::255.255.0.1"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::ffff:0:0", "::ffff:0.0.0.0"),
            ("::ffff:0:1.2.3.4", "::ffff:0:102:304"),
            ("::ffff", "::ffff"),
            ("1::", "1::"),
            ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
            ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),
            ("0:0:0:0:0:1:0:0", "::1:0:0"),
            ("::1:2:3", "::1:2:3"),
            ("2001:db8::8:800:200c:417a", "2001:db8::8:800:200c:417a"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("fe80::1", "fe80::1"),
        ] {
            assert_eq!(addr_text(v6(given)), glibc, "{given}");
        }
    }

    #[test]
    fn endpoint_text_brackets_ipv6_addresses_only() {
        let e4 = Endpoint {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 80,
        };
        let e6 = Endpoint {
            addr: v6("2001:db8::1"),
            port: 443,
        };
        assert_eq!(e4.to_string(), "10.0.0.1:80");
        assert_eq!(e6.to_string(), "[2001:db8::1]:443");
    }

    // Expected texts from python3 f"{x:.1f} {x:.0f}".
    #[test]
    fn fixed_point_text_rounds_ties_to_even_as_python_does() {
        for (x, one, zero) in [
            (0.25, "0.2", "0"),
            (2.5, "2.5", "2"),
            (0.5, "0.5", "0"),
            (1.5, "1.5", "2"),
            (-2.5, "-2.5", "-2"),
            (0.35, "0.3", "0"),
            (0.15, "0.1", "0"),
            (2.675, "2.7", "3"),
            (123456.25, "123456.2", "123456"),
        ] {
            assert_eq!(
                (py_fixed(x, 1).as_str(), py_fixed(x, 0).as_str()),
                (one, zero),
                "{x}"
            );
        }
    }

    #[test]
    fn fixed_point_text_keeps_the_sign_of_negative_zero() {
        assert_eq!(py_fixed(-0.0, 1), "-0.0");
        assert_eq!(py_fixed(-0.04, 1), "-0.0");
        assert_eq!(py_fixed(-0.4, 0), "-0");
    }

    #[test]
    fn fixed_point_text_spells_non_finite_values_as_python() {
        assert_eq!(py_fixed(f64::NAN, 1), "nan");
        assert_eq!(py_fixed(f64::INFINITY, 0), "inf");
        assert_eq!(py_fixed(f64::NEG_INFINITY, 1), "-inf");
    }

    #[test]
    fn every_label_has_its_name_and_hint() {
        let names: Vec<&str> = Label::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(names.first(), Some(&"closed-port"));
        assert_eq!(names.last(), Some(&"unknown"));
        assert!(Label::ALL.iter().all(|l| !l.hint().is_empty()));
        assert_eq!(
            Label::ClosedPort.hint(),
            "is the service running and bound to that address/port? a firewall REJECT looks \
             the same but differs in TTL"
        );
    }
}
