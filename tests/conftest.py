"""Shared fixtures: the real-kernel lab (tests/netlab.py), skipped where it cannot run.

fuzz/ is put on the import path too: its capture builders (fuzz/seeds.py) and the fuzzer's
checks (fuzz/fuzz_read.py) serve the tests as well.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from netlab import netns_unavailable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))


@pytest.fixture(scope="session")
def requires_netns() -> None:
    """Skip unless this host can build namespace labs (root, ip netns, tcpdump, nft)."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)


def pytest_report_header(config: pytest.Config) -> str:
    """One clear line when the public corpus (../shared/pcaps-public) is not there: the
    tests that read it skip."""
    from corpus import PUBLIC

    if PUBLIC.is_dir():
        return f"public captures: {PUBLIC}"
    return (f"public captures not found at {PUBLIC}: the tests that read them skip "
            "(put the corpus's shared/ folder beside the project to run them)")
