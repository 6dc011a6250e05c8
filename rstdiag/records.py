"""Records that flow between the pipeline's stages: raw frames, decoded segments."""

from __future__ import annotations

from dataclasses import dataclass

# TCP flag bits as they sit in the header's flags byte.
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20


@dataclass(slots=True)
class RawFrame:
    """One packet record of a capture file, before any decoding."""

    frame: int  # 1-based position among the file's packet records, as tshark numbers frames
    ts: float  # seconds since the epoch
    linktype: int  # LINKTYPE_* of the interface the packet was captured on
    data: bytes  # the captured bytes (may be cut by the snaplen)
    wirelen: int  # the packet's length on the wire


@dataclass(slots=True)
class Packet:
    """A decoded TCP segment: the fields the tracker and classifier need, nothing more."""

    frame: int
    ts: float
    version: int  # 4 or 6
    src: bytes  # packed address (4 or 16 bytes)
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    length: int  # TCP payload length from the IP length fields (not the captured length)
    ttl: int  # TTL or hop limit
    ipid: int | None  # IPv4 identification; None for IPv6
    payload: bytes = b""  # captured payload bytes, kept only for RSTs (diagnostic text)
    mptcp_fastclose: bool = False  # carries an MPTCP MP_FASTCLOSE option
    mptcp_reset_reason: int | None = None  # MPTCP MP_TCPRST reason code, if present


def flag_string(flags: int) -> str:
    """Flags as tcpdump letters: S, F, R, P, . for ACK."""
    out = ""
    for bit, letter in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (URG, "U")):
        if flags & bit:
            out += letter
    if flags & ACK:
        out += "."
    return out or "none"
