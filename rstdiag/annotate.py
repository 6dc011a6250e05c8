"""`rstdiag annotate`: the capture written back as pcapng, each RST with a packet comment that
explains it, for Wireshark (packet details, Expert Info, `frame.comment contains "half-open"`).

Every packet keeps its bytes, wire length, timestamp, interface and link type. A pcapng input
keeps its sections, interfaces, every other block and the comments it had: blocks are copied
byte for byte, and a RST's packet block gets one more option. A classic pcap becomes one
section with one interface (its link type and snapshot length, nanosecond resolution when the
pcap had it), each record an Enhanced Packet Block with the same timestamp.

Python rather than the engine: the work per packet is a header read and a slice written (the
blocks between RSTs of a pcapng are copied in runs, unparsed), so it runs at disk speed on big
files; see the README for the figures.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from . import pcapng
from .labels import Sender, Verdict
from .textsafe import visible

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}
PCAP_HEADER = 24
PCAP_RECORD = 16
MAX_CAPLEN = 262_144  # the engine's reader stops at a larger record, so annotate does too
FLUSH = 4 << 20  # bytes of new blocks gathered before a write
OPTIONS_AT = 28  # a packet block's options follow type, length, 20 bytes of header and data

SENDERS = {Sender.CLIENT: "the client", Sender.SERVER: "the server",
           Sender.PATH: "a device in the path", Sender.UNKNOWN: "an unknown sender"}


def comment_text(verdict: Verdict) -> str:
    """The packet comment of a RST: cause, confidence, sender, evidence, hint and the
    kernel's reason where known, on one line (Wireshark's packet list and Expert Info show
    one line)."""
    parts = [f"rstdiag: {verdict.label} ({verdict.confidence} confidence), sent by "
             f"{SENDERS[verdict.sender]}",
             f"evidence: {visible(verdict.evidence)}",
             f"hint: {verdict.hint}"]
    if verdict.kernel_reason:
        parts.append(f"kernel reason: {visible(verdict.kernel_reason)}")
    return " | ".join(parts)


def comments_of(verdicts: Iterable[Verdict]) -> dict[int, str]:
    return {v.frame: comment_text(v) for v in verdicts}


@dataclass(slots=True)
class Annotated:
    """What annotate wrote: frames copied, comments added, and what it could not do."""

    format: str = ""
    frames: int = 0
    commented: int = 0
    warnings: list[str] = field(default_factory=list)


class _Writer:
    """The output: runs of the input copied as they are, new blocks gathered and written in
    batches (one write per few MiB rather than per packet)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.parts: list[bytes | memoryview] = []
        self.size = 0

    def add(self, data: bytes | memoryview) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.out.write(b"".join(self.parts))
            self.parts.clear()
            self.size = 0


def annotate(path: str, out: BinaryIO, comments: Mapping[int, str],
             frames: int | None = None) -> Annotated:
    """Write the capture at `path` to `out` as pcapng, with comment `comments[n]` on frame n.

    `frames`: how many frames the engine read (a damaged file ends early): a packet beyond
    them is not written, with a warning, so that the output holds what the verdicts saw.
    """
    with open(path, "rb") as f:
        if not _size(f):
            return Annotated(warnings=["empty file: nothing written"])
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                writer = _Writer(out)
                if bytes(view[:4]) in PCAP_MAGICS:
                    done = _from_pcap(view, writer, comments, frames)
                else:
                    done = _from_pcapng(view, writer, comments, frames)
                writer.flush()
            finally:
                view.release()
    missing = sorted(set(comments) - done.commented_frames)
    if missing:
        done.result.warnings.append(
            f"{len(missing)} RSTs not commented (frames {_frame_list(missing)}): their packets "
            "are in Simple Packet Blocks, which hold no options, or beyond damage")
    return done.result


def _size(f: BinaryIO) -> int:
    import os

    return os.fstat(f.fileno()).st_size


def _frame_list(frames: list[int]) -> str:
    shown = ", ".join(str(n) for n in frames[:10])
    return shown + (", ..." if len(frames) > 10 else "")


@dataclass(slots=True)
class _Done:
    result: Annotated
    commented_frames: set[int] = field(default_factory=set)

    def commented(self, frame: int) -> None:
        self.commented_frames.add(frame)
        self.result.commented += 1


# --- classic pcap --------------------------------------------------------------------------

