"""The classifier: one RstCase in, one Verdict out. Pure: no I/O, no state between calls.

Rules run in order; the first that recognises the case decides it. Each rule reads the
evidence named in ../shared/docs/causes.md and says in one line what it saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from .flows import RstCase, Segment, SideState, addr_text, seq_diff
from .labels import Confidence, Endpoint, Label, Sender, Verdict
from .records import ACK, FIN, RST, SYN, flag_string

HIGH, MEDIUM, LOW = Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW
IDLE_GAP = 30.0  # seconds of silence after which a forgotten connection is the likely story
ACCEPT_BURST_SECONDS = 2.0
ACCEPT_EXPIRY_SECONDS = 120.0
CLIENT_ABORT_SECONDS = 10.0  # a reset 'right after' the handshake
MAX_TEXT = 120

Judgement = tuple[Label, Confidence, str, Sender | None]  # sender None: the RST's side
Rule = Callable[[RstCase], Judgement | None]


# --- what the case shows ---------------------------------------------------------------

def _answered(case: RstCase) -> Segment | None:
    """The peer's last non-RST segment before the RST: what the RST answers."""
    for seg in reversed(case.before):
        if seg.side != case.rst.side and not seg.flags & RST:
            return seg
    return None


def _sender_ttls(case: RstCase) -> set[int]:
    """TTLs of the claimed sender's own (non-RST) packets in this flow, before and after."""
    ttls = set(case.sender.ttls)
    ttls.update(s.ttl for s in case.after if s.side == case.rst.side and not s.flags & RST)
    return ttls


def _kept_talking(case: RstCase) -> Segment | None:
    """A non-RST segment the claimed sender sent after 'its' RST, if any."""
    for seg in case.after:
        if seg.side == case.rst.side and not seg.flags & RST:
            return seg
    return None


def _rel(side: SideState, seq: int) -> int:
    return side.relative(seq)


def _describe(seg: Segment, owner: SideState) -> str:
    what = flag_string(seg.flags)
    size = f" {seg.length} B" if seg.length else ""
    return f"#{seg.frame} {what}{size} seq={_rel(owner, seg.seq)}"


def _role(side: int) -> str:
    return "client" if side == 0 else "server"


def _unacked_by_sender(case: RstCase) -> int:
    """How far the peer's sequence space runs past the sender's last acknowledgement."""
    peer, sender = case.peer, case.sender
    if peer.nxt is None:
        return 0
    if sender.acked is None:
        return max(seq_diff(peer.nxt, peer.base or peer.nxt), 0)
    return max(seq_diff(peer.nxt, sender.acked), 0)


def _keepalive_probes(case: RstCase, side: int) -> list[Segment]:
    """The trailing run of keepalive probes from `side` (seq = snd.una - 1, at most 1 byte)."""
    owner = case.client if side == 0 else case.server
    probes: list[Segment] = []
    for seg in reversed(case.before):
        if seg.flags & RST:
            continue
        if seg.side != side:
            break
        is_probe = (seg.flags & (SYN | FIN)) == 0 and seg.flags & ACK and seg.length <= 1 \
            and owner.nxt is not None and seq_diff(owner.nxt, seg.seq) == 1
        if not is_probe:
            break
        probes.append(seg)
    return probes


# --- the rules, in order ---------------------------------------------------------------

def lone_rst(case: RstCase) -> Judgement | None:
    # The history holds the last few segments only: after a run of RSTs, the sides' counts of
    # other packets still show the flow was seen.
    if case.client.packets or case.server.packets or any(
            not seg.flags & RST for seg in case.before):
        return None
    others = f" (only {len(case.before)} other RSTs)" if case.before else ""
    return (Label.UNKNOWN, LOW,
            f"lone RST: no earlier packet of this flow in the capture{others}; its start was "
            "not captured, or it is backscatter of a spoofed scan: nothing to infer a cause from",
            None)


def injected(case: RstCase) -> Judgement | None:
    rst = case.rst
    ttls = _sender_ttls(case)
    ttl_odd = bool(ttls) and rst.ttl not in ttls
    later = _kept_talking(case)
    if ttl_odd:
        seen = "/".join(str(t) for t in sorted(ttls))
        text = f"TTL {rst.ttl} but the {_role(rst.side)}'s own packets have TTL {seen}"
        if later is not None:
            text += f"; the {_role(rst.side)} kept talking after it (#{later.frame})"
        if rst.window and rst.flags & ACK and rst.window < 64:
            text += f"; odd window {rst.window}"
        return (Label.INJECTED, HIGH if later is not None else MEDIUM,
                f"forged in the {_role(rst.side)}'s name: {text}", Sender.PATH)
    if later is None:
        return None
    prev = _answered(case)
    if not rst.flags & ACK and prev is not None and rst.seq == prev.ack:
        return None  # a stack answering a segment it does not recognise: half-open decides
    return (Label.INJECTED, MEDIUM,
            f"the {_role(rst.side)} kept the connection going after 'its' RST "
            f"({_describe(later, case.sender)}): not the owning stack's teardown "
            "(a device in the path, or an endpoint crafting packets)", None)


