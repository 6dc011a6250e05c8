"""What a summary needs of a stream of verdicts, and nothing more: counts, not the verdicts.

Distinct RSTs and identical copies (`duplicate_of` set: the same packet seen twice, as on an
`any` capture) are counted apart, the same way by every renderer and by `check`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .labels import Label, Verdict

# Times outside these bounds are a capture's damage (a year 586,000 stamp), not a moment.
PLAUSIBLE_TS = (0.0, 4102444800.0)  # 1970-01-01 to 2100-01-01 UTC


def plausible(ts: float | None) -> bool:
    return ts is not None and PLAUSIBLE_TS[0] <= ts < PLAUSIBLE_TS[1]


def by_label(counts: Counter[Label]) -> dict[str, int]:
    """Counts by label in taxonomy order, labels with none left out."""
    return {str(label): counts[label] for label in Label if counts[label]}


@dataclass(slots=True)
class Tally:
    """RSTs counted by cause, distinct and copies apart, with the per-second points of a
    timeline (distinct RSTs only) and the RSTs whose time is impossible."""

    distinct: Counter[Label] = field(default_factory=Counter)
    copies: Counter[Label] = field(default_factory=Counter)
    points: Counter[tuple[int, Label]] = field(default_factory=Counter)
    impossible_ts: int = 0

    def add(self, v: Verdict) -> None:
        if v.duplicate_of is not None:
            self.copies[v.label] += 1
            return
        self.distinct[v.label] += 1
        if plausible(v.ts):
            self.points[(int(v.ts), v.label)] += 1
        else:
            self.impossible_ts += 1

    def add_counts(self, counts: list[tuple[str, int, int]]) -> None:
        """A batch's (label, distinct, copies) counts, without its verdicts (Lines): the
        output they go to has no timeline, so they add no points."""
        for label, distinct, copies in counts:
            self.distinct[Label(label)] += distinct
            self.copies[Label(label)] += copies

    @property
    def rsts(self) -> int:
        return self.distinct.total()

    @property
    def copy_count(self) -> int:
        return self.copies.total()

    def summary(self) -> dict[str, int]:
        """Distinct RSTs by cause: the "summary" of the JSON document."""
        return by_label(self.distinct)

    def copies_summary(self) -> dict[str, int]:
        return by_label(self.copies)

    def timeline_points(self) -> list[tuple[float, Label, int]]:
        return [(float(second), label, n) for (second, label), n in self.points.items()]
