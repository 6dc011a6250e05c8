"""Packets a notebook already holds (scapy's `sniff()`, `rdpcap()`, crafted lists, or plain
(timestamp, link type, bytes) tuples), analysed as `read` analyses a file of them.

The packets are written into an in-memory pcapng (one interface per link type, nanosecond
timestamps, so nothing is rounded) and that is handed to the engine: the same reader, decoder,
tracker and rules as every other capture. scapy is never imported here unless the caller has
given scapy packets, which means it is loaded already.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from . import pcapng
from .analysis import Analysis, FileReport

# scapy's first layer -> pcap link type, for a scapy packet whose class scapy's own table
# does not list (a subclass, a layer bound elsewhere)
LINKTYPES_BY_LAYER = {
    "Ether": 1,
    "Dot3": 1,
    "Loopback": 0,
    "CookedLinux": 113,
    "CookedLinuxV2": 276,
    "IP": 228,
    "IPv6": 229,
}

PacketLike = Any  # a scapy Packet, or (timestamp, link type, bytes)


class PacketError(ValueError):
    """A packet analyze_packets cannot put in a capture (says which and why)."""


def _linktype_of(pkt: Any, default: int | None) -> int:
    if default is not None:
        return default
    from scapy.config import conf  # loaded already: the caller holds scapy packets

    found = conf.l2types.layer2num.get(type(pkt))
    if found is None:
        found = LINKTYPES_BY_LAYER.get(type(pkt).__name__)
    if found is None:
        raise PacketError(f"no pcap link type for a {type(pkt).__name__} packet: pass "
                          "linktype=N (1 Ethernet, 228 IPv4, 229 IPv6, 113 Linux cooked)")
    return int(found)


def _nanoseconds(ts: float | Decimal | int) -> int:
    """A timestamp in seconds (scapy's EDecimal, a float, an int) as whole nanoseconds."""
    return int(Decimal(ts).scaleb(9).to_integral_value())


def _record(n: int, pkt: PacketLike, linktype: int | None) -> tuple[int, int, bytes, int]:
    """(nanoseconds, link type, bytes, wire length) of the n-th packet (from 1)."""
    if isinstance(pkt, tuple):
        if len(pkt) != 3:
            raise PacketError(f"packet {n}: a tuple must be (timestamp, linktype, bytes)")
        ts, lt, data = pkt
        data = bytes(data)
        return _nanoseconds(ts), int(lt), data, len(data)
    if not hasattr(pkt, "time") or not hasattr(pkt, "build"):
        raise PacketError(f"packet {n}: {type(pkt).__name__} is neither a scapy packet nor "
                          "a (timestamp, linktype, bytes) tuple")
    data = bytes(pkt)
    wirelen = getattr(pkt, "wirelen", None) or len(data)
    return _nanoseconds(pkt.time), _linktype_of(pkt, linktype), data, max(wirelen, len(data))


def pcapng_of(packets: Iterable[PacketLike], linktype: int | None = None) -> bytes:
    """The packets as one pcapng section: an interface per link type, in order of first use;
    packet n of the iterable is frame n of the capture."""
    parts = [pcapng.section_header()]
    interfaces: dict[int, int] = {}
    tsresol = pcapng.option(pcapng.IF_TSRESOL, bytes([pcapng.NANOSECONDS]))
    for n, pkt in enumerate(packets, 1):
        ns, lt, data, wirelen = _record(n, pkt, linktype)
        if lt not in interfaces:
            interfaces[lt] = len(interfaces)
            parts.append(pcapng.interface_description(lt, options=tsresol))
        parts.append(pcapng.enhanced_packet(interfaces[lt], ns, data, wirelen))
    if not interfaces:  # an empty list is an empty capture, still with its interface
        parts.append(pcapng.interface_description(linktype if linktype is not None else 1,
                                                  options=tsresol))
    return b"".join(parts)


def analyze_packets(packets: Iterable[PacketLike], *, linktype: int | None = None,
                    max_flows: int | None = None, name: str = "<packets>") -> FileReport:
    """Label every RST among `packets`: the report `rstdiag read` gives for a file of them
    (a verdict's `frame` is its packet's position in the list, from 1).

    `packets`: scapy packets (their bytes, `time`, and link type from their first layer), or
    (timestamp, linktype, bytes) tuples; `linktype` overrides the link type of scapy packets::

        from scapy.all import rdpcap
        from rstdiag import analyze_packets

        report = analyze_packets(rdpcap("capture.pcap"))
        for v in report.verdicts:
            print(v.frame, v.label, v.evidence)
    """
    capture = io.BytesIO(pcapng_of(packets, linktype))
    return Analysis(name, max_flows).run_stream(capture)
