"""Decode a chunk of pcap records at once with numpy: the fields that pick packets out.

Only the plain case is decoded here: Ethernet (or Linux cooked, or raw IP) carrying IPv4 or
IPv6 straight to a whole TCP header. Every other record (VLAN tags, fragments, IPv6 extension
headers, non-IP, anything short or odd) is marked `plain=False` and left to rstdiag.decode,
which alone decides what it is. For plain records the values match what rstdiag.decode would
give (tests/test_vecdecode.py checks that record by record).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .decode import (
    _RAW_ALIASES,
    ETH_IPV4,
    ETH_IPV6,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
)
from .records import RST, Packet

# link type -> (offset of the EtherType or -1 for none, offset of the IP header)
_LINK_LAYOUT = {
    LINKTYPE_ETHERNET: (12, 14),
    LINKTYPE_LINUX_SLL: (14, 16),
    LINKTYPE_LINUX_SLL2: (0, 20),
    LINKTYPE_IPV4: (-1, 0),
    LINKTYPE_IPV6: (-1, 0),
    **{raw: (-1, 0) for raw in _RAW_ALIASES},
}


def bulk_linktype(linktype: int) -> bool:
    """Whether records of this link type can be plain (others all go to rstdiag.decode)."""
    return linktype in _LINK_LAYOUT


@dataclass(slots=True)
class Rows:
    """One chunk's records, decoded. Arrays have one entry per record; the fields after `ts`
    mean something only where `plain` is set."""

    plain: np.ndarray  # bool: a TCP segment decoded here
    ts: np.ndarray  # float64 seconds, as rstdiag.pcapfile computes them
    flags: np.ndarray  # uint8 TCP flags
    ttl: np.ndarray  # uint8
    version: np.ndarray  # uint8: 4 or 6
    src_hi: np.ndarray  # uint64: upper 64 bits of an IPv6 address, 0 for IPv4
    src_lo: np.ndarray  # uint64: lower 64 bits, or the IPv4 address
    sport: np.ndarray  # uint16
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    dport: np.ndarray
    tcp_at: np.ndarray  # int64 offset of the TCP header in the record's data
    tcp_len: np.ndarray  # int64 TCP header length
    payload: np.ndarray  # int64 TCP payload length, from the IP length fields
    caplen: np.ndarray  # int64 captured length
    ip_at: int = 0  # offset of the IP header in the record's data
    header: int = 16  # bytes of record header before the data (pcap 16, pcapng EPB 28)

    def rst(self) -> np.ndarray:
        return self.plain & ((self.flags & RST) != 0)


class _Gather:
    """Big-endian fields at per-record offsets into one chunk's bytes."""

    def __init__(self, data: bytearray, size: int, starts: np.ndarray) -> None:
        self.bytes = np.frombuffer(data, dtype=np.uint8, count=size)
        self.starts = starts

    def u8(self, at: np.ndarray | int) -> np.ndarray:
        # mode="clip": a short record's fields may point past the chunk; they are masked out
        return self.bytes.take(self.starts + at, mode="clip")

    def uint(self, at: np.ndarray | int, width: int) -> np.ndarray:
        dtype = np.uint64 if width > 4 else np.uint32
        out = np.zeros(len(self.starts), dtype=dtype)
        for i in range(width):
            out = (out << dtype(8)) | self.u8(at + i).astype(dtype)
        return out


class _Window:
    """The first `width` bytes of each record as one (records, width) matrix: a single gather
    from the chunk, then fields by column (far cheaper than a gather per field)."""

    def __init__(self, data: bytearray, size: int, starts: np.ndarray, width: int) -> None:
        # The window of a short record runs past its end (past the chunk's, for the last one:
        # the walker leaves pcapwalk.TAIL bytes there); fields beyond caplen are masked out.
        assert size + width <= len(data), "a chunk needs pcapwalk.TAIL free bytes after it"
        chunk = np.frombuffer(data, dtype=np.uint8, count=size + width)
        self.m = sliding_window_view(chunk, width)[starts]
        self.rows = np.arange(len(starts))[:, None]

    def u8(self, at: int) -> np.ndarray:
        return self.m[:, at]

    def uint(self, at: int, width: int, order: str = ">") -> np.ndarray:
        """Unsigned `width`-byte fields at column `at`, in byte order `order`."""
        raw = np.ascontiguousarray(self.m[:, at:at + width])
        return raw.view(f"{order}u{width}").ravel().astype(f"u{width}")

    def columns(self, at: np.ndarray, width: int) -> np.ndarray:
        """`width` bytes from a column of each record's own: a (records, width) matrix."""
        return self.m[self.rows, at[:, None] + np.arange(width)]


_HEADER = 16  # pcap record header: seconds, fraction, caplen, wirelen
_WINDOW = 60 + 20  # the longest IPv4 header, then the fixed TCP header


