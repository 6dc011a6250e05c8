"""Errors the core raises and the exit statuses the CLI maps them to."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Every exit status rstdiag uses; documented in the README and in --help."""

    OK = 0  # ran to the end (read, live) or the check passed
    FINDINGS = 1  # check: more RSTs with failing labels than --max allows
    ERROR = 2  # usage error, unreadable or invalid capture, missing interface or privilege
    INTERRUPTED = 130  # stopped by SIGINT/SIGTERM before the end (the summary is still printed)


class RstdiagError(Exception):
    """An error a user can act on: the message is the one line printed on stderr."""


class CaptureError(RstdiagError):
    """A capture file that cannot be read (bad magic, corrupt header, unsupported link type).

    `offset` is the byte offset of the fault in the file where known.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class EngineFault(RstdiagError):
    """The engine stopped on an internal error (a bug, caught at its boundary).

    `report` holds what was read before it, to be reported like any other."""

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report
