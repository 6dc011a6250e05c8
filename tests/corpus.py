"""Where the public captures live: ../shared/pcaps-public beside the project, if present."""

from __future__ import annotations

from pathlib import Path

import pytest

PUBLIC = Path(__file__).resolve().parents[1].parent / "shared" / "pcaps-public"
PROJECT_PCAPS = Path(__file__).resolve().parents[1] / "pcaps"


def public(name: str) -> Path:
    """A capture of the public corpus; skips the test when ../shared is absent."""
    path = PUBLIC / name
    if not path.exists():
        pytest.skip(f"public corpus not found at {PUBLIC}")
    return path
