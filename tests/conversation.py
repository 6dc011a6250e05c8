"""Write a TCP conversation as a list of lines, get the verdicts: no packets, no bytes.

    c = Conversation()
    c.client("S", seq=1000)
    c.server("RA", seq=0, ack=1001)
    c.verdicts()   # -> [Verdict(label=closed-port, ...)]
"""

from __future__ import annotations

import socket

from rstdiag.classify import as_duplicate, classify, refine_bursts
from rstdiag.flows import FlowTracker, RstCase
from rstdiag.labels import Verdict
from rstdiag.records import ACK, FIN, PSH, RST, SYN, Packet

FLAGS = {"S": SYN, "A": ACK, "F": FIN, "R": RST, "P": PSH}


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

    def cases(self) -> list[RstCase]:
        tracker = FlowTracker()
        out: list[RstCase] = []
        for pkt in self.packets:
            out.extend(tracker.feed(pkt))
        out.extend(tracker.finish())
        return out

    def verdicts(self) -> list[Verdict]:
        found: dict[int, Verdict] = {}
        for case in self.cases():
            if case.duplicate_of is not None and case.duplicate_of in found:
                found[case.rst.frame] = as_duplicate(found[case.duplicate_of], case)
            else:
                found[case.rst.frame] = classify(case)
        return refine_bursts(sorted(found.values(), key=lambda v: v.frame))

    def labels(self) -> list[str]:
        return [str(v.label) for v in self.verdicts()]


def handshake(c: Conversation, cisn: int = 1000, sisn: int = 5000) -> Conversation:
    """SYN, SYN+ACK, ACK: client next = cisn+1, server next = sisn+1."""
    c.client("S", seq=cisn)
    c.server("SA", seq=sisn, ack=cisn + 1)
    c.client("A", seq=cisn + 1, ack=sisn + 1)
    return c
