"""Walk a classic pcap file in large chunks: each chunk's bytes and its records' positions.

The bulk reader of rstdiag.twopass reads a file twice. The first walk finds where every record
starts (a length-prefixed chain, so it is a Python loop, the one per-record loop left) and
spools those positions to an unlinked temporary file; the second walk reads the same byte
ranges again and takes the positions back from the spool instead of walking again. Memory
holds one chunk, however long the file.

Anything the simple reader (rstdiag.pcapfile) would report as corruption raises NotBulk, so
that the caller reads the file the simple way and its warnings stay the simple reader's.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .pcapfile import (
    EPB,
    EPB_MIN_LEN,
    IDB,
    IDB_MIN_LEN,
    MAX_PCAP_CAPLEN,
    PB,
    PCAP_HEADER_LEN,
    PCAP_RECORD_HEADER_LEN,
    SHB,
    SPB,
    pcapng_layout,
    read_interface,
    truncated_record_warning,
)

CHUNK_BYTES = 8 << 20
# Bytes left free after a chunk's data, so that rstdiag.vecdecode can take a fixed-size window
# from the start of every record, the last one's too, without copying indices.
TAIL = 256
CHUNK_RECORDS = 16384  # at most: small records (a snaplen cut) would make a chunk's arrays big


class NotBulk(Exception):
    """This file needs the simple path; the message says why."""


@dataclass(slots=True)
class Chunk:
    data: bytearray  # the chunk's bytes, then at least TAIL more (reused by the next chunk)
    size: int  # bytes of `data` that belong to this chunk
    start: int  # file offset of data[0]
    offsets: np.ndarray  # int64 position in `data` of each record header
    first_frame: int  # frame number of the chunk's first record (1-based)


@dataclass(slots=True)
class _Span:
    start: int
    size: int
    records: int


class RecordWalker:
    """`walk()` once, then `replay()` any number of times; `warnings` after the walk."""

    def __init__(self, stream: BinaryIO, endian: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._stream = stream
        self._caplen = struct.Struct(endian + "I").unpack_from
        self._chunk_bytes = max(chunk_bytes, MAX_PCAP_CAPLEN + 2 * PCAP_RECORD_HEADER_LEN)
        self._spans: list[_Span] = []
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.warnings: list[str] = []
        self.frames = 0

    def close(self) -> None:
        self._spool.close()

    first_offset = PCAP_HEADER_LEN  # where the records start

    def walk(self) -> Iterator[Chunk]:
        buf = bytearray(self._chunk_bytes + TAIL)
        view = memoryview(buf)[: self._chunk_bytes]
        start = self.first_offset  # file offset of buf[0]
        self._stream.seek(start)
        have, eof = 0, False
        while True:
            if not eof:
                got = self._stream.readinto(view[have:]) or 0
                eof = got == 0
                have += got
            end = have
            positions, pos = self._records(buf, end, start)
            if positions:
                offsets = np.array(positions, dtype=np.int64)
                self._check(buf, offsets)
                self._spans.append(_Span(start, pos, len(offsets)))
                self._spool.write(offsets.tobytes())
                yield Chunk(buf, pos, start, offsets, self.frames + 1)
                self.frames += len(offsets)
            rest = end - pos
            if eof and not positions:  # what is left is not a whole record
                if rest:
                    self._cut_off(buf, start, pos, end)
                return
            buf[:rest] = buf[pos:end]
            start += pos
            have = rest

    def _records(self, buf: bytearray, end: int, start: int) -> tuple[list[int], int]:
        """The positions of the whole records in buf[:end] (at most CHUNK_RECORDS), and where
        the next chunk starts."""
        caplen_at = self._caplen
        positions: list[int] = []
        add = positions.append
        pos, last = 0, end - PCAP_RECORD_HEADER_LEN
        for _ in range(CHUNK_RECORDS):
            if pos > last:
                break
            add(pos)
            pos += PCAP_RECORD_HEADER_LEN + caplen_at(buf, pos + 8)[0]
        if pos > end:  # the last record runs past the chunk: it starts the next one
            pos = positions.pop()
        if pos < end and (caplen := self._whole_header_caplen(buf, pos, end)) is not None \
                and caplen > MAX_PCAP_CAPLEN:
            raise NotBulk(f"corrupt record header (caplen {caplen})")
        return positions, pos

    def _cut_off(self, buf: bytearray, start: int, pos: int, end: int) -> None:
        caplen = self._whole_header_caplen(buf, pos, end)
        need = PCAP_RECORD_HEADER_LEN + (caplen or 0)
        self.warnings.append(truncated_record_warning(self.frames, start + pos, end - pos, need))

    def replay(self) -> Iterator[Chunk]:
        buf = bytearray(self._chunk_bytes + TAIL)
        view = memoryview(buf)
        self._spool.seek(0)
        frame = 1
        for span in self._spans:
            self._stream.seek(span.start)
            got = 0
            while got < span.size:
                n = self._stream.readinto(view[got:span.size])
                if not n:
                    raise NotBulk("the file changed while it was read")
                got += n
            raw = self._spool.read(span.records * 8)
            offsets = np.frombuffer(raw, dtype=np.int64)
            yield Chunk(buf, span.size, span.start, offsets, frame)
            frame += span.records

    def _whole_header_caplen(self, buf: bytearray, pos: int, end: int) -> int | None:
        if end - pos < PCAP_RECORD_HEADER_LEN:
            return None
        return int(self._caplen(buf, pos + 8)[0])

    def _check(self, buf: bytearray, offsets: np.ndarray) -> None:
        ends = np.append(offsets[1:], offsets[-1])  # the last record's caplen is checked below
        caplens = ends[:-1] - offsets[:-1] - PCAP_RECORD_HEADER_LEN
        last = int(self._caplen(buf, int(offsets[-1]) + 8)[0])
        if (caplens.size and int(caplens.max()) > MAX_PCAP_CAPLEN) or last > MAX_PCAP_CAPLEN:
            raise NotBulk("corrupt record header (caplen beyond the pcap maximum)")


class BlockWalker(RecordWalker):
    """The walker of a pcapng file of one section whose interfaces all have one link type and
    one timestamp resolution and offset, holding Enhanced Packet Blocks: `interfaces` fills
    as its Interface Description Blocks go by. Anything else is NotBulk."""

    first_offset = 0

    def __init__(self, stream: BinaryIO, endian: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        super().__init__(stream, endian, chunk_bytes)
        self._u32 = struct.Struct(endian + "I").unpack_from
        self._head = struct.Struct(endian + "II").unpack_from
        self._layout = pcapng_layout(endian)
        self._endian = endian
        self.interfaces: list[tuple[int, int, int]] = []  # (link type, units, offset)

    def _records(self, buf: bytearray, end: int, start: int) -> tuple[list[int], int]:
        head = self._head
        positions: list[int] = []
        add = positions.append
        pos = 0
        for _ in range(CHUNK_RECORDS):
            if pos + 12 > end:
                break
            btype, length = head(buf, pos)
            if length < 12 or length & 3 or length > self._chunk_bytes:
                raise NotBulk(f"a pcapng block of length {length}")
            if pos + length > end:
                break
            if btype == EPB:
                # the interface must be declared before the packet, as the simple reader reads
                if length < EPB_MIN_LEN or self._u32(buf, pos + 8)[0] >= len(self.interfaces):
                    raise NotBulk("an Enhanced Packet Block without its interface")
                add(pos)
            elif btype == IDB:
                self._interface(buf, pos, length)
            elif btype in (SHB, SPB, PB) and (btype != SHB or start + pos):
                raise NotBulk("several sections, or Simple or obsolete Packet Blocks")
            pos += length
        return positions, pos

    def _interface(self, buf: bytearray, pos: int, length: int) -> None:
        if length < IDB_MIN_LEN:
            raise NotBulk("a short Interface Description Block")
        interface, malformed = read_interface(buf, pos, length, self._layout)
        if malformed is not None:
            raise NotBulk("a malformed interface option")
        if self.interfaces and interface != self.interfaces[0]:
            raise NotBulk("interfaces of different link types or clocks")
        self.interfaces.append(interface)

    def _check(self, buf: bytearray, offsets: np.ndarray) -> None:
        """Each block's trailing length and captured length, as the simple reader checks them
        before it takes the block as a packet."""
        chunk = np.frombuffer(buf, dtype=np.uint8)
        u32 = np.dtype(self._endian + "u4")

        def field(at: np.ndarray) -> np.ndarray:
            return chunk.take(at[:, None] + np.arange(4)).copy().view(u32).ravel()

        lengths = field(offsets + 4).astype(np.int64)
        ok = field(offsets + lengths - 4) == lengths
        ok &= field(offsets + 20).astype(np.int64) <= lengths - EPB_MIN_LEN
        if not ok.all():
            raise NotBulk("a damaged Enhanced Packet Block")

    def _cut_off(self, buf: bytearray, start: int, pos: int, end: int) -> None:
        raise NotBulk("the file ends inside a block")