def closed_port(case: RstCase) -> Judgement | None:
    rst, prev = case.rst, _answered(case)
    if prev is None or not prev.flags & SYN or prev.flags & ACK or case.sender.packets:
        return None
    if not rst.flags & ACK or rst.ack != (prev.seq + 1 + prev.length) & 0xFFFFFFFF:
        return None
    delay = (rst.ts - prev.ts) * 1000
    text = f"RST+ACK answers SYN #{prev.frame} (ack = its seq + 1) {delay:.1f} ms later; no SYN+ACK"
    retries = sum(1 for s in case.before if s.side != rst.side and s.flags & SYN)
    if retries > 1:
        text += f"; the SYN was tried {retries} times"
    host = case.sender_host_ttls
    if host and rst.ttl not in host:
        seen = "/".join(str(t) for t in sorted(host))
        return (Label.CLOSED_PORT, MEDIUM,
                f"{text}; TTL {rst.ttl} differs from that host's TTL {seen} in other flows: "
                "likely a firewall REJECT in the path", Sender.PATH)
    return (Label.CLOSED_PORT, HIGH, f"{text}: nothing listens on that port", None)


def follow_up(case: RstCase) -> Judgement | None:
    rst = case.rst
    for earlier in case.sender.rsts:
        if earlier.ttl == rst.ttl:
            prev = _answered(case)
            answers = f", answering {_describe(prev, case.peer)}" if prev else ""
            return (Label.FOLLOW_UP, HIGH,
                    f"further RST from the {_role(rst.side)} after its RST #{earlier.frame}"
                    f"{answers}", None)
    return None


def client_abort(case: RstCase) -> Judgement | None:
    rst, me, peer = case.rst, case.sender, case.peer
    if rst.side != 0 or not me.sent_syn or me.data_bytes or peer.data_bytes or me.fin_frame:
        return None
    prev = _answered(case)
    if prev is None:
        return (Label.CLIENT_ABORT, HIGH,
                "the client reset its own SYN before any answer (scan or connect given up)", None)
    if prev.flags & SYN and prev.flags & ACK:
        return (Label.CLIENT_ABORT, HIGH,
                f"the client answered the SYN+ACK #{prev.frame} with a RST instead of "
                "completing the handshake (half-open SYN scan, or a client that gave up)", None)
    if me.acked is None or rst.ts - prev.ts > CLIENT_ABORT_SECONDS:
        return None
    return (Label.CLIENT_ABORT, MEDIUM,
            "the client reset right after the handshake without sending data "
            "(connect scan, port probe, or health check)", None)


def keepalive_timeout(case: RstCase) -> Judgement | None:
    probes = _keepalive_probes(case, case.rst.side)
    if not probes:
        return None
    first = probes[-1]
    span = case.rst.ts - first.ts
    return (Label.KEEPALIVE_TIMEOUT, HIGH if len(probes) >= 2 else MEDIUM,
            f"{len(probes)} keepalive probe(s) from the {_role(case.rst.side)} since "
            f"#{first.frame} ({span:.1f} s) got no answer; then it gave up with a RST", None)


def data_after_close(case: RstCase) -> Judgement | None:
    me, prev = case.sender, _answered(case)
    if me.fin_frame is None or prev is None or _unacked_by_sender(case) <= 0:
        return None
    late = prev.frame > me.fin_frame and (prev.length or prev.flags & FIN)
    what = f"{prev.length} B of data" if prev.length else "a FIN"
    if late:
        text = (f"the {_role(case.rst.side)} had closed (FIN #{me.fin_frame}); "
                f"the peer then sent {what} (#{prev.frame}) and the RST answers it")
        return (Label.DATA_AFTER_CLOSE, HIGH, text, None)
    text = (f"the {_role(case.rst.side)} had closed (FIN #{me.fin_frame}) while the peer's "
            f"data/FIN crossed it unacknowledged; the RST answers #{prev.frame}")
    return (Label.DATA_AFTER_CLOSE, MEDIUM, text, None)


def reset_after_peer_rst(case: RstCase) -> Judgement | None:
    rst, prev = case.rst, _answered(case)
    if rst.flags & ACK or not case.peer.rsts or prev is None:
        return None
    killer = case.peer.rsts[0]
    return (Label.HALF_OPEN, HIGH,
            f"bare RST answering {_describe(prev, case.peer)}: the connection was already reset "
            f"in the peer's name (#{killer.frame}, possibly forged) so the "
            f"{_role(rst.side)} no longer knows it, while the real peer still does", None)


