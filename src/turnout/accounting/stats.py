"""Per provider and model figures over a time window, computed from the request log:
requests, success rate, TTFT and latency percentiles, output tokens per second, spend."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import BadRequestError

__all__ = ["COLUMNS", "parse_window", "percentile", "summarise"]

COLUMNS = ("provider", "model", "status", "ttft", "latency", "output_tokens", "cost", "error")

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = 90 * 86400


def parse_window(text: str | None, default: float = 3600) -> float:
    """``"15m"``, ``"1h"``, ``"7d"`` or plain seconds; at most 90 days."""
    if not text:
        return default
    m = _WINDOW.match(text)
    if not m or float(m.group(1)) <= 0:
        raise BadRequestError(
            f"window '{text}' is not a duration such as 900, 15m, 1h or 7d", param="window"
        )
    seconds = float(m.group(1)) * _UNIT[m.group(2)]
    if seconds > MAX_WINDOW:
        raise BadRequestError("window is longer than 90 days", param="window")
    return seconds


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarise(rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows of ``COLUMNS`` to one entry per (provider, model), busiest first.

    Success is a status below 400. TTFT comes from streamed requests; latency and tokens per
    second from successful ones (output tokens over the time after the first token when
    known, else over the whole latency)."""
    groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in rows:
        groups.setdefault((row[0] or "", row[1] or ""), []).append(row)
    out: list[dict[str, Any]] = []
    for (provider, model), items in groups.items():
        ok = [r for r in items if r[2] < 400]
        ttfts = [r[3] for r in ok if r[3] is not None]
        latencies = [r[4] for r in ok if r[4] is not None]
        tokens = sum(r[5] or 0 for r in ok if r[4])
        gen_time = sum(
            (r[4] - r[3]) if r[3] is not None and r[4] > r[3] else r[4] for r in ok if r[4]
        )
        spend = [r[6] for r in items if r[6] is not None]
        by_class: dict[str, int] = {}
        for r in items:
            if r[2] >= 400:
                name = r[7] or f"HTTP {r[2]}"
                by_class[name] = by_class.get(name, 0) + 1
        out.append(
            {
                "provider": provider,
                "model": model,
                "requests": len(items),
                "errors": len(items) - len(ok),
                "errors_by_class": dict(sorted(by_class.items())),
                "success_rate": _r(len(ok) / len(items)),
                "ttft_p50": _r(percentile(ttfts, 0.5)),
                "ttft_p95": _r(percentile(ttfts, 0.95)),
                "latency_p50": _r(percentile(latencies, 0.5)),
                "latency_p95": _r(percentile(latencies, 0.95)),
                "tokens_per_second": _r(tokens / gen_time, 2) if gen_time > 0 else None,
                "output_tokens": sum(r[5] or 0 for r in items),
                "spend_usd": _r(sum(spend), 6) if spend else None,
            }
        )
    out.sort(key=lambda e: (-int(e["requests"]), str(e["provider"]), str(e["model"])))
    return out
