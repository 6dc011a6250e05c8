//! Per-flow tracking: roles, per-side sequence state, a short history, and one case per RST.
//!
//! The tracker turns a stream of Packets into RstCases, each holding everything the classifier
//! needs to judge one RST: the flow's history before it, both sides' state at that moment, and
//! the few packets that followed it (injection shows in what the claimed sender does next).
//!
//! A port of rstdiag/flows.py. Python's dicts iterate in insertion order, and that order shows
//! in which cases a sweep releases first and which flows an eviction picks among equally idle
//! ones: here each flow's id (its creation number) stands for that order, and each host's
//! first sighting for the host table's.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use crate::records::{Packet, ACK, FIN, RST, SYN};

/// Segments kept per flow; the classifier looks at the last few.
pub const HISTORY: usize = 16;
/// A sequence number this far from its side's base is shown absolute (as `explain` does).
pub const FAR: i64 = 1 << 30;
/// Segments after a RST collected before it is judged...
pub const AFTER: usize = 8;
/// ...or this much capture time, whichever comes first.
pub const AFTER_SECONDS: f64 = 5.0;
/// The same packet seen twice (an 'any' capture) arrives within this.
pub const DUPLICATE_SECONDS: f64 = 0.05;
pub const DUPLICATE_SECONDS_NO_ID: f64 = 0.00002;
/// Packets between sweeps of idle flows.
pub const SWEEP_EVERY: u64 = 65536;
/// A closed flow is forgotten after this much idle capture time.
pub const CLOSED_IDLE: f64 = 30.0;
/// An open flow is forgotten after this much idle capture time.
pub const OPEN_IDLE: f64 = 900.0;
/// Flows held at once; the idlest are evicted beyond it (the table grows 10% over before it
/// is cut back). About 1 KB a flow with its history and its place in the table (bench/memory.py:
/// 1.0 KB a flow of a SYN flood, 1.2 KB a SYN->RST flow): 65,536 keep a 1M-flow SYN flood and
/// 200,000 SYN->RST flows under 150 MB of peak RSS with the Python side. Captures with more
/// flows open at once evict and say so; `--max-flows` raises the cap.
pub const MAX_FLOWS: usize = 65_536;
/// RST cases waiting at once for the packets after them. Beyond it the oldest leaves at once,
/// with the packets seen after it so far: counted in `TrackerStats::early` when its
/// AFTER_SECONDS had not passed yet. Sweeps come every SWEEP_EVERY packets, so this also
/// releases by count the cases whose window passed in between. A case holds about 1.1 KB plus
/// its history (9 MB for 8,192); cases are early only when more than 1,600 RSTs a second wait
/// on quiet flows (a scan's answers), where they would otherwise hold tens of MB.
pub const MAX_WAITING: usize = 8192;
/// Hosts whose TTLs are remembered across flows.
pub const MAX_HOSTS: usize = 100_000;
pub const MAX_TTLS: usize = 8;

/// Ports that name a service: the side using one is the server when the SYN was not captured.
pub const SERVICE_PORTS: [u16; 39] = [
    20, 21, 22, 23, 25, 53, 80, 110, 111, 119, 135, 139, 143, 179, 389, 443, 445, 465, 514, 587,
    636, 993, 995, 1433, 1521, 2049, 3306, 3389, 5432, 5672, 6379, 6443, 8000, 8080, 8443, 9092,
    9200, 11211, 27017,
];

/// a - b in sequence space (RFC 1982 style): positive when a is after b.
pub fn seq_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

/// Whether `a` is strictly after `b` in sequence space (within half the space).
fn seq_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    0 < d && d < 0x8000_0000
}

/// A set of TTLs: a 256-bit map, so copying it (per RST) and iterating it sorted are free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TtlSet {
    bits: [u64; 4],
}

impl TtlSet {
    pub fn insert(&mut self, ttl: u8) {
        if let Some(word) = self.bits.get_mut(usize::from(ttl >> 6)) {
            *word |= 1u64 << (ttl & 63);
        }
    }

    pub fn contains(&self, ttl: u8) -> bool {
        self.bits
            .get(usize::from(ttl >> 6))
            .is_some_and(|word| word & (1u64 << (ttl & 63)) != 0)
    }

    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    pub fn union(&self, other: &TtlSet) -> TtlSet {
        let mut out = *self;
        for (mine, theirs) in out.bits.iter_mut().zip(other.bits) {
            *mine |= theirs;
        }
        out
    }

    /// The TTLs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(move |ttl| self.contains(*ttl))
    }

    /// Python's `"/".join(str(t) for t in sorted(ttls))`.
    pub fn text(&self) -> String {
        let parts: Vec<String> = self.iter().map(|t| t.to_string()).collect();
        parts.join("/")
    }
}

