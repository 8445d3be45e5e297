"""Budget periods in UTC: the day, the month and all time, named as stored and as Redis keys
(``d:2026-11-22``, ``m:2026-11``, ``total``), with when each resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["PERIODS", "period_name", "period_reset", "periods_of"]

PERIODS = ("daily", "monthly", "total")


def period_name(kind: str, ts: float) -> str:
    if kind == "total":
        return "total"
    at = datetime.fromtimestamp(ts, UTC)
    return f"d:{at:%Y-%m-%d}" if kind == "daily" else f"m:{at:%Y-%m}"


def periods_of(ts: float) -> tuple[str, str, str]:
    """The daily, monthly and total period names a spend at ``ts`` counts towards."""
    return period_name("daily", ts), period_name("monthly", ts), "total"


def period_reset(kind: str, ts: float) -> float | None:
    """UNIX seconds when the period containing ``ts`` ends; None for ``total``."""
    at = datetime.fromtimestamp(ts, UTC)
    if kind == "daily":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return (start + timedelta(days=1)).timestamp()
    if kind == "monthly":
        year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
        return datetime(year, month, 1, tzinfo=UTC).timestamp()
    return None
