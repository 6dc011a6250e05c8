"""The engine's capture reader (rstdiag.frames): what it yields from pcap and pcapng, and how it
meets damaged input.

Small captures are built here with struct, so each test shows the bytes it is about. The public
corpus (../shared/pcaps-public) checks the reader against scapy's and tshark's readings.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import shutil
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from corpus import PUBLIC
from hypothesis import given, settings
from hypothesis import strategies as st
from seeds import block, epb, idb, option, shb, spb  # fuzz/seeds.py, via conftest.py

from rstdiag.errors import CaptureError
from rstdiag.frames import CaptureFrames, read_frames
from rstdiag.records import RawFrame

ETHERNET, RAW_IP, LINUX_SLL = 1, 101, 113
MAX_INTERFACES = 65536  # per pcapng section: the obsolete Packet Block can only name 65536

# -- building captures --------------------------------------------------------------------


def pcap(
    packets: list[tuple[int, int, bytes, int]],
    endian: str = "<",
    nano: bool = False,
    network: int = ETHERNET,
) -> bytes:
    """A classic pcap file; packets are (seconds, fraction, data, wirelen)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, network)
    for sec, frac, data, wirelen in packets:
        out += struct.pack(endian + "IIII", sec, frac, len(data), wirelen) + data
    return out


def packet_block(iface: int, ticks: int, data: bytes, endian: str = "<") -> bytes:
    """The obsolete Packet Block (type 2)."""
    head = struct.pack(endian + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), 99)
    return block(2, head + data, endian)


def read(data: bytes) -> tuple[CaptureFrames, list[RawFrame]]:
    reader = read_frames(io.BytesIO(data))
    return reader, list(reader)


def small_pcap() -> bytes:
    return pcap([(1_700_000_000 + i, 1000 * i, bytes([i]) * (40 + i), 60 + i) for i in range(5)])


def small_pcapng() -> bytes:
    return (
        shb()
        + idb(ETHERNET)
        + idb(RAW_IP, option(9, b"\x09"))
        + b"".join(epb(i % 2, 1_700_000_000_000_000 + i, bytes([i]) * (30 + i)) for i in range(5))
    )


# -- the public corpus: the same frames as scapy and tshark read -------------------------

CORPUS = sorted(PUBLIC.glob("*.pcap*")) if PUBLIC.is_dir() else []
CORPUS = [path for path in CORPUS if path.suffix in (".pcap", ".pcapng")]
corpus_files = pytest.mark.parametrize(
    "path", CORPUS or [None], ids=[path.name for path in CORPUS] or ["no-corpus"]
)


def _need_corpus(path: Path | None) -> Path:
    if path is None:
        pytest.skip(f"public corpus not found at {PUBLIC}")
    return path


def _scapy_frames(path: Path) -> list[tuple[bytes, int, float, int]]:
    """(data, wirelen, ts, linktype) of every packet, as scapy's raw readers see them."""
    from scapy.utils import RawPcapNgReader, RawPcapReader

    frames = []
    with RawPcapReader(str(path)) as reader:
        for data, meta in reader:
            if isinstance(reader, RawPcapNgReader):
                ticks = ((meta.tshigh or 0) << 32) | (meta.tslow or 0)
                frames.append((data, meta.wirelen, ticks / meta.tsresol, meta.linktype))
            else:
                scale = 1e-9 if reader.nano else 1e-6
                # scapy keeps the whole header field; its upper bits are FCS information
                linktype = reader.linktype & 0xFFFF
                frames.append((data, meta.wirelen, meta.sec + meta.usec * scale, linktype))
    return frames


@corpus_files
def test_frames_match_scapy_on_public_captures(path: Path | None) -> None:
    path = _need_corpus(path)
    reader = read_frames(str(path))
    mine = list(reader)
    theirs = _scapy_frames(path)
    assert len(mine) == len(theirs)
    assert [f.frame for f in mine] == list(range(1, len(mine) + 1))
    for frame, (data, wirelen, ts, linktype) in zip(mine, theirs, strict=True):
        assert frame.data == data, frame.frame
        assert frame.wirelen == wirelen, frame.frame
        assert frame.ts == pytest.approx(ts, abs=1e-6), frame.frame
        assert frame.linktype == linktype, frame.frame
    assert reader.warnings == []