impl FromIterator<u8> for TtlSet {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        let mut out = TtlSet::default();
        for ttl in iter {
            out.insert(ttl);
        }
        out
    }
}

/// A packet as its flow sees it: `side` 0 is the client, 1 the server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub frame: u64,
    pub ts: f64,
    pub side: u8,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub length: u32,
    pub window: u16,
    pub ttl: u8,
    pub ipid: Option<u16>,
    pub fastclose: bool,
    pub mptcp_reason: Option<u8>,
}

#[cfg(test)]
const NO_SEGMENT: Segment = Segment {
    frame: 0,
    ts: 0.0,
    side: 0,
    flags: 0,
    seq: 0,
    ack: 0,
    length: 0,
    window: 0,
    ttl: 0,
    ipid: None,
    fastclose: false,
    mptcp_reason: None,
};

impl Segment {
    /// Sequence number just past this segment (SYN and FIN take one each).
    pub fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.length)
            .wrapping_add(u32::from(self.flags & SYN != 0))
            .wrapping_add(u32::from(self.flags & FIN != 0))
    }
}

/// Devices told apart per side of a flow (the host and one in front of it); packets with a
/// third TTL join none. Two keep the flow small: the tracker holds up to 65,536 by default.
pub const DEVICES: usize = 2;

/// One device that sent packets in an endpoint's name: the host itself, or a firewall, SYN
/// proxy or NAT in front of it that answers for it. Told apart by TTL (the hops from each
/// device to the capture differ); its IP ID counter and window habits are kept as evidence.
/// A slot with `packets` 0 is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Device {
    pub ttl: u8,
    /// saturating counts
    pub packets: u16,
    /// segments carrying data: the application's host sends those
    pub data_packets: u16,
    pub first_frame: u64,
    pub first_ipid: Option<u16>,
    pub last_ipid: Option<u16>,
    pub min_window: u16,
    pub max_window: u16,
}

impl Device {
    fn new(seg: &Segment) -> Self {
        Device {
            ttl: seg.ttl,
            packets: 0,
            data_packets: 0,
            first_frame: seg.frame,
            first_ipid: seg.ipid,
            last_ipid: seg.ipid,
            min_window: seg.window,
            max_window: seg.window,
        }
    }

    fn add(&mut self, seg: &Segment) {
        self.packets = self.packets.saturating_add(1);
        if seg.length != 0 {
            self.data_packets = self.data_packets.saturating_add(1);
        }
        if seg.ipid.is_some() {
            self.last_ipid = seg.ipid;
        }
        self.min_window = self.min_window.min(seg.window);
        self.max_window = self.max_window.max(seg.window);
    }

    /// Whether `ipid` could come next from this device's counter: a little ahead of its last.
    /// Zero IDs (Linux's per-socket IDs on RSTs, DF packets of some stacks) say nothing.
    pub fn counts_on(&self, ipid: Option<u16>) -> bool {
        match (self.last_ipid, ipid) {
            (Some(last), Some(id)) if last != 0 && id != 0 => {
                let ahead = id.wrapping_sub(last);
                0 < ahead && ahead < 0x8000
            }
            _ => false,
        }
    }

    /// "TTL 251, IP ID 31756..31757, window 9300" for the evidence.
    pub fn text(&self) -> String {
        let mut out = format!("TTL {}", self.ttl);
        if let (Some(first), Some(last)) = (self.first_ipid, self.last_ipid) {
            if first == last {
                out += &format!(", IP ID {first}");
            } else {
                out += &format!(", IP ID {first}..{last}");
            }
        }
        if self.min_window == self.max_window {
            out += &format!(", window {}", self.min_window);
        } else {
            out += &format!(", window {}-{}", self.min_window, self.max_window);
        }
        out
    }
}

/// What one side of a flow has sent so far (RSTs apart, which are kept in `rsts`).
#[derive(Clone, Debug, PartialEq)]
pub struct SideState {
    pub addr: IpAddr,
    pub port: u16,
    pub isn: Option<u32>,
    /// origin of relative sequence numbers
    pub base: Option<u32>,
    pub sent_syn: bool,
    pub sent_synack: bool,
    /// highest sequence number sent + 1
    pub nxt: Option<u32>,
    pub fin_frame: Option<u64>,
    pub fin_seq: Option<u32>,
    pub data_bytes: u64,
    pub last_data_frame: Option<u64>,
    /// highest ack sent in a non-RST segment
    pub acked: Option<u32>,
    /// non-RST segments
    pub packets: u64,
    pub ttls: TtlSet,
    /// (no last_ts: the flow keeps one for both sides)
    pub first_ts: Option<f64>,
    /// the side's first four RSTs
    pub rsts: Vec<Segment>,
    /// the devices that sent this side's non-RST packets, by TTL, first seen first
    pub devices: [Device; DEVICES],
    /// SYN to the handshake's ACK as the capture saw it (client side): one round trip
    pub handshake_rtt: Option<f64>,
}

