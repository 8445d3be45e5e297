"""The request log's five-minute roll-ups, which the writer adds to in the same transaction as
it inserts a batch, so that a chart or a statistic reads a few rows per slot instead of every
record:

- ``request_rollup`` (migration 0002): requests, errors, TTFT and spend per slot, route,
  provider and model (requests only), for the time series;
- ``request_stats`` and ``request_histogram`` (migration 0004): per slot, provider and model
  (every attempt, as ``/api/models/stats`` counts), the sums ``stats.summarise`` needs per
  outcome, and the TTFT and latency of successful calls as histograms of log-spaced bins
  (each ``BIN_RATIO`` times as wide as the last), from which percentiles are read within
  half a bin (about 5 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .records import COLUMNS

__all__ = [
    "BIN_RATIO",
    "SLOT",
    "bin_of",
    "bin_value",
    "histogram_rows",
    "rollup_rows",
    "stats_rows",
    "stats_upsert_sql",
    "upsert_sql",
]

SLOT = 300
"""Seconds per roll-up slot; a series bucket that is a multiple of it reads the roll-up."""

_TS, _ROUTE, _PROVIDER, _MODEL, _STATUS, _TTFT, _COST, _ATTEMPT = (
    COLUMNS.index(c)
    for c in ("ts", "route", "provider", "model", "status", "ttft", "cost", "attempt")
)
_ERROR, _LATENCY, _OUTPUT = (COLUMNS.index(c) for c in ("error", "latency", "output_tokens"))

BIN_RATIO = 1.1
_LOG_RATIO = math.log(BIN_RATIO)
_FLOOR = 1e-4  # seconds: anything faster shares the lowest bin
TTFT, LATENCY = 0, 1
"""The ``metric`` of a histogram row."""


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


def bin_of(seconds: float) -> int:
    """The histogram bin of a duration: ``floor(log(seconds) / log(BIN_RATIO))``."""
    return math.floor(math.log(max(seconds, _FLOOR)) / _LOG_RATIO)


def bin_value(b: int) -> float:
    """A bin's representative duration: the geometric middle of its edges."""
    return float(BIN_RATIO ** (b + 0.5))


def stats_rows(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Request-log rows (``records.COLUMNS`` order), every attempt's included, summed per slot,
    provider, model and outcome (``""`` for success, else the error class or ``HTTP nnn``):
    ``(slot, provider, model, error, requests, output_tokens, ok_tokens, gen_time, spend,
    spend_n)``, where ``ok_tokens`` and ``gen_time`` are the output tokens and generation
    time of successful calls with a latency (as ``stats.summarise`` counts them)."""
    sums: dict[tuple[int, str, str, str], list[float]] = {}
    for row in rows:
        status = row[_STATUS]
        outcome = "" if status < 400 else (row[_ERROR] or f"HTTP {status}")
        key = (math.floor(row[_TS] / SLOT), row[_PROVIDER] or "", row[_MODEL] or "", outcome)
        acc = sums.setdefault(key, [0, 0, 0, 0.0, 0.0, 0])
        acc[0] += 1
        acc[1] += row[_OUTPUT] or 0
        latency, ttft = row[_LATENCY], row[_TTFT]
        if status < 400 and latency:
            acc[2] += row[_OUTPUT] or 0
            acc[3] += latency - ttft if ttft is not None and latency > ttft else latency
        if row[_COST] is not None:
            acc[4] += row[_COST]
            acc[5] += 1
    return [(*k, int(a[0]), int(a[1]), int(a[2]), a[3], a[4], int(a[5])) for k, a in sums.items()]


def histogram_rows(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The TTFT and latency of successful calls (every attempt's record) counted per slot,
    provider, model, metric and bin: ``(slot, provider, model, metric, bin, n)``."""
    counts: dict[tuple[int, str, str, int, int], int] = {}
    for row in rows:
        if row[_STATUS] >= 400:
            continue
        slot, provider, model = math.floor(row[_TS] / SLOT), row[_PROVIDER] or "", row[_MODEL] or ""
        for metric, value in ((TTFT, row[_TTFT]), (LATENCY, row[_LATENCY])):
            if value is not None:
                key = (slot, provider, model, metric, bin_of(value))
                counts[key] = counts.get(key, 0) + 1
    return [(*k, n) for k, n in counts.items()]


def stats_upsert_sql(mark: str) -> tuple[str, str]:
    """Add a batch's ``stats_rows`` and ``histogram_rows`` to their tables."""
    sums = ("requests", "output_tokens", "ok_tokens", "gen_time", "spend", "spend_n")
    stats = (
        "INSERT INTO request_stats (slot, provider, model, error, " + ", ".join(sums) + ") "
        f"VALUES ({', '.join([mark] * 10)}) "
        "ON CONFLICT (slot, provider, model, error) DO UPDATE SET "
        + ", ".join(f"{c} = request_stats.{c} + excluded.{c}" for c in sums)
    )
    histogram = (
        "INSERT INTO request_histogram (slot, provider, model, metric, bin, n) "
        f"VALUES ({', '.join([mark] * 6)}) "
        "ON CONFLICT (slot, provider, model, metric, bin) DO UPDATE SET "
        "n = request_histogram.n + excluded.n"
    )
    return stats, histogram