def decode_chunk(data: bytearray, size: int, offsets: np.ndarray, *, little_endian: bool,
                 scale: float, linktype: int) -> Rows:
    """The records of a classic pcap chunk (`offsets`: their record headers)."""
    head = _Window(data, size, offsets, _HEADER)
    order = "<" if little_endian else ">"
    sec, frac = head.uint(0, 4, order), head.uint(4, 4, order)
    caplen = head.uint(8, 4, order).astype(np.int64)
    ts = sec.astype(np.float64) + frac.astype(np.float64) * scale
    return _decode_packets(data, size, offsets, _HEADER, caplen, ts, linktype)


_EPB_HEADER = 28  # block type, length, interface, timestamp high and low, caplen, wirelen
_EXACT_INTEGERS = 1 << 53  # float64 holds every integer below this


def decode_epb_chunk(data: bytearray, size: int, offsets: np.ndarray, *, little_endian: bool,
                     units: int, ts_offset: int, linktype: int) -> Rows:
    """The packets of a pcapng chunk (`offsets`: their Enhanced Packet Blocks), all on
    interfaces of `linktype` with `units` timestamp ticks a second and `ts_offset` seconds."""
    head = _Window(data, size, offsets, _EPB_HEADER)
    order = "<" if little_endian else ">"
    ticks = (head.uint(12, 4, order).astype(np.uint64) << np.uint64(32)) | \
        head.uint(16, 4, order).astype(np.uint64)
    caplen = head.uint(20, 4, order).astype(np.int64)
    if len(ticks) and int(ticks.max()) >= _EXACT_INTEGERS or abs(ts_offset) >= _EXACT_INTEGERS:
        # as rstdiag.pcapfile divides: Python's int division, rounded once
        ts = np.array([t / units + ts_offset for t in ticks.tolist()], dtype=np.float64)
    else:  # both exact as floats: one IEEE division, the same rounding
        ts = ticks.astype(np.float64) / units + ts_offset
    return _decode_packets(data, size, offsets, _EPB_HEADER, caplen, ts, linktype)


def _decode_packets(data: bytearray, size: int, offsets: np.ndarray, header: int,
                    caplen: np.ndarray, ts: np.ndarray, linktype: int) -> Rows:
    type_at, l3 = _LINK_LAYOUT.get(linktype, (-1, -1))
    n = len(offsets)
    if l3 < 0:
        return _empty(n, ts, header)
    g = _Window(data, size, offsets + header, l3 + _WINDOW)
    plain = caplen >= l3 + 20
    if type_at >= 0:
        ethertype = g.uint(type_at, 2)
        plain &= (ethertype == ETH_IPV4) | (ethertype == ETH_IPV6)
    first = g.u8(l3)
    version = first >> 4
    v4 = version == 4
    v6 = version == 6

    ihl = (first & 0x0F).astype(np.int64) * 4
    total = g.uint(l3 + 2, 2).astype(np.int64)
    frag = g.uint(l3 + 6, 2)
    ok4 = (v4 & (ihl >= 20) & (g.u8(l3 + 9) == 6) & ((frag & 0x3FFF) == 0) & (total != 0)
           & (total >= ihl))
    payload6 = g.uint(l3 + 4, 2).astype(np.int64)
    ok6 = v6 & (caplen >= l3 + 40) & (g.u8(l3 + 6) == 6) & (payload6 != 0)
    plain &= ok4 | ok6

    # an IHL below 5 is not plain anyway: clipped, its TCP header stays inside the window
    tcp_at = np.where(v4, l3 + np.maximum(ihl, 20), l3 + 40)
    seg_len = np.where(v4, total - ihl, payload6)
    tcp = g.columns(tcp_at, 20)  # each record's fixed TCP header
    hdr = (tcp[:, 12] >> 4).astype(np.int64) * 4
    plain &= (caplen >= tcp_at + 20) & (hdr >= 20) & (hdr <= seg_len)

    ttl = np.where(v4, g.u8(l3 + 8), g.u8(l3 + 7))
    src_hi = np.where(v6, g.uint(l3 + 8, 8), np.uint64(0))
    src_lo = np.where(v6, g.uint(l3 + 16, 8), g.uint(l3 + 12, 4).astype(np.uint64))
    dst_hi = np.where(v6, g.uint(l3 + 24, 8), np.uint64(0))
    dst_lo = np.where(v6, g.uint(l3 + 32, 8), g.uint(l3 + 16, 4).astype(np.uint64))
    ports = np.ascontiguousarray(tcp[:, 0:4]).view(">u2").astype(np.uint16)
    return Rows(plain=plain, ts=ts, flags=tcp[:, 13].copy(), ttl=ttl,
                version=version.astype(np.uint8), src_hi=src_hi, src_lo=src_lo,
                sport=ports[:, 0].copy(), dst_hi=dst_hi, dst_lo=dst_lo,
                dport=ports[:, 1].copy(), tcp_at=tcp_at, tcp_len=hdr,
                payload=seg_len - hdr, caplen=caplen, ip_at=l3, header=header)