def accept_overflow(case: RstCase) -> Judgement | None:
    rst, me, peer = case.rst, case.server, case.client
    if rst.side != 1 or rst.flags & ACK or not me.sent_synack or me.isn is None:
        return None
    if me.data_bytes or me.fin_frame is not None:
        return None
    if rst.seq != (me.isn + 1) & 0xFFFFFFFF or peer.acked is None:
        return None
    if seq_diff(peer.acked, me.isn) < 1:
        return None
    resent = [s for s in case.before if s.side == 1 and s.flags & SYN and s.flags & ACK]
    # A request expires within about a minute of SYN+ACK retries; later, state was lost.
    if (resent and rst.ts - resent[-1].ts > ACCEPT_EXPIRY_SECONDS) or _keepalive_probes(case, 0):
        return None
    text = ("the client completed the handshake"
            + (f" and sent {peer.data_bytes} B" if peer.data_bytes else "")
            + "; the listener answered with a bare RST at its ISN+1 instead of accepting")
    if len(resent) > 1:
        return (Label.ACCEPT_OVERFLOW, HIGH,
                f"{text}; it had re-sent its SYN+ACK although the client ACKed: "
                "the accept queue was full", None)
    return (Label.ACCEPT_OVERFLOW, MEDIUM, f"{text}: the accept queue was full", None)


def half_open(case: RstCase) -> Judgement | None:
    rst, me, prev = case.rst, case.sender, _answered(case)
    if rst.flags & ACK or prev is None:
        return None
    earlier = [s for s in case.before if s.frame < prev.frame and not s.flags & RST]
    gap = prev.ts - earlier[-1].ts if earlier else 0.0
    probes = _keepalive_probes(case, 1 - rst.side)
    forged = [s for s in me.rsts if s.ttl != rst.ttl]
    if forged:
        why, conf = (f"RSTs were forged in the {_role(rst.side)}'s name (#{forged[0].frame}) and "
                     "its own stack has lost the connection too"), MEDIUM
    elif probes:
        why, conf = f"it answers the peer's keepalive probe #{probes[0].frame}", HIGH
    elif gap >= IDLE_GAP:
        why, conf = f"it answers the first segment after {gap:.0f} s of silence", HIGH
    elif not me.packets:
        why, conf = "the sender shows no trace of this connection in the capture", MEDIUM
    elif rst.seq == prev.ack and me.nxt is not None and prev.flags & ACK \
            and seq_diff(prev.ack, me.nxt) != 0:
        why, conf = (f"the segment acknowledges {_rel(me, prev.ack)}, which the "
                     f"{_role(rst.side)} never sent (its next is {_rel(me, me.nxt)}): it belongs "
                     "to a connection the sender does not have"), MEDIUM
    elif rst.seq == prev.ack:
        why, conf = "a bare RST at the segment's own ack number, as a stack without the " \
            "connection sends", MEDIUM
    else:
        return None
    return (Label.HALF_OPEN, conf,
            f"bare RST from the {_role(rst.side)} answering {_describe(prev, case.peer)}: {why}; "
            "the peer still believes in the connection", None)


def mptcp_fastclose(case: RstCase) -> Judgement | None:
    prev = _answered(case)
    if prev is None or not prev.fastclose:
        return None
    return (Label.UNKNOWN, MEDIUM,
            f"answers the peer's MPTCP MP_FASTCLOSE (#{prev.frame}): a reset the protocol "
            "requires, not a fault of this connection", None)


def unread_data(case: RstCase) -> Judgement | None:
    rst, me, peer = case.rst, case.sender, case.peer
    if not rst.flags & ACK or peer.nxt is None:
        return None
    if seq_diff(rst.ack, peer.nxt) > 0:
        return None
    base = me.acked if me.acked is not None else peer.base
    fresh = seq_diff(rst.ack, base) if base is not None else 0
    if fresh > 0:
        fin = peer.fin_seq is not None and rst.ack == (peer.fin_seq + 1) & 0xFFFFFFFF
        data = fresh - (1 if fin else 0)
        if data > 0:
            return (Label.UNREAD_DATA, HIGH,
                    f"the RST is the first acknowledgement of {data} B from the peer: data "
                    "arrived and the application closed without reading it", None)
        return (Label.UNREAD_DATA, MEDIUM,
                "the peer's FIN arrived and was answered by RST+ACK instead of a FIN: the "
                "application closed with received data still unread", None)
    if rst.side == 1 and peer.last_data_frame is not None and (
            me.last_data_frame is None or me.last_data_frame < peer.last_data_frame):
        return (Label.UNREAD_DATA, LOW,
                f"the request (#{peer.last_data_frame}, acknowledged) got no reply before the "
                "server's RST+ACK: closed with the request unread, or an SO_LINGER {1,0} close "
                "right after reading it (the wire cannot tell them apart)", None)
    return None