def _from_pcap(view: memoryview, writer: _Writer, comments: Mapping[int, str],
               limit: int | None) -> _Done:
    done = _Done(Annotated(format="pcap"))
    order, nano = PCAP_MAGICS[bytes(view[:4])]
    if len(view) < PCAP_HEADER:
        done.result.warnings.append("truncated pcap file header: nothing written")
        return done
    snaplen, network = struct.unpack_from(order + "II", view, 16)
    options = pcapng.option(pcapng.IF_TSRESOL, bytes([pcapng.NANOSECONDS])) if nano else b""
    writer.add(pcapng.section_header())
    writer.add(pcapng.interface_description(network & 0xFFFF, snaplen, options))
    record = struct.Struct(order + "IIII")
    head = struct.Struct("<IIIIIII")
    tail = struct.Struct("<I")
    per_second = 1_000_000_000 if nano else 1_000_000
    pos, end, frame = PCAP_HEADER, len(view), 0
    while pos < end:
        if pos + PCAP_RECORD > end:
            _cut(done, pos, frame)
            break
        sec, frac, caplen, wirelen = record.unpack_from(view, pos)
        data_end = pos + PCAP_RECORD + caplen
        if caplen > MAX_CAPLEN or data_end > end:
            _cut(done, pos, frame)
            break
        frame += 1
        if limit is not None and frame > limit:
            _beyond(done, frame, limit)
            break
        ts = sec * per_second + frac
        padding = -caplen & 3
        text = comments.get(frame)
        opts = b"" if text is None else pcapng.comment_option(text) + pcapng.end_of_options()
        length = 32 + caplen + padding + len(opts)
        writer.add(head.pack(pcapng.EPB, length, 0, (ts >> 32) & 0xFFFFFFFF, ts & 0xFFFFFFFF,
                             caplen, wirelen))
        writer.add(view[pos + PCAP_RECORD:data_end])
        writer.add(b"\0" * padding + opts + tail.pack(length))
        if text is not None:
            done.commented(frame)
        pos = data_end
    done.result.frames = frame
    return done


def _cut(done: _Done, offset: int, frames: int) -> None:
    done.result.warnings.append(f"damaged or cut record at byte offset {offset} (after frame "
                                f"{frames}): the rest of the file is not written")


def _beyond(done: _Done, frame: int, limit: int) -> None:
    done.result.warnings.append(f"frame {frame} is beyond the {limit} frames the analysis "
                                "read: the rest of the file is not written")


# --- pcapng --------------------------------------------------------------------------------

def _from_pcapng(view: memoryview, writer: _Writer, comments: Mapping[int, str],
                 limit: int | None) -> _Done:
    """Blocks copied in runs; a commented RST's block rebuilt with one more option."""
    done = _Done(Annotated(format="pcapng"))
    pos, end, frame, order = 0, len(view), 0, "<"
    run = 0  # start of the run of blocks not yet written
    while pos + 12 <= end:
        kind, length = struct.unpack_from(order + "II", view, pos)
        if kind == pcapng.SHB:  # the same in both byte orders: its own magic tells which
            magic = bytes(view[pos + 8:pos + 12])
            order = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
            length = struct.unpack_from(order + "I", view, pos + 4)[0]
        if length < 12 or length % 4 or pos + length > end:
            done.result.warnings.append(f"damaged or cut block at byte offset {pos} (after "
                                        f"frame {frame}): the rest of the file is not written")
            break
        if kind in (pcapng.EPB, pcapng.OPB, pcapng.SPB):
            frame += 1
            if limit is not None and frame > limit:
                _beyond(done, frame, limit)
                break
            text = comments.get(frame)
            if text is not None and kind != pcapng.SPB:
                rebuilt = _with_comment(view[pos:pos + length], order, text)
                if rebuilt is not None:
                    writer.add(view[run:pos])
                    writer.add(rebuilt)
                    run = pos + length
                    done.commented(frame)
        pos += length
    writer.add(view[run:pos])
    done.result.frames = frame
    return done


def _with_comment(block: memoryview, order: str, text: str) -> bytes | None:
    """A packet block (EPB or OPB) with a comment option added after its own options (kept,
    comments included); None when its options cannot be walked (left as it was)."""
    length = len(block)
    caplen = struct.unpack_from(order + "I", block, 20)[0]
    start = OPTIONS_AT + pcapng.pad4(caplen)
    stop = length - 4
    if start > stop:
        return None
    keep = _options_end(block, start, stop, order)
    if keep is None:
        return None
    options = bytes(block[start:keep]) + pcapng.comment_option(text, order) + \
        pcapng.end_of_options(order)
    body = bytes(block[8:start]) + options
    return pcapng.block(struct.unpack_from(order + "I", block, 0)[0], body, order)


def _options_end(block: memoryview, pos: int, stop: int, order: str) -> int | None:
    """Where the options from `pos` end, before their end-of-options marker if they have
    one; None when an option runs past the block."""
    while pos + 4 <= stop:
        code, size = struct.unpack_from(order + "HH", block, pos)
        if code == pcapng.OPT_ENDOFOPT:
            return pos
        pos += 4 + pcapng.pad4(size)
    return pos if pos == stop else None
