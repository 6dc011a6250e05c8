"""`read` in a real terminal: tmux at 80 columns, driven with send-keys and read with
capture-pane (issue 14). tmux comes from Debian (tools/run-tests installs it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import seeds as S  # fuzz/seeds.py: capture builders
from corpus import public

RSTDIAG = shutil.which("rstdiag") or ""
pytestmark = pytest.mark.skipif(not (RSTDIAG and shutil.which("tmux")),
                                reason="needs tmux and an installed rstdiag")
ROW = re.compile(r"^\s*\d+ \d\d:\d\d:\d\d ")  # frame, time: a RST's row


SESSION = "rstdiag"


def tmux(server: str, command: str, *args: str) -> str:
    """One tmux command aimed at the session, on the test's own server (its socket)."""
    return subprocess.run(["tmux", "-S", server, command, "-t", SESSION, *args],
                          capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[str]:
    """A detached tmux session of 80x40 running a plain shell, on a server of its own whose
    socket is in the test's folder; the server's socket path stands for the terminal.

    On one server shared by the tests, the previous test's kill-session ends the server, and
    a session started while it exits fails with "server exited unexpectedly"."""
    server = str(tmp_path / "tmux.sock")
    env = {**os.environ, "PS1": "$ ", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    env.pop("TMUX", None)
    subprocess.run(["tmux", "-S", server, "-f", "/dev/null", "new-session", "-d", "-s", SESSION,
                    "-x", "80", "-y", "40", "bash --norc --noprofile"],
                   check=True, env=env, timeout=30)
    tmux(server, "set-option", "history-limit", "5000")
    try:
        yield server
    finally:
        subprocess.run(["tmux", "-S", server, "kill-server"], capture_output=True, timeout=30)


def wait_for(terminal: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screen = tmux(terminal, "capture-pane", "-p", "-J", "-S", "-")
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared:\n{screen}")


def test_the_tripwire_capture_at_80_columns_is_one_line_per_distinct_rst(terminal: str) -> None:
    path = public("censorship-detection__tripwire-1597963966.pcap")
    tmux(terminal, "send-keys", f"{RSTDIAG} read --no-pager {path}; echo END-$?", "Enter")
    screen = wait_for(terminal, "END-0")
    raw = tmux(terminal, "capture-pane", "-p", "-S", "-")  # no -J: a wrapped row splits
    rows = [line for line in raw.splitlines() if ROW.match(line)]
    assert len(rows) == 265
    assert all("104.17.210.9:" in line and "123.206.27.192:" in line for line in rows)
    assert all(re.search(r" (hi|med|lo)$", line) for line in rows)  # no row wrapped
    assert "265 RSTs by cause" in screen


def test_the_pager_opens_on_a_long_table_and_quits(terminal: str) -> None:
    path = public("censorship-detection__tripwire-1597963966.pcap")
    env_less = "PAGER=less LESS=FRX"
    tmux(terminal, "send-keys", f"{env_less} {RSTDIAG} read {path}; echo END-$?", "Enter")
    screen = wait_for(terminal, "TCP resets")
    time.sleep(0.5)
    screen = tmux(terminal, "capture-pane", "-p")
    assert "END-" not in screen  # less holds the screen: the command has not ended
    assert "265 RSTs by cause" not in screen  # the first page only
    tmux(terminal, "send-keys", "q")
    wait_for(terminal, "END-0")


def test_a_big_file_draws_a_progress_bar_on_stderr_while_it_is_read(terminal: str,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "bulk.pcap"
    path.write_bytes(S.pcap(S.bulk_transfer(46_000), S.RAW))  # 70 MB: past the bar's 64 MiB
    log = tmp_path / "pane.log"  # everything drawn, the bar too though it is erased at the end
    tmux(terminal, "pipe-pane", "-o", f"cat > {log}")
    tmux(terminal, "send-keys", f"{RSTDIAG} read --format json {path} > /dev/null; echo END-$?",
         "Enter")
    wait_for(terminal, "END-0")
    drawn = log.read_bytes().decode("utf-8", "replace")
    assert "bulk.pcap" in drawn and "━" in drawn and "/69.7 MB" in drawn
