"""The process environment, wrapped so that the core and renderers never touch sys.*."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from typing import BinaryIO, TextIO


@dataclass(slots=True)
class Environment:
    stdin: BinaryIO
    stdout: TextIO
    stderr: TextIO
    stdout_isatty: bool
    stderr_isatty: bool

    @classmethod
    def from_system(cls) -> Environment:
        return cls(
            stdin=sys.stdin.buffer,
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdout_isatty=sys.stdout.isatty(),
            stderr_isatty=sys.stderr.isatty(),
        )

    def error(self, message: str) -> None:
        """One line on stderr: how every failure a user can act on is reported."""
        print(f"rstdiag: error: {message}", file=self.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(f"rstdiag: warning: {message}", file=self.stderr, flush=True)


def leave_interrupts_to_parent() -> None:
    """For forked worker processes: Ctrl-C is the parent's to handle, and the SIGTERM it stops
    them with takes its default action (not the KeyboardInterrupt the command line maps
    it to, which would print a worker's traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
