"""Write a TCP conversation as a list of lines, get the engine's verdicts.

    c = Conversation()
    c.client("S", seq=1000)
    c.server("RA", seq=0, ack=1001)
    c.verdicts()   # -> [Verdict(label=closed-port, ...)]

The lines become a capture in memory (raw IPv4, nanosecond timestamps, payloads claimed by
the IP length and not captured, as a snaplen cuts them) that the engine reads like any other.
"""

from __future__ import annotations

import io
import socket
import struct

import seeds

import rstdiag
from rstdiag.labels import Verdict
from rstdiag.records import ACK, FIN, PSH, RST, SYN, Packet

FLAGS = {"S": SYN, "A": ACK, "F": FIN, "R": RST, "P": PSH}
LINKTYPE_RAW = 101
# MPTCP MP_FASTCLOSE (RFC 8684): kind 30, length 12, subtype 7, the receiver's key
FASTCLOSE = b"\x1e\x0c\x70\x00" + bytes(8)


class Conversation:
    def __init__(self, client: str = "192.0.2.1", server: str = "198.51.100.7",
                 cport: int = 40000, sport: int = 8080) -> None:
        self.addrs = (socket.inet_aton(client), socket.inet_aton(server))
        self.ports = (cport, sport)
        self.packets: list[Packet] = []
        self.ts = 1000.0
        self.ttl = [64, 64]
        self.ipid = [100, 5000]

    def client(self, flags: str, **kw: int | float) -> Conversation:
        return self._add(0, flags, **kw)

    def server(self, flags: str, **kw: int | float) -> Conversation:
        return self._add(1, flags, **kw)

    def _add(self, side: int, flags: str, seq: int = 0, ack: int = 0, length: int = 0,
             gap: float = 0.001, ttl: int | None = None, ipid: int | None = None,
             window: int = 512, fastclose: bool = False) -> Conversation:
        self.ts += gap
        bits = 0
        for letter in flags:
            bits |= FLAGS[letter]
        if ipid is None:
            self.ipid[side] += 1
            ipid = self.ipid[side]
        pkt = Packet(len(self.packets) + 1, self.ts, 4, self.addrs[side], self.addrs[1 - side],
                     self.ports[side], self.ports[1 - side], seq & 0xFFFFFFFF,
                     ack & 0xFFFFFFFF, bits, window, length,
                     self.ttl[side] if ttl is None else ttl, ipid)
        pkt.mptcp_fastclose = fastclose
        self.packets.append(pkt)
        return self

    def capture(self) -> bytes:
        """The conversation as a classic pcap file."""
        out = bytearray(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, LINKTYPE_RAW))
        for pkt in self.packets:
            options = FASTCLOSE if pkt.mptcp_fastclose else b""
            tcp = seeds.tcp_header(pkt.sport, pkt.dport, pkt.seq, pkt.ack, pkt.flags,
                                   window=pkt.window, options=options)
            ip = seeds.ipv4(pkt.src, pkt.dst, tcp, ttl=pkt.ttl, ipid=pkt.ipid or 0,
                            total=20 + len(tcp) + pkt.length)
            sec = int(pkt.ts)
            nsec = round((pkt.ts - sec) * 1e9)
            out += struct.pack("<IIII", sec, nsec, len(ip), len(ip) + pkt.length) + ip
        return bytes(out)

    def verdicts(self) -> list[Verdict]:
        return list(rstdiag.analyze(io.BytesIO(self.capture())))

    def labels(self) -> list[str]:
        return [str(v.label) for v in self.verdicts()]


def handshake(c: Conversation, cisn: int = 1000, sisn: int = 5000) -> Conversation:
    """SYN, SYN+ACK, ACK: client next = cisn+1, server next = sisn+1."""
    c.client("S", seq=cisn)
    c.server("SA", seq=sisn, ack=cisn + 1)
    c.client("A", seq=cisn + 1, ack=sisn + 1)
    return c
