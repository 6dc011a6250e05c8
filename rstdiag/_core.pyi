"""The compiled engine (Rust, src/): capture reading, decoding, flow tracking, the rules.

rstdiag.analysis wraps it; use `rstdiag.analyze` rather than this module directly.
"""

from typing import BinaryIO

# (frame, ts, src, sport, dst, dport, flags, client addr, client port, server addr,
#  server port, sender, label, confidence, evidence, duplicate_of, alternatives, effect,
#  the story's own hint or None, the flow's Community ID, the verdict's JSON line when `take`
#  was given the file to name in it, else None)
VerdictTuple = tuple[int, float, str, int, str, int, str, str, int, str, int, str, str, str, str,
                     int | None, list[str], str, str | None, str, str | None]
# (frame, ts, IP version, src packed, dst packed, sport, dport, seq, ack, flags, window,
#  payload length, ttl, IP ID or None, payload of a RST)
PacketTuple = tuple[int, float, int, bytes, bytes, int, int, int, int, int, int, int, int,
                    int | None, bytes]

class CaptureError(Exception):
    """Not a capture the engine can read; `offset` is the byte offset of the fault."""

    offset: int | None

class EngineError(Exception):
    """An internal error (a panic caught at the engine's boundary)."""

class Stopper:
    """Stops an Analysis from another thread: its engine ends after the current batch."""

    def stop(self) -> None: ...

class Analysis:
    """One capture's analysis. The GIL is released while it reads and judges."""

    def __init__(self, max_flows: int | None = None) -> None: ...
    def open(self, path: str, name: str | None = None) -> None:
        """Open a capture file ("-": standard input) and check its header; `name` is what
        messages call it (default: the path)."""
    def open_stream(self, stream: BinaryIO, name: str) -> None:
        """Read an open binary stream (read1, else read) as the capture `name`."""
    def read(self, limit: int = 65536) -> bool:
        """Waits for the next final verdicts (`limit` frames a batch) or a tenth of a second
        without any (the bytes read have moved on); False once the capture has ended."""
    def stopper(self) -> Stopper:
        """A handle that stops this analysis from any thread, even during `read`."""
    @property
    def bytes_read(self) -> int: ...
    def frame(self, frame: int, ts: float, linktype: int, data: bytes, wirelen: int) -> None:
        """One frame of a live capture (numbered by the caller, from 1)."""
    def take(self, json_file: str | None = None) -> list[VerdictTuple]:
        """The verdicts that became final, in frame order; each is returned once. With
        `json_file`, each with its JSON line (json.dumps(verdict.to_dict()) to the character),
        that file in its "file" key."""
    def take_lines(self, json_file: str) -> tuple[str, list[tuple[str, int, int]]] | None:
        """`take` as JSON lines only: the lines ("\\n" between them) and (label, distinct,
        copies) counts; None, taking nothing, while kernel reasons saved in the capture wait
        for their verdicts (`take` gives those)."""
    def kernel_reasons(self) -> list[tuple[int, str]]:
        """The kernel's reasons that a capture saved by `rstdiag live -w --kernel-reasons`
        keeps (pcapng packet comments) for the verdicts the last `take` gave: (frame,
        "REASON in STATE"), or (frame, "") for a RST saved with none matched. Empty for any
        other capture."""
    def provisional(self, from_frame: int = 0) -> list[VerdictTuple]:
        """The RSTs still collecting the packets after them (those of frame `from_frame` on),
        judged as they stand."""
    def sweep_at(self, now: float) -> None:
        """Let capture time reach `now` without a packet (a live capture's clock)."""
    def finish(self, complete: bool = True) -> None:
        """End of input: every waiting RST is judged; counters become final."""
    def limit_frames(self, frames: int) -> None:
        """Read no more than `frames` frames, as if the capture ended there (before `read`)."""
    def summary(self) -> dict[str, object]:
        """format, frames, tcp_packets, flows, duplicates, evicted_flows, rsts, skipped,
        warnings, complete, first_ts, last_ts; while `read` is under way, only first_ts and
        last_ts (as far as the engine has read) are filled in."""
    def counters(self) -> tuple[int, int, int]:
        """(flows in the table, flows seen, TCP packets decoded)."""
    def watch(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        """Keep the packets of the flow between endpoints a and b as they pass."""
    def take_watched(self) -> list[PacketTuple]: ...

class LiveSession:
    """A live capture: the ring of an AF_PACKET socket (set up by rstdiag.livecapture) read
    by a thread of the engine's own, which numbers the frames, writes the -w file and feeds
    the engine; the caller ticks. Linux only."""

    def __init__(self, fd: int, block_size: int, blocks: int, linktype: int, cooked: bool,
                 interface: str, *, max_flows: int | None = None, count: int | None = None,
                 write: str | None = None, write_snaplen: int = 262144,
                 keep_reasons: bool = False) -> None:
        """Map the ring (OSError: it cannot be mapped, or `write` cannot be created).
        `write` is a pcap file, or with `keep_reasons` a pcapng whose RSTs each have a
        comment for the kernel's reason (`note_reason`)."""
    def start(self) -> None:
        """Start reading the ring (after privileges are dropped)."""
    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the capture thread to stop; whether it has."""
    def stop(self) -> None:
        """Stop the capture thread; the -w file flushed."""
    def flush(self) -> None:
        """Write the -w file's waiting records (a failure stops the capture)."""
    def note_reason(self, frame: int, text: str) -> bool:
        """The kernel's reason ("REASON in STATE") for the RST of frame `frame`, written
        into its comment in the -w file (`keep_reasons`), in place; whether it went in (not
        for a frame that is no RST, one forgotten after 30 s, or a text that is no reason)."""
    def status(self) -> tuple[int, float | None, float, bool, str, str]:
        """(frames, first packet time, last packet time, ring idle, why it stopped: "",
        "asked", "count", "capture-error", "write-error" or "panic", and its text)."""
    def take(self) -> list[VerdictTuple]: ...
    def provisional(self, from_frame: int = 0) -> list[VerdictTuple]: ...
    def sweep_at(self, now: float) -> None: ...
    def finish(self, complete: bool = True) -> None: ...
    def counters(self) -> tuple[int, int, int]: ...

def engine_version() -> str: ...

def probe_frame(path: str, frame: int) -> tuple[PacketTuple | None, str, int]:
    """Decode `path` as far as `frame`: (its TCP packet or None, why not: non_ip, non_tcp,
    ip_fragments, malformed, linktype_N or absent, frames read)."""

def roles_of(flags: int, sport: int, dport: int) -> tuple[bool, str]:
    """(is the sender of a flow's first packet the client?, how: syn, synack, port, first)."""

# (frame, ts, link type, captured bytes, wire length, its TCP packet or None)
FrameTuple = tuple[int, float, int, bytes, int, PacketTuple | None]

class Frames:
    """A capture's frames through the engine's reader and decoder."""

    format: str  # "pcap" or "pcapng"
    linktype: int | None  # a classic pcap's one link type
    warnings: list[str]  # damage met so far, one line each
    skipped_frames: int  # numbered but not yielded (a pcapng interface nobody declared)
    def __iter__(self) -> Frames: ...
    def __next__(self) -> FrameTuple: ...

def frames(source: str | BinaryIO, name: str = "<stream>") -> Frames:
    """The frames of a capture file, or of an open binary stream named `name`."""