@corpus_files
def test_frame_count_matches_tshark_on_public_captures(path: Path | None) -> None:
    path = _need_corpus(path)
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    _, frames = read(path.read_bytes())
    assert len(frames) == len(out.splitlines())


# -- pcap ---------------------------------------------------------------------------------


def test_little_endian_microsecond_pcap() -> None:
    reader, frames = read(pcap([(10, 250_000, b"abc", 70), (11, 0, b"de", 2)]))
    assert reader.format == "pcap"
    assert frames == [
        RawFrame(1, 10.25, ETHERNET, b"abc", 70),
        RawFrame(2, 11.0, ETHERNET, b"de", 2),
    ]


def test_big_endian_pcap() -> None:
    _, frames = read(pcap([(10, 500_000, b"xyz", 99)], endian=">", network=RAW_IP))
    assert frames == [RawFrame(1, 10.5, RAW_IP, b"xyz", 99)]


def test_nanosecond_pcap_in_both_byte_orders() -> None:
    for endian in "<>":
        _, frames = read(pcap([(1_700_000_000, 123_456_789, b"p", 1)], endian, nano=True))
        assert frames[0].ts == pytest.approx(1_700_000_000.123456789, abs=1e-7)


def test_pcap_link_type_ignores_the_fcs_bits_of_the_header_field() -> None:
    _, frames = read(pcap([(0, 0, b"p", 1)], network=0x1000_0000 | (4 << 28) | ETHERNET))
    assert frames[0].linktype == ETHERNET


def test_pcap_caplen_larger_than_wirelen_is_tolerated() -> None:
    reader, frames = read(pcap([(0, 0, b"12345678", 4), (1, 0, b"z", 1)]))
    assert [f.data for f in frames] == [b"12345678", b"z"]
    assert reader.warnings == []


def test_pcap_with_header_only_has_no_frames() -> None:
    reader, frames = read(pcap([]))
    assert frames == [] and reader.warnings == []


# -- pcapng -------------------------------------------------------------------------------


def test_pcapng_two_interfaces_with_different_link_types_and_nanosecond_resolution() -> None:
    data = (
        shb()
        + idb(ETHERNET)
        + idb(LINUX_SLL, option(9, b"\x09"))  # if_tsresol 10^-9
        + epb(0, 1_700_000_000_250_000, b"eth")
        + epb(1, 1_700_000_001_000_000_500, b"sll", wirelen=1500)
    )
    reader, frames = read(data)
    assert reader.format == "pcapng"
    assert [(f.frame, f.linktype, f.data, f.wirelen) for f in frames] == [
        (1, ETHERNET, b"eth", 3),
        (2, LINUX_SLL, b"sll", 1500),
    ]
    assert frames[0].ts == pytest.approx(1_700_000_000.25, abs=1e-7)
    assert frames[1].ts == pytest.approx(1_700_000_001.0000005, abs=1e-7)


def test_pcapng_tsresol_with_high_bit_is_a_power_of_two() -> None:
    data = shb() + idb(ETHERNET, option(9, b"\x8a")) + epb(0, 3 * 1024 + 512, b"x")
    _, frames = read(data)
    assert frames[0].ts == 3.5


def test_pcapng_tsoffset_adds_seconds() -> None:
    data = shb() + idb(ETHERNET, option(14, struct.pack("<q", 1000))) + epb(0, 2_500_000, b"x")
    _, frames = read(data)
    assert frames[0].ts == 1002.5


def test_pcapng_simple_packet_block_is_on_interface_0_without_timestamp() -> None:
    data = shb() + idb(RAW_IP) + spb(b"abcd", 4) + spb(b"abcdefgh", 1500)
    reader, frames = read(data)
    assert frames == [
        RawFrame(1, 0.0, RAW_IP, b"abcd", 4),
        # captured length: the block's room (8 bytes), the wire length being larger
        RawFrame(2, 0.0, RAW_IP, b"abcdefgh", 1500),
    ]
    assert reader.warnings == []


