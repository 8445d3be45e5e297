"""Per provider and model figures over a time window, computed from the request log:
requests, success rate, TTFT and latency percentiles, output tokens per second, spend."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import BadRequestError

__all__ = [
    "COLUMNS",
    "binned_percentile",
    "parse_window",
    "percentile",
    "summarise",
    "summarise_rollup",
]

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
            _entry(
                provider,
                model,
                len(items),
                by_class,
                (percentile(ttfts, 0.5), percentile(ttfts, 0.95)),
                (percentile(latencies, 0.5), percentile(latencies, 0.95)),
                tokens / gen_time if gen_time > 0 else None,
                sum(r[5] or 0 for r in items),
                sum(spend) if spend else None,
            )
        )
    return _busiest_first(out)


def summarise_rollup(
    sums: Iterable[tuple[Any, ...]], histograms: Iterable[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """The entries of ``summarise`` from the roll-ups (``rollup.stats_rows`` and
    ``rollup.histogram_rows`` summed over the window, without their slot): ``sums`` rows
    ``(provider, model, error, requests, output_tokens, ok_tokens, gen_time, spend,
    spend_n)``, ``histograms`` rows ``(provider, model, metric, bin, n)``. Counts, tokens and
    spend are exact; a percentile is the middle of the bin it falls in (within ~5 %)."""
    from .rollup import LATENCY, TTFT

    groups: dict[tuple[str, str], list[Any]] = {}
    for provider, model, error, n, output, ok_tokens, gen_time, spend, spend_n in sums:
        g = groups.setdefault((provider, model), [0, {}, 0, 0.0, 0, 0.0, 0])
        g[0] += int(n)
        if error:
            g[1][error] = g[1].get(error, 0) + int(n)
        g[2] += int(ok_tokens)
        g[3] += float(gen_time)
        g[4] += int(output)
        g[5] += float(spend)
        g[6] += int(spend_n)
    bins: dict[tuple[str, str, int], dict[int, int]] = {}
    for provider, model, metric, b, n in histograms:
        counts = bins.setdefault((provider, model, int(metric)), {})
        counts[int(b)] = counts.get(int(b), 0) + int(n)
    out = []
    for (provider, model), (
        n,
        by_class,
        tokens,
        gen_time,
        output,
        spend,
        spend_n,
    ) in groups.items():
        ttft = bins.get((provider, model, TTFT), {})
        latency = bins.get((provider, model, LATENCY), {})
        out.append(
            _entry(
                provider,
                model,
                n,
                by_class,
                (binned_percentile(ttft, 0.5), binned_percentile(ttft, 0.95)),
                (binned_percentile(latency, 0.5), binned_percentile(latency, 0.95)),
                tokens / gen_time if gen_time > 0 else None,
                output,
                spend if spend_n else None,
            )
        )
    return _busiest_first(out)


def binned_percentile(counts: dict[int, int], q: float) -> float | None:
    """The ``q`` percentile of a histogram (bin -> count): the value of the bin holding the
    rank ``summarise``'s ``percentile`` would interpolate at (its lower closest rank)."""
    total = sum(counts.values())
    if not total:
        return None
    from .rollup import bin_value

    rank = int((total - 1) * q)
    seen = 0
    for b in sorted(counts):
        seen += counts[b]
        if seen > rank:
            return bin_value(b)
    return bin_value(max(counts))  # pragma: no cover - the loop always reaches the rank


def _entry(
    provider: str,
    model: str,
    requests: int,
    by_class: dict[str, int],
    ttft: tuple[float | None, float | None],
    latency: tuple[float | None, float | None],
    tokens_per_second: float | None,
    output_tokens: int,
    spend: float | None,
) -> dict[str, Any]:
    errors = sum(by_class.values())
    return {
        "provider": provider,
        "model": model,
        "requests": requests,
        "errors": errors,
        "errors_by_class": dict(sorted(by_class.items())),
        "success_rate": _r((requests - errors) / requests) if requests else None,
        "ttft_p50": _r(ttft[0]),
        "ttft_p95": _r(ttft[1]),
        "latency_p50": _r(latency[0]),
        "latency_p95": _r(latency[1]),
        "tokens_per_second": _r(tokens_per_second, 2),
        "output_tokens": output_tokens,
        "spend_usd": _r(spend, 6),
    }


def _busiest_first(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out.sort(key=lambda e: (-int(e["requests"]), str(e["provider"]), str(e["model"])))
    return out
