"""Ctrl-C and SIGTERM at any moment: status 130 with what was read, never click's
`Aborted!` and status 1, and an interrupted check never says PASS (issue 16.5)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpus import public

RSTDIAG = shutil.which("rstdiag") or ""
pytestmark = pytest.mark.skipif(not RSTDIAG, reason="rstdiag is not installed")


def catches_sigterm(pid: int) -> bool:
    """Has the process set its own SIGTERM handler yet (SigCgt in /proc/PID/status)?"""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines()
                if line.startswith("SigCgt:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.1, 0.25, 0.5])
def test_sigterm_in_the_first_half_second_is_status_130_without_aborted(
        delay: float, tmp_path: Path) -> None:
    """From the moment rstdiag handles SIGTERM (before it, while Python starts, the signal
    kills it as it would any program), through option parsing, imports and reading (a FIFO
    kept open: the read never ends by itself)."""
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([RSTDIAG, "read", "--format", "json", str(fifo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(fifo, "wb") as writer:
        writer.write(public("zeek__dhe.pcap").read_bytes())
        writer.flush()
        while not catches_sigterm(proc.pid) and proc.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert "Aborted" not in err and "Traceback" not in err
    assert proc.returncode == 130, err


def test_an_interrupted_check_says_so_with_status_130(tmp_path: Path) -> None:
    data = public("censorship-detection__tripwire-1597963966.pcap").read_bytes()
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([RSTDIAG, "check", "--fail-on", "closed-port", str(fifo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(fifo, "wb") as writer:
        writer.write(data)  # no RST of a failing cause, but the pipe stays open: not the end
        writer.flush()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "PASS" not in out
    assert out.startswith("INTERRUPTED: interrupted before the end; so far no RSTs with "
                          "failing causes")


def test_an_interrupted_check_in_json_is_not_passed(tmp_path: Path) -> None:
    import json

    data = public("zeek__dhe.pcap").read_bytes()
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([RSTDIAG, "check", "--format", "json", "--fail-on", "injected",
                             str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, "wb") as writer:
        writer.write(data)
        writer.flush()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    check = json.loads(out)["check"]
    assert check["passed"] is False and check["interrupted"] is True



def test_an_interrupted_read_of_two_fifos_at_once_ends_though_both_stay_open(
        tmp_path: Path) -> None:
    """`read -j 2` of two FIFOs whose writers keep them open: each worker waits in the engine
    for data that never comes. Ctrl-C stops both engines, not only their next batch, and the
    process ends at once with status 130 and the summary (a worker left waiting would hold the
    process for the 5 s rstdiag gives its workers, then run into the interpreter's shutdown)."""
    fifos = [tmp_path / "a.fifo", tmp_path / "b.fifo"]
    for fifo in fifos:
        os.mkfifo(fifo)
    proc = subprocess.Popen([RSTDIAG, "read", "-q", "-j", "2", *map(str, fifos)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writers = [open(fifo, "wb") for fifo in fifos]  # noqa: SIM115 - closed below
    try:
        for writer in writers:
            writer.write(public("zeek__dhe.pcap").read_bytes())
            writer.flush()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=4)
    finally:
        for writer in writers:
            writer.close()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err and "FATAL" not in err


LATE_IMPORT = """
import os, signal, sys
from rstdiag import cli

signal.signal(signal.SIGTERM, cli._sigterm_as_interrupt)
sys.path.insert(0, sys.argv[1])
try:
    import signalled  # SIGTERM arrives while this module loads
    print("imported", signalled.DONE)
    signal.pause()  # the interrupt, once the import is done
except KeyboardInterrupt:
    print("interrupted")
"""


def test_sigterm_during_an_import_interrupts_once_the_import_is_done(tmp_path: Path) -> None:
    """`read` loads its modules lazily: a SIGTERM raised as KeyboardInterrupt inside the
    import machinery came out wrapped (RuntimeError: Error calling __set_name__) or printed as
    ignored and lost (a module lock's callback), with a traceback. It waits for the import."""
    (tmp_path / "signalled.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nDONE = True\n")
    done = subprocess.run([sys.executable, "-c", LATE_IMPORT, str(tmp_path)],
                          capture_output=True, text=True, timeout=30)
    assert (done.stdout, done.stderr) == ("imported True\ninterrupted\n", "")