def test_pcapng_simple_packet_block_wirelen_shorter_than_block_cuts_the_padding() -> None:
    _, frames = read(shb() + idb(RAW_IP) + spb(b"abcde", 3))
    assert frames[0].data == b"abc"


def test_pcapng_obsolete_packet_block() -> None:
    data = shb() + idb(ETHERNET) + packet_block(0, 7_000_000, b"old")
    _, frames = read(data)
    assert frames == [RawFrame(1, 7.0, ETHERNET, b"old", 99)]


def test_pcapng_sections_with_different_byte_orders_each_have_their_own_interfaces() -> None:
    data = (
        shb("<")
        + idb(ETHERNET, endian="<")
        + epb(0, 1_000_000, b"le", endian="<")
        + shb(">")
        + idb(RAW_IP, option(9, b"\x03", ">"), endian=">")  # milliseconds
        + epb(0, 2_000, b"be", endian=">")
    )
    reader, frames = read(data)
    assert [(f.frame, f.ts, f.linktype, f.data) for f in frames] == [
        (1, 1.0, ETHERNET, b"le"),
        (2, 2.0, RAW_IP, b"be"),
    ]
    assert reader.warnings == []


def test_pcapng_blocks_other_than_packets_are_skipped_and_not_numbered() -> None:
    data = (
        shb()
        + idb(ETHERNET)
        + block(4, option(1, b"\x0a\0\0\x01name\0") + b"\0\0\0\0")  # name resolution
        + epb(0, 0, b"a")
        + block(5, struct.pack("<III", 0, 0, 0))  # interface statistics
        + block(10, struct.pack("<II", 0x544C534B, 4) + b"keys")  # decryption secrets
        + block(0x00000BAD, struct.pack("<I", 32473) + b"custom")
        + block(0x40000001, b"local use")
        + epb(0, 0, b"b")
    )
    reader, frames = read(data)
    assert [(f.frame, f.data) for f in frames] == [(1, b"a"), (2, b"b")]
    assert reader.warnings == []


def test_pcapng_packet_on_undeclared_interface_is_numbered_skipped_and_warned_once() -> None:
    data = shb() + idb(ETHERNET) + epb(0, 0, b"a") + epb(3, 0, b"?") + epb(7, 0, b"?")
    data += epb(0, 0, b"d")
    reader, frames = read(data)
    assert [(f.frame, f.data) for f in frames] == [(1, b"a"), (4, b"d")]
    assert len(reader.warnings) == 1
    assert "frame 2" in reader.warnings[0] and "interface 3" in reader.warnings[0]


def test_pcapng_new_section_forgets_the_interfaces_of_the_last() -> None:
    data = shb() + idb(ETHERNET) + epb(0, 0, b"a") + shb() + epb(0, 0, b"b")
    reader, frames = read(data)
    assert [f.data for f in frames] == [b"a"]
    assert "interface 0" in reader.warnings[0]


def test_pcapng_malformed_interface_options_are_ignored_with_one_warning() -> None:
    bad_option = struct.pack("<HH", 9, 200) + b"\x09\0\0\0"  # length runs past the block
    data = shb() + idb(ETHERNET, bad_option) + idb(RAW_IP, bad_option) + epb(0, 1_000_000, b"x")
    reader, frames = read(data)
    assert frames[0].ts == 1.0  # the default microseconds
    assert len(reader.warnings) == 1
    assert "malformed option (code 9, length 200)" in reader.warnings[0]


def test_pcapng_more_interfaces_than_the_cap_stop_with_a_warning() -> None:
    declared = shb() + idb(ETHERNET) * MAX_INTERFACES
    declared += epb(0, 0, b"a")
    reader, frames = read(declared + idb(ETHERNET) + epb(0, 0, b"b"))
    assert [f.data for f in frames] == [b"a"]
    assert reader.warnings == [
        f"corrupt pcapng block at byte offset {len(declared)} (type 0x00000001): "
        "more than 65536 interfaces; stopped reading, kept the 1 frame before it"
    ]


# -- damaged captures ---------------------------------------------------------------------