impl SideState {
    pub fn new(addr: IpAddr, port: u16) -> Self {
        SideState {
            addr,
            port,
            isn: None,
            base: None,
            sent_syn: false,
            sent_synack: false,
            nxt: None,
            fin_frame: None,
            fin_seq: None,
            data_bytes: 0,
            last_data_frame: None,
            acked: None,
            packets: 0,
            ttls: TtlSet::default(),
            first_ts: None,
            rsts: Vec::new(),
            devices: [Device::default(); DEVICES],
            handshake_rtt: None,
        }
    }

    /// The device of this side whose TTL is `ttl`.
    pub fn device(&self, ttl: u8) -> Option<&Device> {
        self.seen_devices().find(|d| d.ttl == ttl)
    }

    /// The devices that sent in this side's name, first seen first.
    pub fn seen_devices(&self) -> impl Iterator<Item = &Device> + '_ {
        self.devices.iter().filter(|d| d.packets != 0)
    }

    fn note_device(&mut self, seg: &Segment) {
        for slot in self.devices.iter_mut() {
            if slot.packets == 0 {
                *slot = Device::new(seg);
            } else if slot.ttl != seg.ttl {
                continue;
            }
            slot.add(seg);
            return;
        }
    }

    /// `seq` relative to the side's base, or as it is when no base is known.
    pub fn relative(&self, seq: u32) -> i64 {
        match self.base {
            Some(base) => seq_diff(seq, base),
            None => i64::from(seq),
        }
    }

    /// A sequence number as the evidence and `explain`'s ladder show it: relative to this
    /// side's base, or absolute and marked so when the base is unknown or the number is
    /// nowhere near it (a forged or stray segment).
    pub fn shown(&self, seq: u32) -> String {
        match self.base.map(|base| seq_diff(seq, base)) {
            Some(rel) if rel.abs() < FAR => rel.to_string(),
            _ => format!("{seq} (abs)"),
        }
    }

    pub fn record(&mut self, seg: &Segment) {
        let flags = seg.flags;
        if self.first_ts.is_none() {
            self.first_ts = Some(seg.ts);
        }
        if flags & RST != 0 {
            if self.rsts.len() < 4 {
                // exact growth: a Vec's first push reserves four, and most sides send one RST
                self.rsts.reserve_exact(1);
                self.rsts.push(*seg);
            }
            return;
        }
        self.packets += 1;
        if self.ttls.len() < MAX_TTLS {
            self.ttls.insert(seg.ttl);
        }
        self.note_device(seg);
        if self.sent_syn && self.handshake_rtt.is_none() && flags & (SYN | ACK) == ACK {
            self.handshake_rtt = self.first_ts.map(|first| seg.ts - first);
        }
        let seq = seg.seq;
        if flags & SYN != 0 {
            if self.isn.is_none() || self.packets == 1 {
                self.isn = Some(seq);
            }
            self.base = Some(seq);
            if flags & ACK != 0 {
                self.sent_synack = true;
            } else {
                self.sent_syn = true;
            }
        } else if self.base.is_none() {
            self.base = Some(seq.wrapping_sub(1));
        }
        let end = seg.end();
        if self.nxt.is_none_or(|nxt| seq_after(end, nxt)) {
            self.nxt = Some(end);
        }
        if seg.length != 0 {
            self.data_bytes += u64::from(seg.length);
            self.last_data_frame = Some(seg.frame);
        }
        if flags & FIN != 0 && self.fin_frame.is_none() {
            self.fin_frame = Some(seg.frame);
            self.fin_seq = Some(seq.wrapping_add(seg.length));
        }
        if flags & ACK != 0 && self.acked.is_none_or(|acked| seq_after(seg.ack, acked)) {
            self.acked = Some(seg.ack);
        }
    }
}

/// How client and server were told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Roles {
    Syn,
    Synack,
    Port,
    First,
}

impl Roles {
    pub fn as_str(self) -> &'static str {
        match self {
            Roles::Syn => "syn",
            Roles::Synack => "synack",
            Roles::Port => "port",
            Roles::First => "first",
        }
    }
}

/// Everything known about one RST: the classifier's whole input.
#[derive(Clone, Debug)]
pub struct RstCase {
    pub flow_id: u64,
    pub rst: Segment,
    /// snapshots taken just before the RST
    pub client: SideState,
    pub server: SideState,
    pub roles: Roles,
    /// the flow's last segments before the RST, oldest first
    pub before: Vec<Segment>,
    /// what the flow saw next
    pub after: Vec<Segment>,
    /// the sender's TTLs seen in other flows (its non-RST packets, this one's too)
    pub sender_host_ttls: TtlSet,
    pub payload: Vec<u8>,
    pub mptcp_reset_reason: Option<u8>,
    /// frame of the identical RST just before this one (the first of a chain of copies)
    pub duplicate_of: Option<u64>,
}

