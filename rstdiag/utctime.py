"""Capture timestamps as UTC text, safe for the absurd times a hostile capture can claim."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(ts: float) -> datetime | None:
    """The moment, or None when it lies outside what datetime can hold (year 1 to 9999)."""
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def utc_text(ts: float, fmt: str = "%H:%M:%S.%f") -> str:
    """`fmt` with microseconds cut to milliseconds; raw seconds when out of range."""
    moment = utc(ts)
    if moment is None:
        return f"{ts:.0f} s"
    text = moment.strftime(fmt)
    return text[:-3] if fmt.endswith("%f") else text