def test_truncated_pcap_keeps_the_frames_before_the_cut_and_warns_with_the_offset() -> None:
    whole = pcap([(0, 0, b"a" * 50, 50)] * 3)
    reader, frames = read(whole[:-30])
    assert len(frames) == 2
    third = 24 + 2 * 66
    assert reader.warnings == [
        f"truncated capture: record of frame 3 at byte offset {third} is cut off "
        "(file ends after 36 of 66 bytes); kept the 2 frames before it"
    ]


def test_pcap_cut_inside_a_record_header_warns_too() -> None:
    reader, frames = read(pcap([(0, 0, b"a", 1)] * 2)[:-10])
    assert len(frames) == 1
    assert "record of frame 2 at byte offset 41" in reader.warnings[0]
    assert "(file ends after 7 of 16 bytes); kept the 1 frame before it" in reader.warnings[0]


def test_truncated_pcapng_keeps_the_frames_before_the_cut() -> None:
    whole = small_pcapng()
    reader, frames = read(whole[:-5])
    assert len(frames) == 4
    assert reader.warnings[0].startswith("truncated capture: block at byte offset ")
    assert "kept the 4 frames before it" in reader.warnings[0]


def test_corrupt_pcap_caplen_stops_with_a_warning() -> None:
    good = pcap([(0, 0, b"a", 1)])
    bad = struct.pack("<IIII", 0, 0, 4_000_000_000, 60) + b"b" * 100
    reader, frames = read(good + bad)
    assert [f.data for f in frames] == [b"a"]
    assert reader.warnings == [
        "corrupt record header at byte offset 41 (frame 2): caplen 4000000000 exceeds "
        "262144; stopped reading"
    ]


@pytest.mark.parametrize(
    ("length", "problem"),
    [
        (30, "not a multiple of 4"),
        (8, "shorter than"),
        (32 << 20, "exceeds 16777216"),
        (40, "trailing length"),
    ],
)
def test_pcapng_bad_block_length_stops_with_a_warning(length: int, problem: str) -> None:
    good = shb() + idb(ETHERNET) + epb(0, 0, b"a")
    bad = bytearray(epb(0, 0, b"b" * 20) + epb(0, 0, b"c"))
    struct.pack_into("<I", bad, 4, length)
    reader, frames = read(good + bytes(bad))
    assert [f.data for f in frames] == [b"a"]
    assert len(reader.warnings) == 1
    assert reader.warnings[0].startswith(f"corrupt pcapng block at byte offset {len(good)} ")
    assert problem in reader.warnings[0]


def test_pcapng_caplen_beyond_its_block_stops_with_a_warning() -> None:
    bad = bytearray(epb(0, 0, b"b" * 8))
    struct.pack_into("<I", bad, 20, 9)  # caplen 9 in a block with room for 8
    reader, frames = read(shb() + idb(ETHERNET) + bytes(bad))
    assert frames == []
    assert "caplen 9 exceeds the block" in reader.warnings[0]


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"hello world\n" * 3, "starts with 0x68656c6c: text?"),
        (gzip.compress(small_pcap()), "starts with 0x1f8b0800: gzip?"),
        (epb(0, 0, b"x"), "starts with 0x06000000: pcapng blocks without a section header?"),
        (b"\x00\x01", "starts with 0x0001"),
    ],
    ids=["text", "gzip", "packet-block-before-section-header", "two-bytes"],
)
def test_non_capture_bytes_raise_capture_error_naming_the_magic(data: bytes, named: str) -> None:
    with pytest.raises(CaptureError) as error:
        read_frames(io.BytesIO(data))
    assert str(error.value) == f"not a pcap or pcapng file ({named})"
    assert error.value.offset == 0


def test_empty_file_raises_capture_error() -> None:
    with pytest.raises(CaptureError, match="^empty file$"):
        read_frames(io.BytesIO(b""))


def test_pcap_header_shorter_than_24_bytes_raises_at_offset_0() -> None:
    with pytest.raises(CaptureError, match="truncated pcap file header") as error:
        read_frames(io.BytesIO(pcap([])[:20]))
    assert error.value.offset == 0


