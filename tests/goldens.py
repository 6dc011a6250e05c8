"""The golden reports: every capture the tests use, as the engine reported it when frozen.

The Rust engine was checked against these verdict for verdict when it replaced the Python one;
they stay as the specification of what `read` answers. A report here is the file's counters
and every RST's verdict (the "file" field left out: paths differ between checkouts; and
"community_id", a hash of the endpoints already there), or the
one-line error of an unreadable capture.

    python tests/goldens.py --write     # freeze today's answers (after a change made on purpose)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GOLDEN = HERE / "golden"
PUBLIC = ROOT.parent / "shared" / "pcaps-public"
GENERATOR = ROOT.parent / "shared" / "tools" / "gen_bigpcap.py"
PROJECT = ROOT / "pcaps"

# Generated captures: (name, generator options, flow-table cap). 100,000 packets cross a sweep
# of the flow table; the cap of 500 makes it evict.
GENERATED = (
    ("gen-100k", ["-n", "100000", "--flows", "3000", "--seed", "7"], None),
    ("gen-100k-snap96", ["-n", "100000", "--flows", "3000", "--seed", "7", "--snaplen", "96"],
     None),
    ("gen-100k-cap500", ["-n", "100000", "--flows", "3000", "--seed", "7"], 500),
    ("gen-60k-v6", ["-n", "60000", "--flows", "800", "--seed", "3", "--v6-frac", "0.5",
                    "--pps", "200"], None),
)


def project_captures() -> list[Path]:
    return sorted(p for p in PROJECT.iterdir() if p.suffix in (".pcap", ".pcapng"))


def public_captures() -> list[Path]:
    if not PUBLIC.is_dir():
        return []
    return sorted(p for p in PUBLIC.iterdir() if p.suffix in (".pcap", ".pcapng"))


def seed_captures() -> dict[str, bytes]:
    sys.path.insert(0, str(ROOT / "fuzz"))
    from seeds import seeds

    return seeds()


def generate(name: str, options: list[str], folder: Path) -> Path:
    path = folder / f"{name}.pcap"
    if not path.exists():
        subprocess.run([sys.executable, str(GENERATOR), "-o", str(path), *options],
                       check=True, capture_output=True)
    return path


def report_of(path: Path | str, max_flows: int | None = None) -> dict[str, object]:
    """What the golden file holds for one capture, from today's engine."""
    from rstdiag.analysis import analyze_file
    from rstdiag.errors import CaptureError

    try:
        report = analyze_file(str(path), max_flows)
    except CaptureError as exc:
        return {"error": str(exc)}
    head = report.to_dict()
    del head["path"]
    rsts = []
    for verdict in report.verdicts:
        record = verdict.to_dict()
        del record["file"]
        del record["community_id"]  # derived from the endpoints frozen beside it
        rsts.append(record)
    return {"file": head, "rsts": rsts}


def golden_path(group: str, name: str) -> Path:
    return GOLDEN / group / f"{name}.json"


def cases(tmp: Path) -> Iterator[tuple[str, str, Path, int | None]]:
    """(group, name, capture path, flow-table cap) of every golden case available here."""
    for path in project_captures():
        yield "project", path.name, path, None
    for name, data in sorted(seed_captures().items()):
        path = tmp / name
        path.write_bytes(data)
        yield "seeds", name, path, None
    for path in public_captures():
        yield "public", path.name, path, None
    if GENERATOR.exists():
        for name, options, cap in GENERATED:
            base = name if cap is None else name.rsplit("-cap", 1)[0]
            yield "generated", name, generate(base, options, tmp), cap


def write_all() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for group, name, path, cap in cases(Path(tmp)):
            target = golden_path(group, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "w") as out:
                json.dump(report_of(path, cap), out, indent=1, sort_keys=True)
                out.write("\n")
            print(target.relative_to(ROOT))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    write_all()