impl RstCase {
    pub fn sender(&self) -> &SideState {
        if self.rst.side == 0 {
            &self.client
        } else {
            &self.server
        }
    }

    pub fn peer(&self) -> &SideState {
        if self.rst.side == 0 {
            &self.server
        } else {
            &self.client
        }
    }
}

#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct TrackerStats {
    pub flows: u64,
    pub duplicates: u64,
    /// flows dropped because the table was full
    pub evicted: u64,
    /// RST cases judged before their after-window ended: more than MAX_WAITING waited
    pub early: u64,
}

/// The RST cases waiting in flows, oldest first, so that the oldest can be judged early when
/// too many wait. A case released otherwise (its after-window full, its flow forgotten)
/// leaves its entry behind until the entry reaches the front or the queue is compacted.
#[derive(Default)]
struct Waiting {
    /// cases waiting in all flows
    count: usize,
    /// (flow id, RST frame, flow) of each case, in the order they were made
    queue: VecDeque<(u64, u64, FlowKey)>,
}

impl Waiting {
    fn add(&mut self, flow_id: u64, frame: u64, key: FlowKey) {
        self.count += 1;
        self.queue.push_back((flow_id, frame, key));
    }

    fn released(&mut self, cases: usize) {
        self.count = self.count.saturating_sub(cases);
    }
}

/// The last HISTORY segments of a flow: grown as the flow grows (most flows are short, and a
/// table of 65,536 flows would hold 42 MB of empty slots), then a ring with no allocation.
#[derive(Clone, Debug)]
struct History {
    segs: Vec<Segment>,
    start: usize,
}

impl History {
    fn new() -> Self {
        History {
            segs: Vec::new(),
            start: 0,
        }
    }

    fn push(&mut self, seg: Segment) {
        let len = self.segs.len();
        if len < HISTORY {
            if len == self.segs.capacity() {
                // 1, 2, 4, 8, 16 segments: a SYN flood's one-packet flows hold 40 bytes of
                // history, not the 160 of a Vec's first growth
                self.segs.reserve_exact(len.max(1));
            }
            self.segs.push(seg);
            return;
        }
        if let Some(slot) = self.segs.get_mut(self.start) {
            *slot = seg;
        }
        self.start = (self.start + 1) % HISTORY;
    }

    fn last(&self) -> Option<&Segment> {
        // the newest sits just before `start` (0 until the ring is full): no division on the
        // per-packet path
        match self.start.checked_sub(1) {
            Some(newest) => self.segs.get(newest),
            None => self.segs.last(),
        }
    }

    /// Oldest first.
    fn iter(&self) -> impl Iterator<Item = &Segment> + '_ {
        let n = self.segs.len();
        (0..n).filter_map(move |i| self.segs.get((self.start + i) % n))
    }
}

#[derive(Clone, Debug)]
struct Flow {
    /// also the flow's place in the table's insertion order
    flow_id: u64,
    /// (client, server)
    sides: [SideState; 2],
    roles: Roles,
    history: History,
    waiting: Vec<RstCase>,
    last_ts: f64,
    rst_seen: bool,
    /// per side, the last TTL offered to the host table, and when (see HostTtls::note_once)
    noted: [Option<(u32, u8)>; 2],
}

impl Flow {
    fn new(flow_id: u64, pkt: &Packet) -> Self {
        let (sender_is_client, roles) = roles_of(pkt);
        let me = SideState::new(pkt.src, pkt.sport);
        let peer = SideState::new(pkt.dst, pkt.dport);
        let sides = if sender_is_client {
            [me, peer]
        } else {
            [peer, me]
        };
        Flow {
            flow_id,
            sides,
            roles,
            history: History::new(),
            waiting: Vec::new(),
            last_ts: pkt.ts,
            rst_seen: false,
            noted: [None; 2],
        }
    }

    fn closed(&self) -> bool {
        let [client, server] = &self.sides;
        self.rst_seen || (client.fin_frame.is_some() && server.fin_frame.is_some())
    }

    /// A fresh SYN on a closed 4-tuple is a new connection, a retransmitted one is not.
    fn started_anew_by(&self, pkt: &Packet) -> bool {
        if pkt.flags & SYN == 0 || pkt.flags & ACK != 0 || !self.closed() {
            return false;
        }
        let [client, _] = &self.sides;
        !(client.addr == pkt.src && client.port == pkt.sport && client.isn == Some(pkt.seq))
    }
}

/// (is the packet's sender the client?, how that was decided).
fn roles_of(pkt: &Packet) -> (bool, Roles) {
    roles(pkt.flags, pkt.sport, pkt.dport)
}