def test_pcapng_section_header_with_bad_byte_order_magic_raises_at_offset_0() -> None:
    data = bytearray(small_pcapng())
    data[8:12] = b"\xde\xad\xbe\xef"
    with pytest.raises(CaptureError, match="byte-order magic 0xdeadbeef") as error:
        read_frames(io.BytesIO(bytes(data)))
    assert error.value.offset == 0


@pytest.mark.parametrize("length", [26, 20, 1 << 30])
def test_pcapng_section_header_with_bad_length_raises_at_offset_0(length: int) -> None:
    data = bytearray(small_pcapng())
    struct.pack_into("<I", data, 4, length)
    with pytest.raises(CaptureError, match="corrupt pcapng section header") as error:
        read_frames(io.BytesIO(bytes(data)))
    assert error.value.offset == 0


def test_pcapng_cut_inside_the_first_section_header_raises() -> None:
    with pytest.raises(CaptureError, match="truncated pcapng section header"):
        read_frames(io.BytesIO(shb()[:20]))


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["pcap", "pcapng"]),
    cut=st.integers(min_value=0),
    where=st.integers(min_value=0),
    value=st.integers(min_value=0, max_value=255),
)
def test_damaged_captures_raise_only_capture_error_and_end(
    kind: str, cut: int, where: int, value: int
) -> None:
    data = bytearray(small_pcap() if kind == "pcap" else small_pcapng())
    data[where % len(data)] = value
    data = data[: cut % (len(data) + 1)]
    try:
        reader = read_frames(io.BytesIO(bytes(data)))
        # A reader that looped would yield without end: stop well past any honest count.
        frames = list(itertools.islice(reader, len(data) // 12 + 2))
    except CaptureError:
        return
    assert len(frames) <= len(data) // 12
    assert all(len(f.data) <= len(data) for f in frames)


# -- streams ------------------------------------------------------------------------------


def test_non_seekable_pipe_gives_the_same_frames_as_the_file(tmp_path: Path) -> None:
    data = small_pcapng() + b"".join(epb(0, i, bytes(100 + i % 50)) for i in range(3000))
    path = tmp_path / "c.pcapng"
    path.write_bytes(data)
    with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE) as cat:
        assert cat.stdout is not None
        from_pipe = list(read_frames(cat.stdout))
    from_file = list(read_frames(str(path)))
    assert len(from_file) == 3005
    assert from_pipe == from_file


def test_os_pipe_fed_by_a_thread_gives_the_same_frames() -> None:
    data = small_pcap()
    read_fd, write_fd = os.pipe()

    def write_in_dribs() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as pipe:
            for i in range(0, len(data), 7):
                pipe.write(data[i : i + 7])

    writer = threading.Thread(target=write_in_dribs)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        frames = list(read_frames(pipe))
    writer.join()
    assert frames == read(data)[1]


def test_frames_in_a_pipe_still_open_are_read_without_waiting_for_more() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, small_pcap())
    got: list[RawFrame] = []

    def take_five() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            got.extend(itertools.islice(read_frames(pipe), 5))

    reader_thread = threading.Thread(target=take_five, daemon=True)
    reader_thread.start()
    reader_thread.join(timeout=10)
    seen = len(got)
    os.close(write_fd)  # lets a reader that waited for a full chunk finish
    reader_thread.join()
    assert seen == 5


class Dribble(io.RawIOBase):
    """A stream that hands out at most `step` bytes per read, as a slow socket would."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._step if size < 0 else min(size, self._step)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk


@pytest.mark.parametrize("step", [1, 5, 64])
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_short_reads_give_the_same_frames(kind: str, step: int) -> None:
    data = small_pcap() if kind == "pcap" else small_pcapng()
    assert list(read_frames(Dribble(data, step))) == read(data)[1]


def test_read_error_becomes_capture_error() -> None:
    class Failing(io.RawIOBase):
        calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 1:
                raise OSError(5, "Input/output error")
            return small_pcap()[:30]

    reader = read_frames(Failing(), "disk.pcap")
    with pytest.raises(CaptureError, match="cannot read disk.pcap: Input/output error"):
        list(reader)


def test_read_frames_says_why_a_file_cannot_be_opened(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pcap"
    with pytest.raises(CaptureError, match="^cannot open: No such file or directory$"):
        read_frames(str(missing))
