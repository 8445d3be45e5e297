"""Bounded reads of the request log for the console and the admin API: a filtered listing,
newest first, paged by cursor; one record; and a bucketed time series.

Every query is bounded by a time window (at most ``stats.MAX_WINDOW``) and a row limit, so a
console left open can never turn into a full scan of a large log. The functions are
synchronous: callers run them in a worker thread, like every other ``Database`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .db import Database
from .records import COLUMNS
from .rollup import (
    HISTOGRAM_KEY,
    SLOT,
    STATS_KEY,
    STATS_SUMS,
    WIDTHS,
    histogram_rows,
    stats_rows,
)
from .stats import COLUMNS as STATS_COLUMNS
from .stats import summarise, summarise_rollup

__all__ = [
    "BUCKETS",
    "LIST_COLUMNS",
    "LogQuery",
    "bucket_for",
    "get_record",
    "list_records",
    "model_stats",
    "series",
    "stats_levels",
    "uses_rollup",
]

CONTENT = ("prompt", "answer")
LIST_COLUMNS = ("id", *(c for c in COLUMNS if c not in CONTENT))
"""A listing's columns: not the prompt and answer text (a page would weigh megabytes)."""
DETAIL_COLUMNS = ("id", *COLUMNS)
MAX_LIMIT = 200
BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
"""Bucket widths in seconds; a series uses the smallest that gives at most ~120 points."""


@dataclass(frozen=True, slots=True)
class LogQuery:
    since: float
    until: float | None = None
    key_id: str | None = None
    route: str | None = None
    provider: str | None = None
    model: str | None = None
    status: str | None = None
    """``ok`` (below 400), ``error`` (400 and up) or one status code."""
    error: str | None = None
    """A substring of the error class."""
    message: str | None = None
    """A substring of the error message (as stored: redacted, at most 500 characters)."""
    before_id: int | None = None
    limit: int = 50


def _where(t: Any, q: LogQuery) -> list[Any]:
    conds = [t.c.ts >= q.since, t.c.attempt.is_(None)]  # requests, not failed attempts
    if q.until is not None:
        conds.append(t.c.ts < q.until)
    for name in ("key_id", "route", "provider", "model"):
        value = getattr(q, name)
        if value:
            conds.append(t.c[name] == value)
    if q.status == "ok":
        conds.append(t.c.status < 400)
    elif q.status == "error":
        conds.append(t.c.status >= 400)
    elif q.status:
        conds.append(t.c.status == int(q.status))
    if q.error:
        conds.append(t.c.error.ilike(_contains(q.error), escape="\\"))
    if q.message:
        conds.append(t.c.error_message.ilike(_contains(q.message), escape="\\"))
    if q.before_id is not None:
        conds.append(t.c.id < q.before_id)
    return conds