/// (is the sender of a flow's first packet the client?, how that was decided): from its
/// flags and ports. Public for `explain`, which splits a 4-tuple into connections itself.
pub fn roles(flags: u8, sport: u16, dport: u16) -> (bool, Roles) {
    if flags & SYN != 0 {
        let synack = flags & ACK != 0;
        return (!synack, if synack { Roles::Synack } else { Roles::Syn });
    }
    let s_service = SERVICE_PORTS.contains(&sport);
    let d_service = SERVICE_PORTS.contains(&dport);
    if s_service != d_service {
        return (d_service, Roles::Port);
    }
    if (sport < 1024) != (dport < 1024) {
        return (dport < 1024, Roles::Port);
    }
    if flags & RST != 0 && sport != dport {
        // A lone RST usually answers something: guess the lower port is the service.
        return (dport < sport, Roles::Port);
    }
    (true, Roles::First)
}

/// An address as plain integers: hashing and comparing an IpAddr enum costs several times more
/// on the per-packet path. IPv4 and IPv6 stay apart (Python's keys are 4 or 16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct HostKey {
    bits: u128,
    v6: bool,
}

impl HostKey {
    fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => HostKey {
                bits: u128::from(v4.to_bits()),
                v6: false,
            },
            IpAddr::V6(v6) => HostKey {
                bits: v6.to_bits(),
                v6: true,
            },
        }
    }
}

/// A flow's 4-tuple, the same in both directions: the lower endpoint first. Each port carries
/// its address family above its 16 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    a: u128,
    b: u128,
    ports: u64,
}

impl FlowKey {
    fn of(pkt: &Packet) -> Self {
        let (src, dst) = (HostKey::of(pkt.src), HostKey::of(pkt.dst));
        let tagged = |host: HostKey, port: u16| u64::from(port) | u64::from(host.v6) << 16;
        let (sport, dport) = (tagged(src, pkt.sport), tagged(dst, pkt.dport));
        if (src.bits, sport) <= (dst.bits, dport) {
            FlowKey {
                a: src.bits,
                b: dst.bits,
                ports: sport << 32 | dport,
            }
        } else {
            FlowKey {
                a: dst.bits,
                b: src.bits,
                ports: dport << 32 | sport,
            }
        }
    }
}

/// Each host's TTLs across flows, and when it was first seen (Python's dict order).
#[derive(Default)]
struct HostTtls {
    hosts: FxHashMap<HostKey, (u64, TtlSet)>,
    seen: u64,
    /// trims so far
    epoch: u32,
}

impl HostTtls {
    fn note(&mut self, addr: IpAddr, ttl: u8) {
        let addr = HostKey::of(addr);
        if let Some((_, ttls)) = self.hosts.get_mut(&addr) {
            if ttls.len() < MAX_TTLS {
                ttls.insert(ttl);
            }
            return;
        }
        self.seen += 1;
        self.hosts
            .insert(addr, (self.seen, std::iter::once(ttl).collect()));
    }

    /// `note`, skipped when this flow side offered the same TTL since the last trim: a set
    /// only grows until a trim drops it, so offering a TTL again changes nothing. Saves a
    /// lookup in a table of every host on nearly every packet.
    fn note_once(&mut self, noted: &mut Option<(u32, u8)>, addr: IpAddr, ttl: u8) {
        if *noted != Some((self.epoch, ttl)) {
            self.note(addr, ttl);
            *noted = Some((self.epoch, ttl));
        }
    }

    fn of(&self, addr: IpAddr) -> TtlSet {
        self.hosts
            .get(&HostKey::of(addr))
            .map(|(_, ttls)| *ttls)
            .unwrap_or_default()
    }

    /// Beyond MAX_HOSTS, forget the half first seen longest ago.
    fn trim(&mut self) {
        if self.hosts.len() <= MAX_HOSTS {
            return;
        }
        let mut firsts: Vec<u64> = self.hosts.values().map(|(first, _)| *first).collect();
        let (_, cut, _) = firsts.select_nth_unstable(MAX_HOSTS / 2 - 1);
        let cut = *cut;
        self.hosts.retain(|_, (first, _)| *first > cut);
        self.epoch = self.epoch.wrapping_add(1);
    }
}

/// Feeds packets into flows and hands out RstCases once they can be judged.
pub struct FlowTracker {
    // Boxed: the table stays small enough for the caches, one pointer away from each flow.
    flows: FxHashMap<FlowKey, Box<Flow>>,
    hosts: HostTtls,
    stats: TrackerStats,
    max_flows: usize,
    waiting: Waiting,
    packets: u64,
    now: f64,
}

