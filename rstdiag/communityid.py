"""Community ID flow hashes (version 1, https://github.com/corelight/community-id-spec), the
key Zeek, Suricata, Arkime, Elastic and Wireshark give a flow: a verdict that carries it joins
their logs without matching 4-tuples and times by hand.

The hash is over the flow, not the packet: both directions of a 4-tuple give the same ID.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct

TCP = 6
VERSION_PREFIX = "1:"


def community_id(src: str, sport: int, dst: str, dport: int, *, proto: int = TCP,
                 seed: int = 0) -> str:
    """The version 1 Community ID of the flow between two (address text, port) endpoints, for
    a protocol with ports (TCP, UDP, SCTP): "1:" and the base64 of a SHA-1 over the seed, the
    endpoints ordered lower first, the protocol and a pad byte. "" when an endpoint is not an
    IP address (a verdict made by hand, not by the engine)."""
    try:
        a = (ipaddress.ip_address(src).packed, sport)
        b = (ipaddress.ip_address(dst).packed, dport)
    except ValueError:
        return ""
    (addr1, port1), (addr2, port2) = (a, b) if a <= b else (b, a)
    digest = hashlib.sha1(
        struct.pack("!H", seed) + addr1 + addr2 + struct.pack("!BxHH", proto, port1, port2))
    return VERSION_PREFIX + base64.b64encode(digest.digest()).decode("ascii")
