"""The request log's five-minute roll-ups (table ``request_rollup``, migration 0002): what the
writer adds per batch, so that a time series reads one row per slot instead of every record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .records import COLUMNS

__all__ = ["SLOT", "rollup_rows", "upsert_sql"]

SLOT = 300
"""Seconds per roll-up slot; a series bucket that is a multiple of it reads the roll-up."""

_TS, _ROUTE, _PROVIDER, _MODEL, _STATUS, _TTFT, _COST, _ATTEMPT = (
    COLUMNS.index(c)
    for c in ("ts", "route", "provider", "model", "status", "ttft", "cost", "attempt")
)


def rollup_rows(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Request-log rows (``records.COLUMNS`` order) summed per slot and route, provider and
    model: ``(slot, route, provider, model, requests, errors, ttft_sum, ttft_n, spend)``.
    Requests only: the records of failed attempts are left out."""
    sums: dict[tuple[int, str, str, str], list[float]] = {}
    for row in rows:
        if row[_ATTEMPT] is not None:
            continue
        key = (
            math.floor(row[_TS] / SLOT),
            row[_ROUTE] or "",
            row[_PROVIDER] or "",
            row[_MODEL] or "",
        )
        acc = sums.setdefault(key, [0, 0, 0.0, 0, 0.0])
        acc[0] += 1
        if row[_STATUS] >= 400:
            acc[1] += 1
        elif row[_TTFT] is not None:
            acc[2] += row[_TTFT]
            acc[3] += 1
        acc[4] += row[_COST] or 0.0
    return [(*k, int(a[0]), int(a[1]), a[2], int(a[3]), a[4]) for k, a in sums.items()]


def upsert_sql(mark: str) -> str:
    """Add a batch's sums to the roll-up (``mark``: the driver's placeholder)."""
    add = ", ".join(
        f"{c} = request_rollup.{c} + excluded.{c}"
        for c in ("requests", "errors", "ttft_sum", "ttft_n", "spend")
    )
    return (
        "INSERT INTO request_rollup "
        "(slot, route, provider, model, requests, errors, ttft_sum, ttft_n, spend) "
        f"VALUES ({', '.join([mark] * 9)}) "
        f"ON CONFLICT (slot, route, provider, model) DO UPDATE SET {add}"
    )
