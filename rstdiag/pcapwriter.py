"""A streaming pcap writer: the file is a valid capture at every moment.

The header is written and flushed when the file is opened; records are buffered whole and
written whole (by `flush`, which the caller runs a few times a second, and at close), so a
file cut short by Ctrl-C, a kill or a full disk ends at a record boundary: tcpdump, tshark,
Wireshark and `rstdiag read` read it to its last record.
"""

from __future__ import annotations

import struct

NANO_MAGIC = 0xA1B23C4D  # nanosecond timestamps: the kernel gives them, so keep them
_HEADER = struct.Struct("=IHHiIII")
_RECORD = struct.Struct("=IIII")
FLUSH_BYTES = 1 << 20


class PcapWriter:
    """Classic pcap, host byte order, nanosecond timestamps."""

    def __init__(self, path: str, linktype: int, snaplen: int) -> None:
        self.path = path
        self.records = 0
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self._chunks: list[bytes] = []
        self._pending = 0
        self._file.write(_HEADER.pack(NANO_MAGIC, 2, 4, 0, 0, snaplen, linktype))

    def write(self, sec: int, nsec: int, data: bytes, wirelen: int) -> None:
        self._chunks.append(_RECORD.pack(sec, nsec, len(data), wirelen))
        self._chunks.append(data)
        self.records += 1
        self._pending += len(data) + 16
        if self._pending >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._chunks:
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._pending = 0
            view = memoryview(data)
            while view:  # an unbuffered write may take less than all of it
                view = view[self._file.write(view) or 0:]

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()