impl FlowTracker {
    pub fn new(max_flows: usize) -> Self {
        FlowTracker {
            flows: FxHashMap::default(),
            hosts: HostTtls::default(),
            stats: TrackerStats::default(),
            max_flows,
            waiting: Waiting::default(),
            packets: 0,
            now: 0.0,
        }
    }

    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    pub fn max_flows(&self) -> usize {
        self.max_flows
    }

    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    /// Track one packet; push the cases that became ready.
    pub fn feed(&mut self, mut pkt: Packet, ready: &mut Vec<RstCase>) {
        self.packets += 1;
        if pkt.ts > self.now {
            self.now = pkt.ts;
        }
        let key = FlowKey::of(&pkt);
        match self.flows.get_mut(&key) {
            Some(flow) if !flow.started_anew_by(&pkt) => {
                let mut ledger = Ledger {
                    hosts: &mut self.hosts,
                    stats: &mut self.stats,
                    waiting: &mut self.waiting,
                };
                track(flow, key, &mut ledger, &mut pkt, ready);
            }
            _ => self.feed_new_flow(key, &mut pkt, ready),
        }
        if self.packets % SWEEP_EVERY == 0 {
            self.sweep(ready);
        }
        if self.waiting.count > MAX_WAITING {
            self.judge_oldest_early(ready);
        }
        if self.waiting.queue.len() > 2 * MAX_WAITING {
            self.compact_waiting();
        }
    }

    /// Beyond MAX_WAITING waiting cases, release the oldest with the packets seen after it so
    /// far; counted as early unless its after-window had passed (a sweep was still to come).
    fn judge_oldest_early(&mut self, ready: &mut Vec<RstCase>) {
        while self.waiting.count > MAX_WAITING {
            let Some((flow_id, frame, key)) = self.waiting.queue.pop_front() else {
                return;
            };
            let Some(flow) = self.flows.get_mut(&key) else {
                continue;
            };
            // a flow's cases leave oldest first, so a case still waiting is its flow's first
            let oldest = flow.waiting.first().map(|case| case.rst.frame);
            if flow.flow_id != flow_id || oldest != Some(frame) {
                continue; // released already
            }
            let case = flow.waiting.remove(0);
            if flow.waiting.is_empty() {
                // a closed flow stays 30 s: its empty Vec must not keep a case's room
                flow.waiting = Vec::new();
            }
            self.waiting.released(1);
            if self.now - case.rst.ts <= AFTER_SECONDS {
                self.stats.early += 1;
            }
            ready.push(case);
        }
    }

    /// Drop the queue's entries of cases released otherwise: once it holds twice the bound,
    /// so that the work is a few lookups per case.
    fn compact_waiting(&mut self) {
        let flows = &self.flows;
        self.waiting.queue.retain(|(flow_id, frame, key)| {
            flows.get(key).is_some_and(|flow| {
                flow.flow_id == *flow_id && flow.waiting.iter().any(|c| c.rst.frame == *frame)
            })
        });
    }

    /// A packet that starts a flow: on a new 4-tuple, or a new connection on a closed one.
    fn feed_new_flow(&mut self, key: FlowKey, pkt: &mut Packet, ready: &mut Vec<RstCase>) {
        self.forget(&key, ready);
        self.stats.flows += 1;
        let flow_id = self.stats.flows;
        self.flows.insert(key, Box::new(Flow::new(flow_id, pkt)));
        // do not wait for the next sweep to shrink
        if self.flows.len() as f64 > self.max_flows as f64 * 1.1 {
            self.sweep(ready);
        }
        match self.flows.get_mut(&key) {
            Some(flow) => {
                let mut ledger = Ledger {
                    hosts: &mut self.hosts,
                    stats: &mut self.stats,
                    waiting: &mut self.waiting,
                };
                track(flow, key, &mut ledger, pkt, ready);
            }
            None => {
                // Quirk kept from Python: the sweep its arrival caused dropped the new flow (the
                // idlest of a full table, or idle past OPEN_IDLE: a packet far older than the
                // capture's clock). The packet is still tracked into that detached flow (host
                // TTLs and counters see it) and a case of it is lost.
                let mut detached = Flow::new(flow_id, pkt);
                let (mut lost, mut lost_waiting) = (Vec::new(), Waiting::default());
                let mut ledger = Ledger {
                    hosts: &mut self.hosts,
                    stats: &mut self.stats,
                    waiting: &mut lost_waiting,
                };
                track(&mut detached, key, &mut ledger, pkt, &mut lost);
            }
        }
    }

    fn forget(&mut self, key: &FlowKey, ready: &mut Vec<RstCase>) {
        if let Some(flow) = self.flows.remove(key) {
            self.waiting.released(flow.waiting.len());
            ready.extend(flow.waiting);
        }
    }

    /// End of input: every waiting case is ready, in the order the flows were created.
    pub fn finish(&mut self, ready: &mut Vec<RstCase>) {
        let mut flows: Vec<Box<Flow>> = self.flows.drain().map(|(_, flow)| flow).collect();
        flows.sort_unstable_by_key(|flow| flow.flow_id);
        for flow in flows {
            ready.extend(flow.waiting);
        }
        self.waiting = Waiting::default();
    }

