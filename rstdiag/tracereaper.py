"""The reaper of a tracing instance: `python -m rstdiag.tracereaper INSTANCE LOCKFILE FD`.

Started by kernel_reasons.ResetTracer while still privileged, sharing the instance's lock
(file descriptor FD). It waits until its standard input closes, which happens when rstdiag
closes it or exits in any way (SIGKILL included), then disables the event, removes the
instance and its lock file, and exits. It reads nothing else and serves nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C is rstdiag's
    path, lock_path = Path(argv[1]), Path(argv[2])
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    from .kernel_reasons import remove_instance

    remove_instance(path)
    with contextlib.suppress(OSError):
        lock_path.unlink()
    return 0 if not path.exists() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
