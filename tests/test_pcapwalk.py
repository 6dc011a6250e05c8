"""The chunked record walker finds the records rstdiag.pcapfile reads, and no others."""

from __future__ import annotations

from pathlib import Path

import pytest
import seeds  # fuzz/seeds.py, via conftest.py
from corpus import PROJECT_PCAPS

import rstdiag.pcapwalk as pcapwalk
from rstdiag.pcapfile import PCAP_HEADER_LEN, open_capture, pcap_layout
from rstdiag.pcapwalk import NotBulk, RecordWalker

SAMPLE = PROJECT_PCAPS / "accept-overflow-loop.pcap"


def walked(path: Path, chunk_bytes: int = 1, replay: bool = False
           ) -> tuple[list[tuple[int, bytes]], list[str]]:
    """(frame number, record bytes) of every record the walker yields, and its warnings."""
    with path.open("rb") as stream:
        endian = (pcap_layout(stream.read(PCAP_HEADER_LEN)) or ("<",))[0]
        walker = RecordWalker(stream, endian, chunk_bytes)
        records = []
        for chunk in walker.walk():
            records += _records(chunk)
        if replay:
            records = [r for chunk in walker.replay() for r in _records(chunk)]
        walker.close()
    return records, walker.warnings


def _records(chunk: pcapwalk.Chunk) -> list[tuple[int, bytes]]:
    ends = [*chunk.offsets[1:].tolist(), chunk.size]
    return [(chunk.first_frame + i, bytes(chunk.data[start + 16:end]))
            for i, (start, end) in enumerate(zip(chunk.offsets.tolist(), ends, strict=True))]


def expected(path: Path) -> tuple[list[tuple[int, bytes]], list[str]]:
    reader, stream = open_capture(str(path))
    with stream:
        frames = [(raw.frame, raw.data) for raw in reader]
    return frames, reader.warnings


def test_every_record_is_found_once_in_order() -> None:
    assert walked(SAMPLE) == expected(SAMPLE)


def test_chunks_cut_after_a_number_of_records_lose_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pcapwalk, "CHUNK_RECORDS", 3)
    assert walked(SAMPLE) == expected(SAMPLE)


def test_replay_gives_the_records_of_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pcapwalk, "CHUNK_RECORDS", 4)
    assert walked(SAMPLE, replay=True) == expected(SAMPLE)


@pytest.mark.parametrize("cut", [1, 7, 16, 30])
def test_a_cut_off_last_record_gives_the_simple_readers_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int) -> None:
    monkeypatch.setattr(pcapwalk, "CHUNK_RECORDS", 5)
    path = tmp_path / "cut.pcap"
    path.write_bytes(SAMPLE.read_bytes()[:-cut])
    records, warnings = walked(path)
    assert (records, warnings) == expected(path)
    assert warnings and warnings[0].startswith("truncated capture")


def test_a_corrupt_record_length_is_left_to_the_simple_reader(tmp_path: Path) -> None:
    data = bytearray(SAMPLE.read_bytes())
    data[PCAP_HEADER_LEN + 8:PCAP_HEADER_LEN + 12] = (1 << 30).to_bytes(4, "little")
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    with pytest.raises(NotBulk, match="corrupt record header"):
        walked(path)


def walked_blocks(data: bytes, tmp_path: Path) -> list[int]:
    path = tmp_path / "blocks.pcapng"
    path.write_bytes(data)
    with path.open("rb") as stream:
        walker = pcapwalk.BlockWalker(stream, "<", 1)
        frames = [n for chunk in walker.walk() for n in
                  range(chunk.first_frame, chunk.first_frame + len(chunk.offsets))]
        walker.close()
    return frames


def test_every_enhanced_packet_block_is_a_frame(tmp_path: Path) -> None:
    records = seeds.conversation()
    assert walked_blocks(seeds.pcapng(records), tmp_path) == list(range(1, len(records) + 1))


def test_a_pcapng_cut_inside_a_block_is_left_to_the_simple_reader(tmp_path: Path) -> None:
    with pytest.raises(NotBulk, match="ends inside a block"):
        walked_blocks(seeds.pcapng(seeds.conversation())[:-5], tmp_path)


def test_a_packet_before_its_interface_is_left_to_the_simple_reader(tmp_path: Path) -> None:
    ts, frame = seeds.conversation()[0]
    data = seeds.shb() + seeds.epb(0, int(ts * 1e6), frame) + seeds.idb(seeds.ETHERNET)
    with pytest.raises(NotBulk, match="without its interface"):
        walked_blocks(data, tmp_path)


def test_a_block_with_a_wrong_trailing_length_is_left_to_the_simple_reader(
        tmp_path: Path) -> None:
    data = bytearray(seeds.pcapng(seeds.conversation()))
    data[-4:] = (12345).to_bytes(4, "little")
    with pytest.raises(NotBulk, match="damaged"):
        walked_blocks(bytes(data), tmp_path)
