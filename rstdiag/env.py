"""The process environment, wrapped so that the core and renderers never touch sys.*."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from .textsafe import visible


@dataclass(slots=True)
class Environment:
    stdin: BinaryIO
    stdout: TextIO
    stderr: TextIO
    stdout_isatty: bool
    stderr_isatty: bool
    environ: Mapping[str, str] = field(default_factory=dict)  # NO_COLOR, FORCE_COLOR, PAGER

    @classmethod
    def from_system(cls) -> Environment:
        return cls(
            stdin=sys.stdin.buffer,
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdout_isatty=sys.stdout.isatty(),
            stderr_isatty=sys.stderr.isatty(),
            environ=dict(os.environ),
        )

    def color(self, flag: bool | None) -> bool:
        """--color/--no-color if given; else NO_COLOR (no colour) and FORCE_COLOR (colour)
        as no-color.org and force-color.org say; else colour on a terminal."""
        if flag is not None:
            return flag
        if self.environ.get("NO_COLOR"):
            return False
        if self.environ.get("FORCE_COLOR"):
            return True
        return self.stdout_isatty

    def error(self, message: str) -> None:
        """One line on stderr: how every failure a user can act on is reported."""
        print(f"rstdiag: error: {visible(message)}", file=self.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(f"rstdiag: warning: {visible(message)}", file=self.stderr, flush=True)


def leave_interrupts_to_parent() -> None:
    """For forked worker processes: Ctrl-C is the parent's to handle, and the SIGTERM it stops
    them with takes its default action (not the KeyboardInterrupt the command line maps
    it to, which would print a worker's traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
