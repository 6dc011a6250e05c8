"""Every capture the tests use gives the report frozen in tests/golden (see tests/goldens.py):
the same counters, and verdict for verdict the same RSTs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from goldens import (
    GENERATED,
    GENERATOR,
    PUBLIC,
    generate,
    golden_path,
    project_captures,
    public_captures,
    report_of,
    seed_captures,
)


def expected(group: str, name: str) -> dict[str, object]:
    return json.loads(golden_path(group, name).read_text())


def assert_same_report(got: dict[str, object], want: dict[str, object]) -> None:
    assert got.get("error") == want.get("error")
    assert got.get("file") == want.get("file")
    got_rsts, want_rsts = got.get("rsts", []), want.get("rsts", [])
    for mine, theirs in zip(got_rsts, want_rsts, strict=False):  # type: ignore[call-overload]
        assert mine == theirs, f"frame {theirs['frame']}"
    assert len(got_rsts) == len(want_rsts)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", project_captures(), ids=lambda p: p.name)
def test_project_capture_matches_its_golden_report(path: Path) -> None:
    assert_same_report(report_of(path), expected("project", path.name))


@pytest.mark.parametrize("name", sorted(seed_captures()))
def test_seed_capture_matches_its_golden_report(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(seed_captures()[name])
    assert_same_report(report_of(path), expected("seeds", name))


def test_every_public_capture_has_a_golden_report() -> None:
    if not PUBLIC.is_dir():
        pytest.skip(f"public corpus not found at {PUBLIC}")
    frozen = {p.name.removesuffix(".json") for p in golden_path("public", "x").parent.iterdir()}
    assert {p.name for p in public_captures()} == frozen


@pytest.mark.parametrize("name", sorted(p.name for p in public_captures()) or ["(absent)"])
def test_public_capture_matches_its_golden_report(name: str) -> None:
    if not PUBLIC.is_dir():
        pytest.skip(f"public corpus not found at {PUBLIC}")
    assert_same_report(report_of(PUBLIC / name), expected("public", name))


@pytest.mark.parametrize("name,options,cap", GENERATED, ids=[g[0] for g in GENERATED])
def test_generated_capture_matches_its_golden_report(
        name: str, options: list[str], cap: int | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not GENERATOR.exists():
        pytest.skip(f"capture generator not found at {GENERATOR}")
    folder = tmp_path_factory.getbasetemp() / "generated"
    folder.mkdir(exist_ok=True)
    base = name if cap is None else name.rsplit("-cap", 1)[0]
    assert_same_report(report_of(generate(base, options, folder), cap), expected("generated", name))