    /// Release cases whose after-window passed; forget idle flows; keep the table bounded.
    pub fn sweep(&mut self, ready: &mut Vec<RstCase>) {
        let now = self.now;
        let mut released: Vec<(u64, Vec<RstCase>)> = Vec::new();
        self.flows.retain(|_, flow| {
            let window_passed = flow
                .waiting
                .first()
                .is_some_and(|case| now - case.rst.ts > AFTER_SECONDS);
            let idle = now - flow.last_ts;
            let keep = !(idle > OPEN_IDLE || (idle > CLOSED_IDLE && flow.closed()));
            if (window_passed || !keep) && !flow.waiting.is_empty() {
                released.push((flow.flow_id, std::mem::take(&mut flow.waiting)));
            }
            keep
        });
        released.sort_unstable_by_key(|(flow_id, _)| *flow_id);
        for (_, cases) in released {
            self.waiting.released(cases.len());
            ready.extend(cases);
        }
        self.evict_idlest(ready);
        self.hosts.trim();
    }

    /// Beyond max_flows, forget the flows idle longest (Python's stable sort by last packet
    /// time: among equals, the oldest flow first). Their waiting cases are ready in that order.
    fn evict_idlest(&mut self, ready: &mut Vec<RstCase>) {
        let excess = self.flows.len().saturating_sub(self.max_flows);
        if excess == 0 {
            return;
        }
        // `+ 0.0` makes -0.0 equal to 0.0 as Python compares them; total_cmp cannot panic.
        // (last time, flow id) only, 16 bytes a flow: this runs with the table at its fullest.
        let age = |flow: &Flow| (flow.last_ts + 0.0, flow.flow_id);
        let idlest = |x: &(f64, u64), y: &(f64, u64)| -> Ordering {
            x.0.total_cmp(&y.0).then(x.1.cmp(&y.1))
        };
        let mut ages: Vec<(f64, u64)> = self.flows.values().map(|flow| age(flow)).collect();
        // the last flow to go; flow ids are unique, so exactly `excess` flows are at or before it
        let last = match ages.len().checked_sub(excess) {
            Some(kept) if kept > 0 => Some(*ages.select_nth_unstable_by(excess - 1, idlest).1),
            _ => None,
        };
        drop(ages);
        let mut evicted: Vec<((f64, u64), Vec<RstCase>)> = Vec::new();
        let mut count = 0u64;
        self.flows.retain(|_, flow| {
            let go = last.is_none_or(|last| idlest(&age(flow), &last).is_le());
            if go {
                count += 1;
                if !flow.waiting.is_empty() {
                    evicted.push((age(flow), std::mem::take(&mut flow.waiting)));
                }
            }
            !go
        });
        evicted.sort_unstable_by(|x, y| idlest(&x.0, &y.0));
        for (_, cases) in evicted {
            self.waiting.released(cases.len());
            ready.extend(cases);
        }
        self.stats.evicted += count;
    }

    /// `sweep` with the clock moved to `now` (seconds since the epoch) if it is later: a live
    /// capture's wall time, so that cases and idle flows age while no packet comes.
    pub fn sweep_at(&mut self, now: f64, ready: &mut Vec<RstCase>) {
        if now > self.now {
            self.now = now;
        }
        self.sweep(ready);
    }

    /// The cases still collecting their after-packets, in the order their flows were created.
    /// Classify one for a provisional verdict; the final one comes from feed/sweep/finish.
    pub fn pending(&self) -> impl Iterator<Item = &RstCase> + '_ {
        let mut flows: Vec<&Flow> = self
            .flows
            .values()
            .filter(|f| !f.waiting.is_empty())
            .map(|f| &**f)
            .collect();
        flows.sort_unstable_by_key(|flow| flow.flow_id);
        flows.into_iter().flat_map(|flow| flow.waiting.iter())
    }

    /// The waiting cases of `pkt`'s flow.
    pub fn pending_of<'a>(&'a self, pkt: &Packet) -> impl Iterator<Item = &'a RstCase> + 'a {
        self.flows
            .get(&FlowKey::of(pkt))
            .into_iter()
            .flat_map(|flow| flow.waiting.iter())
    }
}

impl Default for FlowTracker {
    fn default() -> Self {
        FlowTracker::new(MAX_FLOWS)
    }
}

/// What tracking a packet updates besides its flow: the hosts' TTLs, the counters, and the
/// queue of waiting cases.
struct Ledger<'a> {
    hosts: &'a mut HostTtls,
    stats: &'a mut TrackerStats,
    waiting: &'a mut Waiting,
}

