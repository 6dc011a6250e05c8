"""Verdicts as JSON lines in a file for a log shipper (`rstdiag live --log FILE`), rotated by size.

Rotation works as logging.handlers.RotatingFileHandler does, and as Vector and Fluent Bit
expect: when the next line would take FILE past `max_bytes`, FILE becomes FILE.1 (FILE.1
becomes FILE.2, ..., the oldest beyond `backups` is removed) and a new FILE is started. At most
(backups + 1) x max_bytes on disk, however long rstdiag runs. Every line is flushed at once and
written whole, so a shipper following FILE never reads half a record.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from typing import TextIO

from .labels import Verdict

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
_SUFFIXES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """'10M' -> 10485760; plain bytes or K, M, G (powers of 1024). ValueError if not a size."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = t[-1:] if t[-1:] in _SUFFIXES else ""
    number = t[:-1] if unit else t
    if not number.isdigit():
        raise ValueError(f"{text!r} is not a size: bytes, or a number with K, M or G")
    return int(number) * _SUFFIXES[unit]


def verdict_record(verdict: Verdict, update: bool, host: str | None) -> dict[str, object]:
    """A verdict as `read --format json` gives it, `"update": true` when it replaces an
    earlier one for the same frame, and the host that saw it."""
    out = verdict.to_dict()
    if update:
        out["update"] = True
    if host is not None:
        out["host"] = host
    return out


class RotatingWriter:
    """Appends lines to a file, rotating it by size; OSError from open, write or rename."""

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES,
                 backups: int = DEFAULT_BACKUPS) -> None:
        if backups < 1 or max_bytes < 1:
            raise ValueError("max_bytes and backups must be at least 1")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.rotations = 0
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self._size = self._file.tell()

    def write(self, line: str) -> None:
        """Write one line (without its newline)."""
        data = line + "\n"
        size = len(data.encode("utf-8"))
        if self._size and self._size + size > self.max_bytes:
            self._rotate()
        self._file.write(data)
        self._file.flush()
        self._size += size

    def _rotate(self) -> None:
        self._file.close()
        for n in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{n}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{n + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._size = 0
        self.rotations += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


class VerdictLog:
    """The --log sink: one JSON object per published verdict.

    A write that fails later (disk full, file removed with its directory) is reported once
    through `warn` and logging stops; the capture, view and metrics go on.
    """

    def __init__(self, writer: RotatingWriter, host: str | None,
                 warn: Callable[[str], None]) -> None:
        self.writer = writer
        self.host = host
        self.warn = warn
        self.failed = False

    def verdict(self, verdict: Verdict, update: bool) -> None:
        if self.failed:
            return
        try:
            self.writer.write(json.dumps(verdict_record(verdict, update, self.host)))
        except OSError as exc:
            self.failed = True
            self.warn(f"{self.writer.path}: cannot write the log ({exc.strerror or exc}); "
                      "logging stopped, the capture goes on")

    def close(self) -> None:
        self.writer.close()
