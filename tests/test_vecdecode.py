"""The chunk decoder and the record walker agree with rstdiag.pcapfile and rstdiag.decode,
record by record, on every classic pcap the tests have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from corpus import PROJECT_PCAPS, PUBLIC
from test_twopass import classic_pcaps

from rstdiag.decode import Decoder
from rstdiag.pcapfile import PCAP_HEADER_LEN, open_capture, pcap_layout
from rstdiag.pcapwalk import RecordWalker
from rstdiag.vecdecode import canonical_keys, decode_chunk, packet_key, plain_packets

CAPTURES = classic_pcaps(PROJECT_PCAPS) + (classic_pcaps(PUBLIC) if PUBLIC.exists() else [])


def chunks(path: Path):  # type: ignore[no-untyped-def]
    with path.open("rb") as stream:
        endian, scale, linktype = pcap_layout(stream.read(PCAP_HEADER_LEN)) or ("", 0.0, 0)
        walker = RecordWalker(stream, endian, chunk_bytes=1)  # the smallest chunks there are
        for chunk in walker.walk():
            rows = decode_chunk(chunk.data, chunk.size, chunk.offsets,
                                little_endian=endian == "<", scale=scale, linktype=linktype)
            yield chunk, rows
        walker.close()


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_plain_records_decode_as_the_simple_decoder_decodes_them(path: Path) -> None:
    reader, stream = open_capture(str(path))
    with stream:
        expected = [Decoder().decode(raw) for raw in reader]
    got: list[object] = []
    for chunk, rows in chunks(path):
        plain = np.flatnonzero(rows.plain)
        made = dict(zip(plain.tolist(), plain_packets(chunk.data, chunk.size, chunk.offsets,
                                                      rows, plain, chunk.first_frame),
                        strict=True))
        for i in range(len(rows.ts)):
            got.append(made.get(i, "not plain"))
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        if mine not in ("not plain", None):  # None: left to the decoder (MPTCP, RST payload)
            assert mine == theirs


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_flow_keys_and_timestamps_match_the_decoded_packets(path: Path) -> None:
    reader, stream = open_capture(str(path))
    with stream:
        frames = list(reader)
    decoder = Decoder()
    row = 0
    for _chunk, rows in chunks(path):
        keys = list(zip(*(column.tolist() for column in canonical_keys(rows)), strict=True))
        for i in range(len(rows.ts)):
            raw = frames[row]
            row += 1
            assert rows.ts[i] == raw.ts
            pkt = decoder.decode(raw)
            if rows.plain[i]:
                assert pkt is not None
                assert keys[i] == packet_key(pkt.version, pkt.src, pkt.sport, pkt.dst,
                                             pkt.dport)
                assert int(rows.flags[i]) == pkt.flags and int(rows.ttl[i]) == pkt.ttl
    assert row == len(frames)
