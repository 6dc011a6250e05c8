"""What the kernel's reason for a RST says of its label: the mapping of
../shared/docs/causes.md (`confirmed`), the agreement counts (`KernelStats`), and the reasons a
capture saved by `rstdiag live -w --kernel-reasons` keeps (`SavedReasons`).

Pure: no tracing here (rstdiag.kernel_reasons reads the tracepoint), so that `read` of a
saved capture needs neither tracefs nor the tracer's imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .labels import Confidence, Label, Verdict

L = Label
# The labels each kernel reason (enum sk_rst_reason) names, the first preferred: the mapping of
# ../shared/docs/causes.md, observed on Linux 6.18 with the real-socket scenarios of
# tests/scenarios.py. A segment that finds no connection gets NO_SOCKET when no socket owns the
# port, TCP_FLAGS (state TCP_LISTEN) when it reaches a listener instead: which of those labels
# it was, only the flow's history says, so the wire's label stands when the reason names it.
# SO_LINGER {1,0} gives TCP_STATE on either side (a client's during the handshake is a
# client-abort).
SELECTS: dict[str, tuple[Label, ...]] = {
    "TCP_ABORT_ON_CLOSE": (L.UNREAD_DATA,),
    "TCP_DISCONNECT_WITH_DATA": (L.UNREAD_DATA,),
    "TCP_STATE": (L.LINGER_ABORT, L.CLIENT_ABORT),
    "TCP_ABORT_ON_LINGER": (L.LINGER_ABORT,),
    "TCP_ABORT_ON_DATA": (L.DATA_AFTER_CLOSE,),
    "TCP_TIMEWAIT_SOCKET": (L.DATA_AFTER_CLOSE,),
    "TCP_KEEPALIVE_TIMEOUT": (L.KEEPALIVE_TIMEOUT,),
    "INVALID_SYN": (L.ACCEPT_OVERFLOW,),
    "TCP_FLAGS": (L.ACCEPT_OVERFLOW, L.HALF_OPEN, L.FOLLOW_UP, L.DATA_AFTER_CLOSE,
                  L.CLIENT_ABORT),
    "NO_SOCKET": (L.CLOSED_PORT, L.HALF_OPEN, L.DATA_AFTER_CLOSE, L.FOLLOW_UP, L.CLIENT_ABORT),
}
# Labels the wire cannot tell apart (causes.md, "What the wire cannot separate"): the same
# packets, RST+ACK at the sender's next sequence number with everything received acknowledged.
WIRE_ALIKE: tuple[frozenset[Label], ...] = (frozenset({L.LINGER_ABORT, L.UNREAD_DATA}),)


def wire_allows(label: Label) -> frozenset[Label]:
    """The labels the wire's evidence for `label` also allows."""
    for alike in WIRE_ALIKE:
        if label in alike:
            return alike
    return frozenset({label})


def selected(reason: str, verdict: Verdict) -> Label | None:
    """The label the kernel's reason selects among those the wire allows for `verdict`;
    None when they exclude each other."""
    names = SELECTS.get(reason, ())
    if verdict.label in names:
        return verdict.label
    allowed = wire_allows(verdict.label)
    return next((label for label in names if label in allowed), None)


def agrees(reason: str, verdict: Verdict) -> bool | None:
    """Whether the kernel's reason leaves the wire's verdict possible; None when the reason
    says nothing about the labels (NOT_SPECIFIED, MPTCP_*, reasons newer than this map)."""
    if reason not in SELECTS:
        return None
    return selected(reason, verdict) is not None


def confirmed(verdict: Verdict, reason: str, text: str) -> tuple[Verdict, bool | None]:
    """`verdict` with the kernel's reason (`text`: "REASON in STATE") applied, and whether
    they agree. Agreeing, the reason's label at high confidence, the evidence naming the
    reason; disagreeing, the wire's label with the disagreement in its evidence; a reason
    that names no label only shown beside the verdict."""
    if reason not in SELECTS:
        return replace(verdict, kernel_reason=text), None
    label = selected(reason, verdict)
    if label is None:
        return replace(verdict, kernel_reason=text,
                       evidence=f"{verdict.evidence}; but the kernel's reason {text} "
                                f"excludes {verdict.label}"), False
    if label is verdict.label:
        evidence = f"{verdict.evidence}; the kernel's reason {text} confirms it"
    else:
        evidence = (f"the kernel's reason {text} says {label}, which the wire cannot tell "
                    f"from {verdict.label}: {verdict.evidence}")
    return replace(verdict, label=label, confidence=Confidence.HIGH, evidence=evidence,
                   kernel_reason=text), True


MAX_DISAGREEMENTS = 20  # the disagreements listed (all are counted)


@dataclass(slots=True)
class KernelStats:
    """How the kernel's reasons compared with the wire's verdicts: `live --kernel-reasons`
    as it runs, `read` of the pcapng that `live -w` saved them in."""

    agree: int = 0
    disagree: int = 0
    no_opinion: int = 0  # reasons the compatibility map says nothing about
    disagreements: list[str] = field(default_factory=list)  # "frame N: label vs REASON"

    def count(self, frame: int, verdict: Verdict, agreement: bool | None, text: str) -> None:
        """One RST's reason (its copies are not counted): `verdict` as `confirmed` made it."""
        if agreement is None:
            self.no_opinion += 1
        elif agreement:
            self.agree += 1
        else:
            self.disagree += 1
            if len(self.disagreements) < MAX_DISAGREEMENTS:
                self.disagreements.append(
                    f"frame {frame}: the wire says {verdict.label}, the kernel's reason "
                    f"{text} excludes it")

    def to_dict(self, without_reason: int) -> dict[str, object]:
        return {"agree": self.agree, "disagree": self.disagree, "no_opinion": self.no_opinion,
                "without_reason": without_reason, "disagreements": self.disagreements}


class SavedReasons:
    """The kernel's reasons that `rstdiag live -w FILE --kernel-reasons` saved in FILE's
    packet comments, applied to the verdicts of `read FILE` as live applied them
    (`confirmed`), and counted as live counted them. The engine reads the comments and hands
    over (frame, "REASON in STATE") for the verdicts of each batch ("" for a RST saved with
    none matched): per-verdict work, none per packet, none at all for other captures."""

    def __init__(self) -> None:
        self.stats = KernelStats()
        self.without_reason = 0
        self.saved = False  # the capture keeps reasons: its report says how they compared

    def apply(self, verdicts: list[Verdict], reasons: list[tuple[int, str]]) -> list[Verdict]:
        if not reasons:
            return verdicts
        self.saved = True
        by_frame = dict(reasons)
        out = []
        for verdict in verdicts:
            text = by_frame.get(verdict.frame)
            if text is None:
                out.append(verdict)
                continue
            if not text:
                self.without_reason += 1
                out.append(verdict)
                continue
            decided, agreement = confirmed(verdict, text.split(" ", 1)[0], text)
            if verdict.duplicate_of is None:
                self.stats.count(verdict.frame, decided, agreement, text)
            out.append(decided)
        return out

    def summary(self) -> dict[str, object] | None:
        """The counts for a report's file entry; None when the capture kept no reasons."""
        return self.stats.to_dict(self.without_reason) if self.saved else None


def agreement_line(agree: int, disagree: int, no_opinion: int) -> str:
    """"kernel reasons: 3 agree, 0 disagree" (and those that say nothing), for the tables
    of `live` and `read`."""
    text = f"kernel reasons: {agree} agree, {disagree} disagree"
    if no_opinion:
        text += f", {no_opinion} say nothing about the cause"
    return text