/// Add one packet to its flow: duplicates, the after-window of waiting cases, a case per RST.
fn track(
    flow: &mut Flow,
    key: FlowKey,
    ledger: &mut Ledger<'_>,
    pkt: &mut Packet,
    ready: &mut Vec<RstCase>,
) {
    let [client, _] = &flow.sides;
    let side: u8 = if pkt.src == client.addr && pkt.sport == client.port {
        0
    } else {
        1
    };
    let seg = Segment {
        frame: pkt.frame,
        ts: pkt.ts,
        side,
        flags: pkt.flags,
        seq: pkt.seq,
        ack: pkt.ack,
        length: pkt.length,
        window: pkt.window,
        ttl: pkt.ttl,
        ipid: pkt.ipid,
        fastclose: pkt.mptcp_fastclose,
        mptcp_reason: pkt.mptcp_reset_reason,
    };
    flow.last_ts = pkt.ts;
    let twin = flow.history.last().and_then(|last| twin_of(last, &seg));
    if twin.is_some() && seg.flags & RST == 0 {
        ledger.stats.duplicates += 1;
        return;
    }
    let released = collect_after(flow, &seg, ready);
    ledger.waiting.released(released);
    if seg.flags & RST != 0 {
        let case = new_case(flow, seg, pkt, twin.map(|t| t.frame), ledger);
        if flow.waiting.capacity() == 0 {
            // a Vec's first push reserves four: 2 KB a flow for the usual single RST
            flow.waiting.reserve_exact(1);
        }
        flow.waiting.push(case);
        ledger.waiting.add(flow.flow_id, seg.frame, key);
        flow.rst_seen = true;
    } else {
        if let Some(noted) = flow.noted.get_mut(usize::from(side)) {
            ledger.hosts.note_once(noted, pkt.src, pkt.ttl);
        }
    }
    if let Some(me) = flow.sides.get_mut(usize::from(side)) {
        me.record(&seg);
    }
    flow.history.push(seg);
}

/// The segment joins the after-window of every waiting case; the full ones are ready.
/// Returns how many became ready.
fn collect_after(flow: &mut Flow, seg: &Segment, ready: &mut Vec<RstCase>) -> usize {
    if flow.waiting.is_empty() {
        return 0;
    }
    for case in flow.waiting.iter_mut() {
        case.after.push(*seg);
    }
    // The first case waits longest: only when it is full can any be.
    if flow
        .waiting
        .first()
        .is_some_and(|case| case.after.len() >= AFTER)
    {
        let before = ready.len();
        for case in std::mem::take(&mut flow.waiting) {
            if case.after.len() >= AFTER {
                ready.push(case);
            } else {
                flow.waiting.push(case);
            }
        }
        return ready.len() - before;
    }
    0
}

/// The identical packet just before this one, if this is a copy of it.
fn twin_of(last: &Segment, seg: &Segment) -> Option<Segment> {
    let same = last.side == seg.side
        && last.seq == seg.seq
        && last.ack == seg.ack
        && last.flags == seg.flags
        && last.length == seg.length
        && last.window == seg.window
        && last.ipid == seg.ipid
        && last.mptcp_reason == seg.mptcp_reason;
    if !same {
        return None;
    }
    // Without an IP ID to tell them apart (IPv6, or the zero ID of Linux's RSTs), a stack's
    // answers to two arriving segments look identical: only a near-zero gap says it is one
    // packet captured twice.
    let window = match seg.ipid {
        Some(id) if id != 0 => DUPLICATE_SECONDS,
        _ => DUPLICATE_SECONDS_NO_ID,
    };
    let gap = seg.ts - last.ts;
    (0.0 <= gap && gap <= window).then_some(*last)
}

fn new_case(
    flow: &Flow,
    rst: Segment,
    pkt: &mut Packet,
    twin: Option<u64>,
    ledger: &mut Ledger<'_>,
) -> RstCase {
    let mut duplicate_of = None;
    if let Some(twin) = twin {
        duplicate_of = Some(twin);
        // a chain of copies points at the first of them (the last match decides, as in Python)
        for waiting in &flow.waiting {
            if waiting.rst.frame == twin && waiting.duplicate_of.is_some() {
                duplicate_of = waiting.duplicate_of;
            }
        }
        ledger.stats.duplicates += 1;
    }
    let [client, server] = &flow.sides;
    RstCase {
        flow_id: flow.flow_id,
        rst,
        client: client.clone(),
        server: server.clone(),
        roles: flow.roles,
        before: flow.history.iter().copied().collect(),
        after: Vec::with_capacity(AFTER),
        sender_host_ttls: ledger.hosts.of(pkt.src),
        mptcp_reset_reason: pkt.mptcp_reset_reason,
        payload: std::mem::take(&mut pkt.payload),
        duplicate_of,
    }
}

#[cfg(test)]
mod tests;
