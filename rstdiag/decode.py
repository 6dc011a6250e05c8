"""Decode raw frames into TCP packets: link layer, IPv4/IPv6, TCP.

Payload length comes from the IP length fields, never from the captured length, so frames
padded to the Ethernet minimum or cut by the snaplen give the right sequence arithmetic.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

from .records import RST, Packet, RawFrame

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW has platform-specific values that show up in pcap files from BSDs.
_RAW_ALIASES = {LINKTYPE_RAW, 12, 14}

SUPPORTED_LINKTYPES = frozenset(
    {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4,
     LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2} | _RAW_ALIASES
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_PPPOE_SESSION = 0x8864
_VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
# BSD loopback address families for IPv6 differ by OS (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30).
_NULL_INET6 = frozenset({24, 28, 30})
_MAX_EXT_HEADERS = 16

_U16 = struct.Struct("!H")
_TCP = struct.Struct("!HHIIBBH")
_IPV4 = struct.Struct("!BBHHHBB")


@dataclass(slots=True)
class DecodeStats:
    """What the decoder saw besides TCP: counted, never fatal."""

    frames: int = 0
    tcp: int = 0
    non_ip: int = 0
    non_tcp: int = 0
    fragments: int = 0
    malformed: int = 0
    unsupported_linktypes: Counter[int] = field(default_factory=Counter)

    def skipped(self) -> dict[str, int]:
        out = {
            "non_ip": self.non_ip,
            "non_tcp": self.non_tcp,
            "ip_fragments": self.fragments,
            "malformed": self.malformed,
        }
        for linktype, count in sorted(self.unsupported_linktypes.items()):
            out[f"linktype_{linktype}"] = count
        return {k: v for k, v in out.items() if v}


def network_offset(linktype: int, data: bytes) -> int:
    """Offset of the IP header in a frame, or -1 when the frame carries no IP."""
    if linktype == LINKTYPE_ETHERNET:
        return _ethernet_offset(data, 12)
    if linktype in _RAW_ALIASES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        return 0
    if linktype == LINKTYPE_LINUX_SLL:
        return _ethernet_offset(data, 14)
    if linktype == LINKTYPE_LINUX_SLL2:
        return _ethernet_offset(data, 0, header_end=20)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return _null_offset(data)
    return -1


def _ethernet_offset(data: bytes, type_at: int, header_end: int | None = None) -> int:
    """Walk an EtherType (and any 802.1Q/QinQ tags) to the IP header."""
    end = type_at + 2 if header_end is None else header_end
    if len(data) < end:
        return -1
    ethertype = _U16.unpack_from(data, type_at)[0]
    for _ in range(4):  # QinQ stacks more than two tags only in odd labs; bound the loop anyway
        if ethertype not in _VLAN_TYPES:
            break
        if len(data) < end + 4:
            return -1
        ethertype = _U16.unpack_from(data, end + 2)[0]
        end += 4
    if ethertype in (ETH_IPV4, ETH_IPV6):
        return end
    # PPPoE header (6 bytes), then the PPP protocol field: 0x0021 IPv4, 0x0057 IPv6.
    if (ethertype == ETH_PPPOE_SESSION and len(data) >= end + 8
            and _U16.unpack_from(data, end + 6)[0] in (0x0021, 0x0057)):
        return end + 8
    return -1


def _null_offset(data: bytes) -> int:
    # The family is in the writer's host byte order, which the file does not record.
    if len(data) < 4:
        return -1
    family = int.from_bytes(data[:4], "little")
    if family > 0xFFFF:
        family = int.from_bytes(data[:4], "big")
    if family == 2 or family in _NULL_INET6:
        return 4
    return -1


class Decoder:
    """Turns RawFrames into Packets; counts everything it skips in `stats`."""

    def __init__(self) -> None:
        self.stats = DecodeStats()

    def decode(self, raw: RawFrame) -> Packet | None:
        stats = self.stats
        stats.frames += 1
        data = raw.data
        off = network_offset(raw.linktype, data)
        if off < 0:
            if raw.linktype not in SUPPORTED_LINKTYPES:
                stats.unsupported_linktypes[raw.linktype] += 1
            else:
                stats.non_ip += 1
            return None
        if len(data) <= off:
            stats.malformed += 1
            return None
        version = data[off] >> 4
        if version == 4:
            return self._ipv4(raw, data, off)
        if version == 6:
            return self._ipv6(raw, data, off)
        stats.non_ip += 1
        return None

    def _ipv4(self, raw: RawFrame, data: bytes, off: int) -> Packet | None:
        if len(data) < off + 20:
            self.stats.malformed += 1
            return None
        vihl, _tos, total, ipid, frag, ttl, proto = _IPV4.unpack_from(data, off)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20:
            self.stats.malformed += 1
            return None
        if proto != 6:
            self.stats.non_tcp += 1
            return None
        if frag & 0x3FFF:
            self.stats.fragments += 1
            return None
        if total == 0:
            # Segmentation offload on the capturing host leaves the length field zero.
            total = len(data) - off
        if total < ihl:
            self.stats.malformed += 1
            return None
        return self._tcp(raw, data, off + ihl, total - ihl, 4, data[off + 12 : off + 16],
                         data[off + 16 : off + 20], ttl, ipid)

    def _ipv6(self, raw: RawFrame, data: bytes, off: int) -> Packet | None:
        if len(data) < off + 40:
            self.stats.malformed += 1
            return None
        payload_len = _U16.unpack_from(data, off + 4)[0]
        next_header = data[off + 6]
        hop_limit = data[off + 7]
        src = data[off + 8 : off + 24]
        dst = data[off + 24 : off + 40]
        pos = off + 40
        if payload_len == 0:
            payload_len = len(data) - pos  # jumbogram or offload: trust what was captured
        end = pos + payload_len
        for _ in range(_MAX_EXT_HEADERS + 1):  # the extension headers, then TCP
            if next_header == 6:
                return self._tcp(raw, data, pos, end - pos, 6, src, dst, hop_limit, None)
            if next_header in (0, 43, 60, 135, 139, 140):
                size = (data[pos + 1] + 1) * 8 if len(data) >= pos + 2 else 0
            elif next_header == 51:
                size = (data[pos + 1] + 2) * 4 if len(data) >= pos + 2 else 0
            elif next_header == 44:
                if len(data) < pos + 8:
                    size = 0
                elif _U16.unpack_from(data, pos + 2)[0] != 0:  # offset or more-fragments set
                    self.stats.fragments += 1
                    return None
                else:
                    size = 8
            else:
                self.stats.non_tcp += 1
                return None
            if size == 0 or pos + size > end:
                self.stats.malformed += 1
                return None
            next_header = data[pos]
            pos += size
        self.stats.malformed += 1
        return None

    def _tcp(self, raw: RawFrame, data: bytes, pos: int, seg_len: int, version: int,
             src: bytes, dst: bytes, ttl: int, ipid: int | None) -> Packet | None:
        # Ports, seq, ack, offset, flags and window fit in 16 bytes: enough for snaplen-cut frames.
        if len(data) < pos + 16:
            self.stats.malformed += 1
            return None
        if len(data) < pos + 20:
            data = data[: pos + 20].ljust(pos + 20, b"\0")
        sport, dport, seq, ack, doff, flags, window = _TCP.unpack_from(data, pos)
        hdr = (doff >> 4) * 4
        if hdr < 20 or hdr > seg_len:
            self.stats.malformed += 1
            return None
        self.stats.tcp += 1
        pkt = Packet(raw.frame, raw.ts, version, src, dst, sport, dport, seq, ack, flags,
                     window, seg_len - hdr, ttl, ipid)
        if hdr > 20:
            _read_mptcp(pkt, data[pos + 20 : pos + hdr])
        if flags & RST and pkt.length:
            pkt.payload = data[pos + hdr : pos + hdr + pkt.length]
        return pkt


def _read_mptcp(pkt: Packet, options: bytes) -> None:
    """Note the MPTCP options that explain a reset (RFC 8684 MP_FASTCLOSE, MP_TCPRST)."""
    if b"\x1e" not in options:
        return
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            return
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return
        size = options[i + 1]
        if kind == 30 and i + 2 < len(options):
            subtype = options[i + 2] >> 4
            if subtype == 7:
                pkt.mptcp_fastclose = True
            elif subtype == 8 and i + 3 < len(options):
                pkt.mptcp_reset_reason = options[i + 3]
        i += size
