"""The live pipeline fed from a capture file in the capture's own time, as `rstdiag live`
would have seen it: shared by the tests of live mode and of its metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rstdiag.frames import read_frames
from rstdiag.labels import Verdict
from rstdiag.live import TICK, Pipeline


def replay(path: Path, on_final: Callable[[Verdict], None] | None = None
           ) -> tuple[list[tuple[dict[str, object], float]], Pipeline]:
    """Feed a capture through the live pipeline in the capture's own time, ticking as
    `rstdiag live` does, then 6 quiet seconds and the end. Returns each published object (as
    the jsonl output writes it) with the clock when it was published; `on_final` is the
    pipeline's, called once per RST with its final verdict."""
    frames = list(read_frames(str(path)))
    now = [frames[0].ts]
    out: list[tuple[dict[str, object], float]] = []

    def publish(v, update: bool) -> None:  # type: ignore[no-untyped-def]
        d = v.to_dict()
        if update:
            d["update"] = True
        out.append((d, now[0]))

    pipe = Pipeline(path.name, frames[0].linktype, publish, clock=lambda: now[0],
                    on_final=on_final)
    tick = now[0] + TICK
    for raw in frames:
        quiet = 0
        while raw.ts >= tick:
            now[0] = tick
            pipe.tick(tick, tick)
            tick += TICK
            quiet += 1
            if quiet > 60 and raw.ts - tick > 20:  # a long silence: skip to its last seconds
                tick, quiet = raw.ts - 20, 0
        now[0] = raw.ts
        pipe.linktype = raw.linktype  # pcapng: interfaces of several link types
        sec = int(raw.ts)
        pipe.packet(sec, round((raw.ts - sec) * 1e9), raw.data, raw.wirelen)
    for _ in range(int(6 / TICK)):
        now[0] = tick
        pipe.tick(tick, tick)
        tick += TICK
    pipe.finish()
    return out, pipe


def latest(objects: list[dict[str, object]]) -> dict[int, dict[str, object]]:
    """The last object published for each frame: what a reader of the stream ends up with."""
    last: dict[int, dict[str, object]] = {}
    for d in objects:
        if "frame" in d:
            last[d["frame"]] = {k: v for k, v in d.items() if k != "update"}  # type: ignore[index]
    return last