def linger_abort(case: RstCase) -> Judgement | None:
    rst, me = case.rst, case.sender
    if not rst.flags & ACK:
        return None
    at_next = me.nxt is None or rst.seq == me.nxt
    fin = f" after its FIN #{me.fin_frame}" if me.fin_frame is not None else " with no FIN"
    return (Label.LINGER_ABORT, MEDIUM if at_next else LOW,
            f"RST+ACK from the {_role(rst.side)}{fin}, at its next sequence number, everything "
            "it received already acknowledged: an abortive close (SO_LINGER {1,0} or abort())",
            None)


def unexplained(case: RstCase) -> Judgement:
    rst, prev = case.rst, _answered(case)
    answers = f" after {_describe(prev, case.peer)}" if prev else ""
    return (Label.UNKNOWN, LOW,
            f"{flag_string(rst.flags)} from the {_role(rst.side)} "
            f"seq={_rel(case.sender, rst.seq)}{answers}; no known pattern fits", None)


RULES: tuple[Rule, ...] = (
    lone_rst,
    injected,
    closed_port,
    follow_up,
    keepalive_timeout,
    client_abort,
    data_after_close,
    reset_after_peer_rst,
    accept_overflow,
    half_open,
    mptcp_fastclose,
    unread_data,
    linger_abort,
)


# --- verdicts ----------------------------------------------------------------------------

def _endpoint(side: SideState) -> Endpoint:
    return Endpoint(addr_text(side.addr), side.port)


def _rst_text(case: RstCase) -> str:
    """The RST's own word: RFC 1122 diagnostic text, or an MPTCP reset reason."""
    notes = []
    if case.payload:
        text = case.payload.decode("ascii", "replace")
        printable = "".join(ch if ch.isprintable() else "." for ch in text)[:MAX_TEXT]
        notes.append(f'RST carries {case.rst.length} B: "{printable}"')
    if case.mptcp_reset_reason is not None:
        notes.append(f"MPTCP MP_TCPRST reason code {case.mptcp_reset_reason}")
    return "; ".join(notes)


def judge(case: RstCase) -> Judgement:
    for rule in RULES:
        found = rule(case)
        if found is not None:
            return found
    return unexplained(case)


def classify(case: RstCase) -> Verdict:
    """The verdict for one RST."""
    label, confidence, evidence, sender = judge(case)
    if case.roles in ("port", "first") and label is not Label.UNKNOWN:
        evidence += " (roles guessed: the handshake is not in the capture)"
    own_word = _rst_text(case)
    if own_word:
        evidence = f"{evidence}; {own_word}"
    if sender is None:
        sender = Sender.CLIENT if case.rst.side == 0 else Sender.SERVER
    src, dst = (case.client, case.server) if case.rst.side == 0 else (case.server, case.client)
    return Verdict(
        frame=case.rst.frame,
        ts=case.rst.ts,
        src=addr_text(src.addr),
        sport=src.port,
        dst=addr_text(dst.addr),
        dport=dst.port,
        flags=flag_string(case.rst.flags),
        client=_endpoint(case.client),
        server=_endpoint(case.server),
        sender=sender,
        label=label,
        confidence=confidence,
        evidence=evidence,
    )


def as_duplicate(original: Verdict, case: RstCase) -> Verdict:
    """A copy of a RST seen again (an 'any' capture, a burst of identical forgeries)."""
    return replace(original, frame=case.rst.frame, ts=case.rst.ts, duplicate_of=original.frame,
                   evidence=f"identical copy of #{original.frame}: {original.evidence}")


def refine_bursts(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """Accept-queue overflows come in bursts: several to one listener at once confirm it."""
    out = list(verdicts)
    by_listener: dict[Endpoint, list[int]] = {}
    for i, v in enumerate(out):
        if v.label is Label.ACCEPT_OVERFLOW and v.duplicate_of is None:
            by_listener.setdefault(v.server, []).append(i)
    for indexes in by_listener.values():
        # In time order, the RSTs within the window of each form one run, found by two
        # pointers that only move forward: linear, where comparing every pair was quadratic in
        # a flood of them.
        indexes.sort(key=lambda i: out[i].ts)
        times = [out[i].ts for i in indexes]
        lo = hi = 0
        for k, i in enumerate(indexes):
            while abs(times[lo] - times[k]) > ACCEPT_BURST_SECONDS:
                lo += 1
            hi = max(hi, k)
            while hi + 1 < len(times) and abs(times[hi + 1] - times[k]) <= ACCEPT_BURST_SECONDS:
                hi += 1
            near = hi - lo + 1
            if near >= 2:
                out[i] = replace(out[i], confidence=HIGH,
                                 evidence=f"{out[i].evidence}; {near} such RSTs from this "
                                 f"listener within {ACCEPT_BURST_SECONDS:.0f} s")
    return out
