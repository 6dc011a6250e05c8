"""Read pcap and pcapng capture files into RawFrame records: fast, and without trusting them.

Standard library only: importing scapy costs seconds, and this reader sits on the hot path of
every run. The stream is read in chunks and parsed with precompiled structs; each frame's data
is one bytes slice of a chunk. Captures are untrusted input, so every length field is
checked against the bytes present and against a sane maximum before it is used: a damaged
file ends iteration with a line in `warnings`, never with an exception other than CaptureError,
a hang or an outsized allocation.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

from rstdiag.errors import CaptureError
from rstdiag.records import RawFrame

# Bytes asked of the stream per read. Larger chunks were no faster on files (a chunk holds ~100
# packets already) but slower on pipes, where read1 allocates the whole size to fill 64 KiB.
CHUNK_SIZE = 64 << 10
MAX_PCAP_CAPLEN = 262144  # tcpdump's and Wireshark's largest snaplen; beyond it is corruption
MAX_BLOCK_LEN = 16 << 20  # pcapng blocks longer than this are corruption, not packets
MAX_INTERFACES = 65536  # per pcapng section; the obsolete Packet Block can only name 65536

PCAP_HEADER_LEN = 24
PCAP_RECORD_HEADER_LEN = 16

# pcap magic as it appears in the file -> (struct byte order, seconds per fraction unit)
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}

# pcapng block types (the SHB type reads the same in both byte orders)
SHB = 0x0A0D0D0A
IDB = 1
PB = 2  # obsolete Packet Block
SPB = 3
EPB = 6
_SHB_BYTES = b"\x0a\x0d\x0d\x0a"
SHB_MIN_LEN = 28
IDB_MIN_LEN = 20
SPB_MIN_LEN = 16
EPB_MIN_LEN = PB_MIN_LEN = 32
# Smallest length of each block type, so its fixed fields can be read without bounds checks
_MIN_LENGTHS = {
    SHB: SHB_MIN_LEN,
    IDB: IDB_MIN_LEN,
    PB: PB_MIN_LEN,
    SPB: SPB_MIN_LEN,
    EPB: EPB_MIN_LEN,
}

# IDB options this reader uses
OPT_ENDOFOPT = 0
IF_TSRESOL = 9
IF_TSOFFSET = 14
DEFAULT_TS_UNITS = 1_000_000  # pcapng default resolution: microseconds

# First bytes of files people mistake for captures -> a hint for the error message
_MAGIC_HINTS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zX", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"snoo", "snoop capture, unsupported"),
    (b"\xa1\xb2\xcd\x34", "modified pcap (Kuznetzov), unsupported"),
    (b"\x34\xcd\xb2\xa1", "modified pcap (Kuznetzov), unsupported"),
)


class _Layout:
    """The structs of one byte order, compiled once."""

    def __init__(self, endian: str) -> None:
        self.head = struct.Struct(endian + "II")  # block type, block total length
        self.u32 = struct.Struct(endian + "I")
        # block type, block length, interface, ts high, ts low, caplen, wirelen
        self.epb = struct.Struct(endian + "7I")
        # interface, (drops), ts high, ts low, caplen, wirelen
        self.pb = struct.Struct(endian + "HxxIIII")
        self.idb = struct.Struct(endian + "H")  # link type (then reserved, snaplen)
        self.opt = struct.Struct(endian + "HH")  # option code, option length
        self.i64 = struct.Struct(endian + "q")


# pcapng byte-order magic as it appears in the file -> layout of that section
_LAYOUTS = {b"\x1a\x2b\x3c\x4d": _Layout(">"), b"\x4d\x3c\x2b\x1a": _Layout("<")}

# An interface of a pcapng section: (link type, timestamp ticks per second, seconds added)
_Interface = tuple[int, int, int]


class CaptureReader:
    """Iterate RawFrame records of one capture.

    Construct with a binary file object (may be a non-seekable pipe such as sys.stdin.buffer).
    The constructor reads and checks the file header and raises CaptureError if the stream is
    empty or not a pcap/pcapng capture. Iterating yields every packet record in file order;
    damage met on the way (a cut-off file, a corrupt record) ends iteration early and leaves one
    line in `warnings`. Iterate once: a second `iter()` continues where the first stopped.
    """

    format: str  # "pcap" or "pcapng"
    warnings: list[str]  # non-fatal problems, one line each, filled while iterating
    bytes_read: int  # bytes taken from the stream so far (advances a chunk at a time)
    skipped_frames: int  # packet records numbered but not yielded (undeclared pcapng interface)

    def __init__(self, stream: BinaryIO, name: str = "<stream>") -> None:
        self.name = name
        self.warnings = []
        self.bytes_read = 0
        self.skipped_frames = 0
        # read1 returns what a pipe holds now: packets written to a live pipe are read at once,
        # not when a whole chunk has arrived.
        self._read: Callable[[int], bytes] = getattr(stream, "read1", None) or stream.read
        self._eof = False
        self._base = 0  # file offset of self._buf[0]
        self._warned: set[str] = set()  # kinds of warning given once per file
        self._buf = self._refill(b"", 0, 4)
        magic = self._buf[:4]
        if not magic:
            raise CaptureError("empty file", 0)
        self.linktype: int | None = None  # a pcap file's one link type (pcapng: per interface)
        if magic in _PCAP_MAGICS:
            self.format = "pcap"
            endian, scale, self.linktype = self._pcap_header()
            self._frames = self._pcap_frames(endian, scale, self.linktype)
        elif magic == _SHB_BYTES:
            self.format = "pcapng"
            self._check_first_section_header()
            self._frames = self._pcapng_frames()
        else:
            raise CaptureError(f"not a pcap or pcapng file ({_describe_magic(magic)})", 0)

    def __iter__(self) -> Iterator[RawFrame]:
        return self._frames

    # -- reading ---------------------------------------------------------------------------

    def _refill(self, buf: bytes, pos: int, need: int) -> bytes:
        """Drop the parsed bytes buf[:pos]; read until `need` bytes are buffered or the stream ends.

        With nothing left over, one chunk is read and used as it is. With a record cut by the end
        of the chunk, only its missing bytes are read and joined to it, so no byte is copied twice
        save those of the cut records.
        """
        self._base += pos
        rest = buf[pos:]
        parts = [rest] if rest else []
        have = len(rest)
        while have < need and not self._eof:
            chunk = self._read_chunk(CHUNK_SIZE if have == 0 else need - have)
            if chunk:
                parts.append(chunk)
                have += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_chunk(self, size: int) -> bytes:
        try:
            chunk = self._read(size)
        except OSError as exc:
            raise CaptureError(
                f"cannot read {self.name}: {exc.strerror or exc}", self.bytes_read
            ) from exc
        if not chunk:  # b"" is the end; None (non-blocking stream, nothing ready) ends it too
            self._eof = True
            return b""
        self.bytes_read += len(chunk)
        return chunk

    # -- pcap ------------------------------------------------------------------------------

    def _pcap_header(self) -> tuple[str, float, int]:
        """Check the file header; return (byte order, seconds per fraction unit, link type)."""
        self._buf = self._refill(self._buf, 0, PCAP_HEADER_LEN)
        if len(self._buf) < PCAP_HEADER_LEN:
            raise CaptureError(
                f"truncated pcap file header: the file ends after {len(self._buf)} "
                f"of {PCAP_HEADER_LEN} bytes",
                0,
            )
        layout = pcap_layout(self._buf)
        assert layout is not None  # the constructor checked the magic
        return layout

    def _pcap_frames(self, endian: str, scale: float, linktype: int) -> Iterator[RawFrame]:
        unpack = struct.Struct(endian + "IIII").unpack_from
        buf, pos = self._buf, PCAP_HEADER_LEN
        self._buf = b""
        frame = 0
        caplen = 0  # of the record the hot loop stopped at
        while True:
            end = len(buf)
            # The hot loop: every record that lies wholly in the buffer.
            while pos + PCAP_RECORD_HEADER_LEN <= end:
                sec, frac, caplen, wirelen = unpack(buf, pos)
                start = pos + PCAP_RECORD_HEADER_LEN
                stop = start + caplen
                if stop > end or caplen > MAX_PCAP_CAPLEN:
                    break
                frame += 1
                yield RawFrame(frame, sec + frac * scale, linktype, buf[start:stop], wirelen)
                pos = stop
            need = PCAP_RECORD_HEADER_LEN
            if pos + need <= end:  # stopped at a whole record header
                if caplen > MAX_PCAP_CAPLEN:
                    self.warnings.append(
                        f"corrupt record header at byte offset {self._base + pos} "
                        f"(frame {frame + 1}): caplen {caplen} exceeds {MAX_PCAP_CAPLEN}; "
                        "stopped reading"
                    )
                    return
                need += caplen
            buf = self._refill(buf, pos, need)
            pos = 0
            if len(buf) < need:  # the stream ended
                if buf:
                    self._warn_truncated("record", frame, len(buf), need)
                return

    # -- pcapng ----------------------------------------------------------------------------

    def _check_first_section_header(self) -> None:
        """A damaged first Section Header Block means the file cannot be read at all."""
        buf = self._buf = self._refill(self._buf, 0, 12)
        if len(buf) < 12:
            raise CaptureError(
                f"truncated pcapng section header: the file ends after {len(buf)} "
                f"of {SHB_MIN_LEN} bytes",
                0,
            )
        layout = _LAYOUTS.get(buf[8:12])
        if layout is None:
            raise CaptureError(
                f"corrupt pcapng section header: byte-order magic 0x{buf[8:12].hex()} "
                "is neither 1a2b3c4d nor 4d3c2b1a",
                0,
            )
        (length,) = layout.u32.unpack_from(buf, 4)
        problem = _block_length_problem(length, SHB_MIN_LEN)
        if problem:
            raise CaptureError(f"corrupt pcapng section header: {problem}", 0)
        buf = self._buf = self._refill(buf, 0, length)
        if len(buf) < length:
            raise CaptureError(
                f"truncated pcapng section header: the file ends after {len(buf)} "
                f"of {length} bytes",
                0,
            )
        (trailer,) = layout.u32.unpack_from(buf, length - 4)
        if trailer != length:
            raise CaptureError(
                f"corrupt pcapng section header: trailing length {trailer} "
                f"differs from leading length {length}",
                0,
            )

    def _pcapng_frames(self) -> Iterator[RawFrame]:
        buf, pos = self._buf, 0
        self._buf = b""
        layout = _LAYOUTS[b"\x4d\x3c\x2b\x1a"]  # replaced by the first block, a checked SHB
        interfaces: list[_Interface] = []
        frame = 0
        while True:
            # Hot path: a well-formed Enhanced Packet Block, wholly in the buffer, on a known
            # interface. Anything else (other blocks, damage, a block cut by the buffer's end)
            # takes the careful path below, which checks again and explains what it finds.
            if len(buf) - pos >= EPB_MIN_LEN:
                btype, length, iface, high, low, caplen, wirelen = layout.epb.unpack_from(buf, pos)
                stop = pos + length
                if (
                    btype == EPB
                    and caplen <= length - EPB_MIN_LEN
                    and not length & 3
                    and stop <= len(buf)
                    and iface < len(interfaces)
                    and layout.u32.unpack_from(buf, stop - 4)[0] == length
                ):
                    frame += 1
                    linktype, units, offset = interfaces[iface]
                    ts = ((high << 32) | low) / units + offset
                    yield RawFrame(frame, ts, linktype, buf[pos + 28 : pos + 28 + caplen], wirelen)
                    pos = stop
                    continue
            if len(buf) - pos < 12:  # block type, length, and an SHB's byte-order magic
                buf = self._refill(buf, pos, 12)
                pos = 0
                if len(buf) < 12:
                    if buf:
                        self._warn_truncated("block", frame, len(buf), 12)
                    return
            btype, length = layout.head.unpack_from(buf, pos)
            if btype == SHB:  # a new section: its own byte order, no interfaces yet
                section = _LAYOUTS.get(buf[pos + 8 : pos + 12])
                if section is None:
                    self._warn_corrupt(
                        pos, btype, frame, f"byte-order magic 0x{buf[pos + 8 : pos + 12].hex()}"
                    )
                    return
                layout = section
                (length,) = layout.u32.unpack_from(buf, pos + 4)
                interfaces = []
            problem = _block_length_problem(length, _MIN_LENGTHS.get(btype, 12))
            if problem:
                self._warn_corrupt(pos, btype, frame, problem)
                return
            if len(buf) - pos < length:
                buf = self._refill(buf, pos, length)
                pos = 0
                if len(buf) < length:
                    self._warn_truncated("block", frame, len(buf), length)
                    return
            (trailer,) = layout.u32.unpack_from(buf, pos + length - 4)
            if trailer != length:
                self._warn_corrupt(
                    pos, btype, frame, f"trailing length {trailer} differs from leading {length}"
                )
                return

            if btype in (EPB, PB, SPB):
                frame += 1
                iface, ticks, caplen, wirelen, start = _packet_fields(btype, buf, pos, layout)
                if start + caplen > pos + length - 4:
                    self._warn_corrupt(pos, btype, frame - 1, f"caplen {caplen} exceeds the block")
                    return
                if iface < len(interfaces):
                    linktype, units, offset = interfaces[iface]
                    ts = 0.0 if ticks is None else ticks / units + offset
                    yield RawFrame(frame, ts, linktype, buf[start : start + caplen], wirelen)
                else:
                    self.skipped_frames += 1
                    self._warn_once(
                        "interface",
                        f"frame {frame} at byte offset {self._base + pos} names interface "
                        f"{iface}, which no Interface Description Block of its section declares; "
                        "skipped it and any others like it",
                    )
            elif btype == IDB:
                if len(interfaces) == MAX_INTERFACES:  # 20 bytes of file, ~100 of memory each
                    self._warn_corrupt(pos, btype, frame, f"more than {MAX_INTERFACES} interfaces")
                    return
                interfaces.append(self._interface(buf, pos, length, layout))
            pos += length

    def _interface(self, buf: bytes, pos: int, length: int, layout: _Layout) -> _Interface:
        interface, malformed = read_interface(buf, pos, length, layout)
        if malformed is not None:
            code, size = malformed
            self._warn_once(
                "option",
                f"ignored a malformed option (code {code}, length {size}) of the interface "
                f"block at byte offset {self._base + pos}, and any others like it",
            )
        return interface

    # -- warnings --------------------------------------------------------------------------

    def _warn_truncated(self, what: str, frames: int, have: int, need: int) -> None:
        """The stream ended inside a record or block that starts at self._base."""
        if what == "record":
            self.warnings.append(truncated_record_warning(frames, self._base, have, need))
            return
        kind = "block"
        self.warnings.append(
            f"truncated capture: {kind} at byte offset {self._base} is cut off "
            f"(file ends after {have} of {need} bytes); kept the {_frames(frames)} before it"
        )

    def _warn_corrupt(self, pos: int, btype: int, frames: int, problem: str) -> None:
        self.warnings.append(
            f"corrupt pcapng block at byte offset {self._base + pos} (type 0x{btype:08x}): "
            f"{problem}; stopped reading, kept the {_frames(frames)} before it"
        )

    def _warn_once(self, kind: str, message: str) -> None:
        """Warn about the first of a kind of problem that may repeat in every block."""
        if kind not in self._warned:
            self._warned.add(kind)
            self.warnings.append(message)


def pcapng_layout(endian: str) -> _Layout:
    """The structs of a pcapng section in byte order `endian` ("<" or ">")."""
    return _LAYOUTS[b"\x4d\x3c\x2b\x1a" if endian == "<" else b"\x1a\x2b\x3c\x4d"]


def read_interface(buf: bytes | bytearray, pos: int, length: int, layout: _Layout
                   ) -> tuple[_Interface, tuple[int, int] | None]:
    """Link type and timestamp options of the Interface Description Block at `pos`, and the
    (code, length) of a malformed option that ended the reading, if one did."""
    (linktype,) = layout.idb.unpack_from(buf, pos + 8)
    units, offset = DEFAULT_TS_UNITS, 0
    opt, end = pos + 16, pos + length - 4
    while opt + 4 <= end:
        code, size = layout.opt.unpack_from(buf, opt)
        if code == OPT_ENDOFOPT:
            break
        if opt + 4 + size > end:
            return (linktype, units, offset), (code, size)
        if code == IF_TSRESOL and size == 1:
            exponent = buf[opt + 4]
            # High bit clear: a negative power of 10; set: a negative power of 2.
            units = 2 ** (exponent & 0x7F) if exponent & 0x80 else 10 ** (exponent & 0x7F)
        elif code == IF_TSOFFSET and size == 8:
            (offset,) = layout.i64.unpack_from(buf, opt + 4)
        opt += 4 + size + (-size % 4)  # values are padded to 32 bits
    return (linktype, units, offset), None


def pcap_layout(header: bytes) -> tuple[str, float, int] | None:
    """(struct byte order, seconds per fraction unit, link type) of a classic pcap file header;
    None when `header` is not one."""
    if len(header) < PCAP_HEADER_LEN or header[:4] not in _PCAP_MAGICS:
        return None
    endian, scale = _PCAP_MAGICS[header[:4]]
    (network,) = struct.unpack_from(endian + "I", header, 20)
    # The upper bits of the field carry FCS information, not the link type.
    return endian, scale, network & 0xFFFF


def truncated_record_warning(frames: int, offset: int, have: int, need: int) -> str:
    """The warning for a pcap whose last record (after `frames` whole ones) is cut off."""
    return (f"truncated capture: record of frame {frames + 1} at byte offset {offset} is cut "
            f"off (file ends after {have} of {need} bytes); kept the {_frames(frames)} before it")


def _packet_fields(
    btype: int, buf: bytes, pos: int, layout: _Layout
) -> tuple[int, int | None, int, int, int]:
    """(interface, timestamp ticks or None, caplen, wirelen, data offset) of a packet block."""
    if btype == EPB:
        _, _, iface, high, low, caplen, wirelen = layout.epb.unpack_from(buf, pos)
    elif btype == PB:
        iface, high, low, caplen, wirelen = layout.pb.unpack_from(buf, pos + 8)
    else:  # SPB: interface 0, no timestamp, captured length implied by the block
        length, wirelen = layout.head.unpack_from(buf, pos + 4)
        return 0, None, min(wirelen, length - SPB_MIN_LEN), wirelen, pos + 12
    return iface, (high << 32) | low, caplen, wirelen, pos + 28


def _block_length_problem(length: int, minimum: int) -> str:
    """Why a pcapng block length cannot be trusted, or "" if it can."""
    if length % 4:
        return f"block length {length} is not a multiple of 4"
    if length < minimum:
        return f"block length {length} is shorter than the {minimum} bytes this block needs"
    if length > MAX_BLOCK_LEN:
        return f"block length {length} exceeds {MAX_BLOCK_LEN}"
    return ""


def _frames(count: int) -> str:
    return "1 frame" if count == 1 else f"{count} frames"


def _describe_magic(magic: bytes) -> str:
    """'starts with 0x1f8b0800: gzip?' — what the first bytes suggest the file is."""
    text = f"starts with 0x{magic.hex()}"
    for prefix, kind in _MAGIC_HINTS:
        if magic.startswith(prefix):
            return f"{text}: {kind}?"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in magic):
        return f"{text}: text?"
    block_types = {int.from_bytes(magic, "little"), int.from_bytes(magic, "big")}
    if len(magic) == 4 and block_types & {IDB, PB, SPB, EPB}:
        return f"{text}: pcapng blocks without a section header?"
    return text


def open_capture(path: str) -> tuple[CaptureReader, BinaryIO]:
    """Open `path` ("-" is standard input); return the reader and the stream to close."""
    if path == "-":
        return CaptureReader(sys.stdin.buffer, "<stdin>"), sys.stdin.buffer
    try:
        stream = open(path, "rb")  # noqa: SIM115 - the caller closes it when done iterating
    except OSError as exc:
        raise CaptureError(f"cannot open: {exc.strerror or exc}") from exc
    try:
        return CaptureReader(stream, path), stream
    except BaseException:
        stream.close()
        raise
