"""The RST cause taxonomy (../shared/docs/causes.md): labels, hints, and the verdict record."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum


class Label(StrEnum):
    CLOSED_PORT = "closed-port"
    ACCEPT_OVERFLOW = "accept-overflow"
    LINGER_ABORT = "linger-abort"
    UNREAD_DATA = "unread-data"
    DATA_AFTER_CLOSE = "data-after-close"
    HALF_OPEN = "half-open"
    KEEPALIVE_TIMEOUT = "keepalive-timeout"
    INJECTED = "injected"
    CLIENT_ABORT = "client-abort"
    FOLLOW_UP = "follow-up"
    UNKNOWN = "unknown"


class Sender(StrEnum):
    CLIENT = "client"
    SERVER = "server"
    PATH = "path"
    UNKNOWN = "unknown"


class Effect(StrEnum):
    """Whether the receiver could accept the RST (RFC 793, RFC 5961), as the packets show."""

    ACCEPTED = "accepted"  # exactly the next expected sequence number; the receiver went silent
    IGNORED = "ignored"  # outside the window: the receiver kept sending or retransmitting
    CHALLENGED = "challenged"  # in the window but not exact: answered by a challenge ACK
    UNKNOWN = "unknown"  # the capture ends before it shows


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


HINTS: dict[Label, str] = {
    Label.CLOSED_PORT: "is the service running and bound to that address/port? "
    "a firewall REJECT looks the same but differs in TTL",
    Label.ACCEPT_OVERFLOW: "raise the listen() backlog and net.core.somaxconn, accept faster; "
    "nstat TcpExtListenOverflows counts them",
    Label.LINGER_ABORT: "intended by the application? a client library that 'closes fast' "
    "this way makes the peer see ECONNRESET",
    Label.UNREAD_DATA: "the application closed without reading the whole request; "
    "drain or shut down properly",
    Label.DATA_AFTER_CLOSE: "the peer kept writing after the close: check who closes first, "
    "or keep-alive reuse of a connection the other side already closed",
    Label.HALF_OPEN: "look for a restart of the RST sender or a middlebox idle timeout "
    "shorter than the application's keepalive",
    Label.KEEPALIVE_TIMEOUT: "the peer or the path died; tune tcp_keepalive_* to detect it sooner",
    Label.INJECTED: "find the device: traceroute towards the claimed sender, "
    "compare the TTL with the hop count",
    Label.CLIENT_ABORT: "scans look like this; so do clients that time out too early",
    Label.FOLLOW_UP: "look at the first RST of the flow",
    Label.UNKNOWN: "the capture does not show enough; capture closer to the endpoints "
    "or from the start of the connection",
}


@dataclass(slots=True, frozen=True)
class Endpoint:
    addr: str
    port: int

    def __str__(self) -> str:
        return f"[{self.addr}]:{self.port}" if ":" in self.addr else f"{self.addr}:{self.port}"


@dataclass(slots=True, frozen=True)
class Verdict:
    """One RST explained. `src`/`dst` are as on the wire; `sender` is who really sent it."""

    frame: int
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: str
    client: Endpoint
    server: Endpoint
    sender: Sender
    label: Label
    confidence: Confidence
    evidence: str
    file: str = ""
    duplicate_of: int | None = None
    kernel_reason: str | None = None
    # the other labels the same wire evidence allows; a known kernel reason settles them
    alternatives: tuple[Label, ...] = ()
    effect: Effect = Effect.UNKNOWN
    # the hint of a story that says more than the label (a closed listener), from the engine
    story_hint: str | None = None
    # the flow's Community ID as the engine computed it; "" for a verdict made by hand, whose
    # ID is then computed from its endpoints
    community_id: str = ""
    # the engine's spelling of `to_json()` (see keep_json); not an init field, so that a copy
    # made with dataclasses.replace (another label, file or kernel reason) goes without it
    engine_json: str | None = field(default=None, init=False, repr=False, compare=False)

    def keep_json(self, line: str) -> None:
        """Keep the engine's JSON line of this verdict, which `to_json` then returns."""
        object.__setattr__(self, "engine_json", line)

    @property
    def hint(self) -> str:
        return self.story_hint or HINTS[self.label]

    @property
    def open_alternatives(self) -> tuple[Label, ...]:
        """The alternatives still open: none once the kernel named its reason."""
        return () if self.kernel_reason is not None else self.alternatives

    def is_any_of(self, labels: frozenset[Label] | set[Label]) -> bool:
        """Whether the label, or one of the alternatives still open, is among `labels`."""
        return self.label in labels or any(a in labels for a in self.open_alternatives)

    def _computed_community_id(self) -> str:
        """The flow's Community ID for a verdict made by hand (the engine's carry theirs):
        its module imported only then, as `read` never needs it."""
        from .communityid import community_id

        return community_id(self.src, self.sport, self.dst, self.dport)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "file": self.file,
            "frame": self.frame,
            "ts": round(self.ts, 6),
            "src": self.src,
            "sport": self.sport,
            "dst": self.dst,
            "dport": self.dport,
            "flags": self.flags,
            "client": str(self.client),
            "server": str(self.server),
            "sender": str(self.sender),
            "label": str(self.label),
            "confidence": str(self.confidence),
            "evidence": self.evidence,
            "hint": self.hint,
            "alternatives": [str(a) for a in self.open_alternatives],
            "effect": str(self.effect),
            "community_id": self.community_id or self._computed_community_id(),
        }
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of
        if self.kernel_reason is not None:
            out["kernel_reason"] = self.kernel_reason
        return out

    def to_json(self) -> str:
        """`json.dumps(self.to_dict())`: the engine wrote it already for the verdicts of
        `read --format json|jsonl` (src/jsonline.rs), to the character."""
        if self.engine_json is not None:
            return self.engine_json
        return json.dumps(self.to_dict())

    def to_row(self) -> dict[str, object]:
        """`to_dict` for one CSV row: the alternatives as one cell, space-separated."""
        out = self.to_dict()
        out["alternatives"] = " ".join(str(a) for a in self.open_alternatives)
        return out
