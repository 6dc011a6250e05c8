"""Write the fuzzer's seed corpus: the public captures, the project's pcaps/, and seeds.py.

    python fuzz/make_corpus.py [DIR]      # default fuzz/corpus (git-ignored)

Captures longer than --max-len (default 64 KiB, the length the fuzz run uses) are cut there:
a capture cut mid-record is itself a case worth starting from.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PUBLIC = ROOT.parent / "shared" / "pcaps-public"
PROJECT = ROOT / "pcaps"


def captures() -> list[Path]:
    found = []
    for folder in (PUBLIC, PROJECT):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default=str(HERE / "corpus"))
    parser.add_argument("--max-len", type=int, default=65536)
    args = parser.parse_args()
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    from seeds import seeds

    inputs = {path.name: path.read_bytes() for path in captures()}
    inputs.update(seeds())
    written = 0
    for name, data in sorted(inputs.items()):
        data = data[: args.max_len]
        digest = hashlib.sha1(data).hexdigest()[:12]
        (out / f"{Path(name).stem}-{digest}{Path(name).suffix}").write_bytes(data)
        written += 1
    print(f"{written} seeds in {out}")


if __name__ == "__main__":
    main()
