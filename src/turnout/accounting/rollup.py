"""The request log's five-minute roll-ups, which the writer adds to in the same transaction as
it inserts a batch, so that a chart or a statistic reads a few rows per slot instead of every
record:

- ``request_rollup`` (migration 0002): requests, errors, TTFT and spend per slot, route,
  provider and model (requests only), for the time series;
- ``request_stats`` and ``request_histogram`` (migration 0004): per slot, provider and model
  (every attempt, as ``/api/models/stats`` counts), the sums ``stats.summarise`` needs per
  outcome, and the TTFT and latency of successful calls as histograms of log-spaced bins
  (each ``BIN_RATIO`` times as wide as the last), from which percentiles are read within
  half a bin (about 5 %);
- ``request_stats_coarse`` and ``request_histogram_coarse`` (migration 0007): the same sums
  and bins per hour and per day (``WIDTHS``; a ``width`` column says which), folded from the
  five-minute rows the writer adds, so that a week reads a few days, hours and slots rather
  than 2,016 slots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .records import COLUMNS

__all__ = [
    "BIN_RATIO",
    "SLOT",
    "WIDTHS",
    "bin_of",
    "bin_value",
    "coarse_rows",
    "histogram_rows",
    "rollup_rows",
    "stats_rows",
    "stats_upsert_sql",
    "upsert_sql",
]

SLOT = 300
"""Seconds per roll-up slot; a series bucket that is a multiple of it reads the roll-up."""
WIDTHS = (3600, 86400)
"""The coarser levels of ``request_stats`` and ``request_histogram``, in seconds (multiples of
``SLOT``, each a multiple of the last)."""

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


def coarse_rows(rows: Sequence[tuple[Any, ...]], keys: int) -> list[tuple[Any, ...]]:
    """Five-minute rows (``stats_rows`` with ``keys=4``, ``histogram_rows`` with ``keys=5``:
    the slot and the rest of the key first, then the sums) folded into every level of
    ``WIDTHS``: ``(width, slot, *key, *sums)`` with ``slot`` counted in ``width`` seconds."""
    out: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        for width in WIDTHS:
            key = (width, row[0] * SLOT // width, *row[1:keys])
            acc = out.get(key)
            if acc is None:
                out[key] = list(row[keys:])
            else:
                for i, value in enumerate(row[keys:]):
                    acc[i] += value
    return [(*k, *v) for k, v in out.items()]


STATS_SUMS = ("requests", "output_tokens", "ok_tokens", "gen_time", "spend", "spend_n")
STATS_KEY = ("provider", "model", "error")
HISTOGRAM_KEY = ("provider", "model", "metric", "bin")


def stats_upsert_sql(mark: str, *, coarse: bool = False) -> tuple[str, str]:
    """Add a batch's ``stats_rows`` and ``histogram_rows`` to their tables, or with
    ``coarse`` their ``coarse_rows`` to the hourly and daily tables."""
    suffix, lead = ("_coarse", ("width", "slot")) if coarse else ("", ("slot",))

    def upsert(table: str, key: tuple[str, ...], sums: tuple[str, ...]) -> str:
        columns = (*lead, *key, *sums)
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))}) "
            f"ON CONFLICT ({', '.join((*lead, *key))}) DO UPDATE SET "
            + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
        )

    return (
        upsert("request_stats" + suffix, STATS_KEY, STATS_SUMS),
        upsert("request_histogram" + suffix, HISTOGRAM_KEY, ("n",)),
    )
