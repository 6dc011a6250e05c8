"""Shared fixtures: the real-kernel lab (tests/netlab.py), skipped where it cannot run."""

from __future__ import annotations

import pytest
from netlab import netns_unavailable


@pytest.fixture(scope="session")
def requires_netns() -> None:
    """Skip unless this host can build namespace labs (root, ip netns, tcpdump, nft)."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
