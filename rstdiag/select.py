"""Which RSTs a command shows (filters) and how it groups them (`--by`).

Pure logic, no printing: `Selection` holds the filters of `read`, `check`, `explain --flow` and
the `live` view, parsed from their options by the `parse_*` helpers here; `Groups` counts the
RSTs of each server, client, server port or flow by cause, for `--by`.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .labels import Confidence, Label, Sender, Verdict

CONFIDENCE_RANK = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}
GROUP_KEYS = ("server", "client", "port", "flow")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SelectError(ValueError):
    """An option value that cannot be used; the message says why."""


def parse_causes(text: str) -> frozenset[Label]:
    """`injected,half-open`: unknown names raise SelectError naming the valid ones."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = {str(label): label for label in Label}
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        what = f"unknown cause {', '.join(map(repr, unknown))}" if unknown else "no cause given"
        raise SelectError(f"{what}; valid causes: {', '.join(known)}")
    return frozenset(known[name] for name in names)


def parse_senders(text: str) -> frozenset[Sender]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = {str(sender): sender for sender in Sender}
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise SelectError(f"unknown sender {', '.join(map(repr, unknown))}; valid senders: "
                          f"{', '.join(known)}")
    return frozenset(known[name] for name in names)


def parse_ports(values: Iterable[str]) -> frozenset[int]:
    """`--port 443 --port 80,8080`."""
    ports = set()
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit() or int(part) > 65535:
                raise SelectError(f"{part!r} is not a port number (0 to 65535)")
            ports.add(int(part))
    return frozenset(ports)


def parse_hosts(values: Iterable[str]) -> tuple[Network, ...]:
    """`--host 10.0.0.1 --host 2001:db8::/32`: addresses or networks (CIDR)."""
    networks = []
    for value in values:
        for part in value.split(","):
            part = part.strip().strip("[]")
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise SelectError(f"{part!r} is not an IP address or network") from None
    return tuple(networks)


_DURATION = re.compile(r"\+(?P<n>\d+(?:\.\d*)?)(?P<unit>ms|s|m|min|h|d)?")
_UNITS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


@dataclass(slots=True, frozen=True)
class TimeBound:
    """`--since`/`--until`: an instant (seconds since the epoch), or an offset from the first
    packet of each capture (`+90s`)."""

    seconds: float
    relative: bool = False

    def at(self, start: float | None) -> float:
        return self.seconds + (start or 0.0) if self.relative else self.seconds


def parse_time(text: str) -> TimeBound:
    """`2020-08-20T22:55:00` or `2020-08-20 22:55` (UTC unless an offset is given), a date,
    seconds since the epoch (`1597964100.5`), or `+DURATION` from the capture's first packet
    (`+90`, `+1.5s`, `+10m`, `+2h`)."""
    text = text.strip()
    match = _DURATION.fullmatch(text)
    if match:
        return TimeBound(float(match.group("n")) * _UNITS[match.group("unit") or ""], True)
    try:
        return TimeBound(float(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SelectError(f"{text!r}: expected a time such as 2020-08-20T22:55:00 (UTC), "
                          "seconds since the epoch, or +10m from the capture's start") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return TimeBound(moment.timestamp())


@dataclass(slots=True, frozen=True)
class Selection:
    """The RSTs to show: each filter given must hold (none given: every RST)."""

    causes: frozenset[Label] | None = None
    ports: frozenset[int] = frozenset()  # either end of the flow, as tcpdump's `port`
    hosts: tuple[Network, ...] = ()  # either end of the flow, as tcpdump's `host`
    senders: frozenset[Sender] | None = None
    min_confidence: Confidence | None = None
    since: TimeBound | None = None
    until: TimeBound | None = None

    @property
    def everything(self) -> bool:
        return self == Selection()

    def matches(self, v: Verdict, start: float | None = None) -> bool:
        """Does `v` pass? `start`: the first packet time of its capture (for `+DURATION`)."""
        if self.causes is not None and v.label not in self.causes:
            return False
        if self.senders is not None and v.sender not in self.senders:
            return False
        if self.min_confidence is not None and \
                CONFIDENCE_RANK[v.confidence] < CONFIDENCE_RANK[self.min_confidence]:
            return False
        if self.ports and v.client.port not in self.ports and v.server.port not in self.ports:
            return False
        if self.hosts and not (_within(v.client.addr, self.hosts)
                               or _within(v.server.addr, self.hosts)):
            return False
        if self.since is not None and v.ts < self.since.at(start):
            return False
        return self.until is None or v.ts <= self.until.at(start)


def _within(addr: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in net for net in networks)


# --- groups -------------------------------------------------------------------------------

def group_key(v: Verdict, by: str) -> str:
    """The group of `v` for `--by`: server or client address, server port, or the flow."""
    if by == "server":
        return v.server.addr
    if by == "client":
        return v.client.addr
    if by == "port":
        return str(v.server.port)
    return f"{v.client} -> {v.server}"


@dataclass(slots=True)
class Group:
    key: str
    rsts: int = 0  # distinct RSTs
    copies: int = 0  # identical copies of them
    causes: Counter[Label] = field(default_factory=Counter)  # distinct RSTs by cause
    flows: set[tuple[str, int, str, int]] = field(default_factory=set)

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "rsts": self.rsts, "copies": self.copies,
                "flows": len(self.flows),
                "by_cause": {str(label): self.causes[label] for label in Label
                             if self.causes[label]}}


@dataclass(slots=True)
class Groups:
    """RSTs counted per group of `by`: what `--by` prints, biggest first."""

    by: str
    groups: dict[str, Group] = field(default_factory=dict)

    def add(self, v: Verdict) -> None:
        key = group_key(v, self.by)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key)
        if v.duplicate_of is not None:
            group.copies += 1
            return
        group.rsts += 1
        group.causes[v.label] += 1
        group.flows.add((v.client.addr, v.client.port, v.server.addr, v.server.port))

    def ranked(self, top: int | None = None) -> list[Group]:
        order = sorted(self.groups.values(), key=lambda g: (-g.rsts, -g.copies, g.key))
        return order if top is None else order[:top]

    def to_list(self, top: int | None = None) -> list[dict[str, object]]:
        return [g.to_dict() for g in self.ranked(top)]