def _empty(n: int, ts: np.ndarray, header: int) -> Rows:
    zeros8, zeros64 = np.zeros(n, np.uint8), np.zeros(n, np.uint64)
    zeros16, ints = np.zeros(n, np.uint16), np.zeros(n, np.int64)
    return Rows(np.zeros(n, bool), ts, zeros8, zeros8, zeros8, zeros64, zeros64, zeros16,
                zeros64, zeros64, zeros16, ints, ints, ints, ints, header=header)


MPTCP_OPTION = 30  # the one TCP option rstdiag.decode reads


def plain_packets(data: bytearray, size: int, offsets: np.ndarray, rows: Rows,
                  index: np.ndarray, first_frame: int) -> list[Packet | None]:
    """Packets of the plain rows `index`, as rstdiag.decode would make them; None where only
    it can (an MPTCP option byte among the options, a RST with payload)."""
    g = _Gather(data, size, offsets[index] + rows.header)
    tcp_at = rows.tcp_at[index]
    seq, ack = g.uint(tcp_at + 4, 4), g.uint(tcp_at + 8, 4)
    window = g.uint(tcp_at + 14, 2)
    version = rows.version[index]
    ipid = g.uint(rows.ip_at + 4, 2)
    flags, payload = rows.flags[index], rows.payload[index]
    needs_decoder = ((flags & RST) != 0) & (payload > 0)
    options = np.minimum(rows.tcp_len[index] - 20, rows.caplen[index] - tcp_at - 20)
    for k in range(int(options.max(initial=0))):
        needs_decoder |= (k < options) & (g.u8(tcp_at + 20 + k) == MPTCP_OPTION)
    out: list[Packet | None] = []
    for (i, ts, ver, shi, slo, sport, dhi, dlo, dport, sq, ak, fl, win, length, ttl, ident,
         odd) in zip(index.tolist(), rows.ts[index].tolist(), version.tolist(),
                     rows.src_hi[index].tolist(), rows.src_lo[index].tolist(),
                     rows.sport[index].tolist(), rows.dst_hi[index].tolist(),
                     rows.dst_lo[index].tolist(), rows.dport[index].tolist(), seq.tolist(),
                     ack.tolist(), flags.tolist(), window.tolist(), payload.tolist(),
                     rows.ttl[index].tolist(), ipid.tolist(), needs_decoder.tolist(),
                     strict=True):
        if odd:
            out.append(None)
        elif ver == 4:
            out.append(Packet(first_frame + i, ts, 4, slo.to_bytes(4, "big"),
                              dlo.to_bytes(4, "big"), sport, dport, sq, ak, fl, win, length,
                              ttl, ident))
        else:
            out.append(Packet(first_frame + i, ts, 6,
                              shi.to_bytes(8, "big") + slo.to_bytes(8, "big"),
                              dhi.to_bytes(8, "big") + dlo.to_bytes(8, "big"), sport, dport,
                              sq, ak, fl, win, length, ttl, None))
    return out


def canonical_keys(rows: Rows) -> tuple[np.ndarray, ...]:
    """The flow key of every record, the same for both directions: (version, a_hi, a_lo,
    a_port, b_hi, b_lo, b_port) with endpoint a the smaller."""
    src_first = (rows.src_hi < rows.dst_hi) | (
        (rows.src_hi == rows.dst_hi) & ((rows.src_lo < rows.dst_lo) | (
            (rows.src_lo == rows.dst_lo) & (rows.sport <= rows.dport))))
    a_hi = np.where(src_first, rows.src_hi, rows.dst_hi)
    a_lo = np.where(src_first, rows.src_lo, rows.dst_lo)
    a_port = np.where(src_first, rows.sport, rows.dport)
    b_hi = np.where(src_first, rows.dst_hi, rows.src_hi)
    b_lo = np.where(src_first, rows.dst_lo, rows.src_lo)
    b_port = np.where(src_first, rows.dport, rows.sport)
    return rows.version, a_hi, a_lo, a_port, b_hi, b_lo, b_port


def packet_key(version: int, src: bytes, sport: int, dst: bytes, dport: int
               ) -> tuple[int, int, int, int, int, int, int]:
    """canonical_keys for one packet decoded by rstdiag.decode."""
    a = (*_split(src), sport)
    b = (*_split(dst), dport)
    if b < a:
        a, b = b, a
    return (version, *a, *b)


def _split(addr: bytes) -> tuple[int, int]:
    if len(addr) == 16:
        return int.from_bytes(addr[:8], "big"), int.from_bytes(addr[8:], "big")
    return 0, int.from_bytes(addr, "big")