def _contains(text: str) -> str:
    """An ILIKE pattern matching ``text`` anywhere, its own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _row(r: Any, columns: tuple[str, ...] = LIST_COLUMNS) -> dict[str, Any]:
    out = dict(zip(columns, r, strict=True))
    out["stream"] = bool(out["stream"])
    return out


def list_records(db: Database, q: LogQuery) -> tuple[list[dict[str, Any]], int | None]:
    """Up to ``q.limit`` records, newest first, and the cursor (an id) of the next page;
    None when this is the last page. Newest first is by id, which grows with insertion and
    is the primary key, so a page is an index range scan from the cursor backwards."""

    def run() -> tuple[list[dict[str, Any]], int | None]:
        from sqlalchemy import and_, select

        t = db.tables()["request_log"]
        limit = max(1, min(q.limit, MAX_LIMIT))
        query = (
            select(*(t.c[c] for c in LIST_COLUMNS))
            .where(and_(*_where(t, q)))
            .order_by(t.c.id.desc())
            .limit(limit + 1)
        )
        with db.engine().connect() as conn:
            rows = [_row(r) for r in conn.execute(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1]["id"] if more else None)

    result: tuple[list[dict[str, Any]], int | None] = db._guard(run)
    return result


def get_record(db: Database, record_id: int) -> dict[str, Any] | None:
    """One record, with ``failed_attempts``: the records of the attempts that failed before
    it (same request id, within a minute of it), in order."""

    def run() -> dict[str, Any] | None:
        from sqlalchemy import select

        t = db.tables()["request_log"]
        cols = [t.c[c] for c in LIST_COLUMNS]
        with db.engine().connect() as conn:
            detail = [t.c[c] for c in DETAIL_COLUMNS]
            row = conn.execute(select(*detail).where(t.c.id == record_id)).first()
            if row is None:
                return None
            out = _row(row, DETAIL_COLUMNS)
            failed: list[dict[str, Any]] = []
            if out["request_id"] and out["attempt"] is None:
                query = (
                    select(*cols)
                    .where(
                        t.c.ts.between(out["ts"] - 60, out["ts"] + 60),
                        t.c.request_id == out["request_id"],
                        t.c.attempt.is_not(None),
                    )
                    .order_by(t.c.attempt)
                )
                failed = [_row(r) for r in conn.execute(query)]
        out["failed_attempts"] = failed
        return out

    result: dict[str, Any] | None = db._guard(run)
    return result


def bucket_for(window: float) -> int:
    """The smallest bucket width giving at most 120 buckets over ``window`` seconds."""
    for width in BUCKETS:
        if window / width <= 120:
            return width
    return BUCKETS[-1]


def uses_rollup(q: LogQuery, bucket: int) -> bool:
    """Whether a series can be read from the five-minute roll-ups: buckets made of whole
    slots, and filters the roll-up keeps (route, provider, model; not the key)."""
    return bucket % SLOT == 0 and q.key_id is None


def series(
    db: Database, q: LogQuery, until: float, bucket: int, *, rollup: bool | None = None
) -> list[dict[str, Any]]:
    """Requests, errors, mean TTFT (successful streamed requests) and spend per bucket of
    ``bucket`` seconds from ``q.since`` to ``until`` (``q``'s filters apply), empty buckets
    included (as zeros), so a chart's x axis is regular. Aggregated in the database: one row
    per bucket comes back, whatever the number of requests. Buckets of whole five-minute
    slots are summed from the roll-ups (the first bucket then counts its whole first slot)
    unless ``rollup`` is False."""
    if rollup is None:
        rollup = uses_rollup(q, bucket)
    found = db._guard(_rolled_up if rollup else _scanned, db, q, until, bucket)
    first, last = int(q.since // bucket), int((until - 1e-9) // bucket)
    out = []
    for s in range(first, last + 1):
        r = found.get(s)
        out.append(
            {
                "ts": s * bucket,
                "requests": int(r[0]) if r else 0,
                "errors": int(r[1] or 0) if r else 0,
                "ttft_avg": round(float(r[2]), 4) if r and r[2] is not None else None,
                "spend_usd": round(float(r[3] or 0.0), 6) if r else 0.0,
            }
        )
    return out


def _rolled_up(db: Database, q: LogQuery, until: float, bucket: int) -> dict[int, tuple]:
    from sqlalchemy import and_, func, select

    r = db.tables()["request_rollup"]
    per = bucket // SLOT
    conds = [r.c.slot >= int(q.since // SLOT), r.c.slot <= int(until // SLOT)]
    for name in ("route", "provider", "model"):
        value = getattr(q, name)
        if value:
            conds.append(r.c[name] == value)
    query = (
        select(
            (r.c.slot // per).label("b"),
            func.sum(r.c.requests),
            func.sum(r.c.errors),
            func.sum(r.c.ttft_sum),
            func.sum(r.c.ttft_n),
            func.sum(r.c.spend),
        )
        .where(and_(*conds))
        .group_by("b")
    )
    with db.engine().connect() as conn:
        return {
            int(row[0]): (row[1], row[2], row[3] / row[4] if row[4] else None, row[5])
            for row in conn.execute(query)
        }


def _scanned(db: Database, q: LogQuery, until: float, bucket: int) -> dict[int, tuple]:
    from sqlalchemy import Integer, and_, case, cast, func, select

    t = db.tables()["request_log"]
    slot: Any
    if db.dialect == "postgresql":
        slot = func.floor(t.c.ts / bucket)
    else:  # SQLite: ts is positive, so truncation is floor
        slot = cast(t.c.ts / bucket, Integer)
    ok = t.c.status < 400
    conds = [*_where(t, q), t.c.ts < until]
    query = (
        select(
            slot.label("slot"),
            func.count(),
            func.sum(case((ok, 0), else_=1)),
            func.avg(case((ok, t.c.ttft), else_=None)),
            func.sum(t.c.cost),
        )
        .where(and_(*conds))
        .group_by("slot")
    )
    with db.engine().connect() as conn:
        return {int(r[0]): tuple(r[1:]) for r in conn.execute(query)}


EXACT_BELOW = 20_000
"""Windows with fewer records than this get exact statistics from the records themselves
(a few tens of milliseconds); larger ones are read from the roll-ups."""


def model_stats(db: Database, since: float, *, exact_below: int = EXACT_BELOW) -> list[dict]:
    """``stats.summarise`` of every record (attempts included) since ``since``: from the
    records when the window holds fewer than ``exact_below``, else from the roll-ups: the
    window's whole days and hours (``request_stats_coarse``, ``request_histogram_coarse``),
    its whole five-minute slots before the first whole hour (``request_stats``,
    ``request_histogram``) and the records of its first, partial slot. Counts, tokens and
    spend are the same either way; roll-up percentiles are within half a histogram bin
    (about 5 %)."""
    sums, histograms, edge = db._guard(_rolled_stats, db, since)
    if sum(int(r[3]) for r in sums) + len(edge) < exact_below:
        return summarise(db.records_since(since, STATS_COLUMNS))
    return summarise_rollup(
        [*sums, *(r[1:] for r in stats_rows(edge))],
        [*histograms, *(r[1:] for r in histogram_rows(edge))],
    )


def stats_levels(first: int) -> list[tuple[int, int, int | None]]:
    """From five-minute slot ``first`` on, the coarsest pieces that tile the time:
    ``(width, from, to)`` slot ranges in that width's slots (``to`` excluded, None for open),
    five-minute slots up to the first whole hour, hours up to the first whole day, then
    days."""
    widths = (SLOT, *WIDTHS)
    out: list[tuple[int, int, int | None]] = []
    lo = first
    for width, coarser in zip(widths, widths[1:], strict=False):
        boundary = -(-(lo * width) // coarser)  # the first coarser slot starting at or after
        out.append((width, lo, boundary * coarser // width))
        lo = boundary
    out.append((widths[-1], lo, None))
    return out


def _rolled_stats(db: Database, since: float) -> tuple[list[tuple], list[tuple], list[tuple]]:
    from sqlalchemy import and_, func, null, select

    first = int(-(-since // SLOT))  # the first slot that starts inside the window
    tables = db.tables()
    t = tables["request_log"]
    queries = []
    for width, lo, hi in stats_levels(first):
        coarse = "_coarse" if width != SLOT else ""
        s, h = tables["request_stats" + coarse], tables["request_histogram" + coarse]
        for table, key, added in ((s, STATS_KEY, STATS_SUMS), (h, HISTOGRAM_KEY, ("n",))):
            conds = [table.c.slot >= lo]
            if hi is not None:
                conds.append(table.c.slot < hi)
            if coarse:
                conds.append(table.c.width == width)
            keys = [table.c[c] for c in key]
            queries.append(
                select(*keys, *(func.sum(table.c[c]) for c in added))
                .where(and_(*conds))
                .group_by(*keys)
            )
    needed = set(STATS_COLUMNS) | {"ts"}
    edge = select(*(t.c[c] if c in needed else null() for c in COLUMNS)).where(
        and_(t.c.ts >= since, t.c.ts < first * SLOT)
    )
    sums: list[tuple] = []
    histograms: list[tuple] = []
    with db.engine().connect() as conn:
        for i, query in enumerate(queries):
            (histograms if i % 2 else sums).extend(tuple(r) for r in conn.execute(query))
        return sums, histograms, [tuple(r) for r in conn.execute(edge)]
