"""A capture's frames through the engine's reader and decoder: for scripts, notebooks and the
live tests' replays. `rstdiag.analyze` is what labels the RSTs; this only reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from . import _core
from .errors import CaptureError
from .records import Packet, RawFrame


def packet_of(record: _core.PacketTuple) -> Packet:
    """A packet as the engine hands it over."""
    (frame, ts, version, src, dst, sport, dport, seq, ack, flags, window, length, ttl, ipid,
     payload) = record
    return Packet(frame, ts, version, src, dst, sport, dport, seq, ack, flags, window, length,
                  ttl, ipid, payload)


class CaptureFrames:
    """Iterate a capture's RawFrames once, in file order. `format`, `linktype` (a classic
    pcap's), `warnings` (damage that ended the reading early) and `skipped_frames` (numbered,
    not yielded) as the engine's reader has them."""

    def __init__(self, frames: _core.Frames) -> None:
        self._frames = frames

    @property
    def format(self) -> str:
        return self._frames.format

    @property
    def linktype(self) -> int | None:
        return self._frames.linktype

    @property
    def warnings(self) -> list[str]:
        return self._frames.warnings

    @property
    def skipped_frames(self) -> int:
        return self._frames.skipped_frames

    def decoded(self) -> Iterator[tuple[RawFrame, Packet | None]]:
        """Each frame with its TCP packet (None when it is not one)."""
        try:
            for frame, ts, linktype, data, wirelen, packet in self._frames:
                raw = RawFrame(frame, ts, linktype, data, wirelen)
                yield raw, None if packet is None else packet_of(packet)
        except _core.CaptureError as exc:
            raise CaptureError(str(exc), getattr(exc, "offset", None)) from None

    def __iter__(self) -> Iterator[RawFrame]:
        for raw, _ in self.decoded():
            yield raw


def read_frames(source: str | BinaryIO, name: str = "<stream>") -> CaptureFrames:
    """The frames of a capture file or an open binary stream. Raises CaptureError when it is
    not a capture rstdiag reads."""
    try:
        return CaptureFrames(_core.frames(source, name))
    except _core.CaptureError as exc:
        raise CaptureError(str(exc), getattr(exc, "offset", None)) from None
