"""Turn one run's raw figures into the summary, the printed table and the PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "chart", "summarise", "table"]

# metric: (label, unit, better, target for Turnout or None)
METRICS: dict[str, tuple[str, str, str, float | None]] = {
    "added_p50_ms": ("added latency p50 (c=1)", "ms", "lower", 0.6),
    "added_p99_ms": ("added latency p99 (c=1)", "ms", "lower", None),
    "added_ttft_p50_ms": ("added TTFT p50", "ms", "lower", 1.0),
    "added_ttft_p99_ms": ("added TTFT p99", "ms", "lower", None),
    "added_embed_p50_ms": ("added embeddings latency p50", "ms", "lower", None),
    "added_embed_p99_ms": ("added embeddings latency p99", "ms", "lower", None),
    "added_resp_ttft_p50_ms": ("added Responses-stream TTFT p50", "ms", "lower", None),
    "added_resp_ttft_p99_ms": ("added Responses-stream TTFT p99", "ms", "lower", None),
    "added_gap_p50_ms": ("added inter-chunk p50", "ms", "lower", 0.1),
    "added_gap_p99_ms": ("added inter-chunk p99", "ms", "lower", None),
    "max_rps_w1": ("throughput, 1 worker", "req/s", "higher", 2000),
    "p50_ms_w1": ("  latency p50 at that rate", "ms", "lower", None),
    "p99_ms_w1": ("  latency p99 at that rate", "ms", "lower", None),
    "cpu_us_w1": ("  server CPU per request", "us", "lower", None),
    "max_rps_w2": ("throughput, 2 workers", "req/s", "higher", None),
    "p50_ms_w2": ("  latency p50 at that rate", "ms", "lower", None),
    "p99_ms_w2": ("  latency p99 at that rate", "ms", "lower", None),
    "cpu_us_w2": ("  server CPU per request", "us", "lower", None),
    "streams_held": ("concurrent streams held", "streams", "higher", None),
    "idle_rss_mb": ("idle RSS (process tree, 1 worker)", "MB", "lower", 80),
    "peak_rss_mb": ("peak RSS (process tree, 1 worker)", "MB", "lower", None),
    "idle_rss_mb_w2": ("idle RSS (process tree, 2 workers)", "MB", "lower", None),
    "import_ms": ("import time", "ms", "lower", 150),
    "ready_s": ("start to ready (1 worker)", "s", "lower", 1.0),
}
# Ratios against LiteLLM the issue asks for: metric -> minimum ratio in Turnout's favour.
TARGETS = {"added_p50_ms": 8.0, "max_rps_w1": 5.0, "max_rps_w2": 5.0}


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _figures(results: dict[str, Any], name: str) -> dict[str, float | None]:
    g1 = _get(results, "gateways", f"{name}-w1") or {}
    g2 = _get(results, "gateways", f"{name}-w2") or {}
    return {
        "added_p50_ms": _get(results, "latency", name, "added_p50_ms"),
        "added_p99_ms": _get(results, "latency", name, "added_p99_ms"),
        "added_ttft_p50_ms": _get(results, "ttft", name, "added_p50_ms"),
        "added_ttft_p99_ms": _get(results, "ttft", name, "added_p99_ms"),
        "added_embed_p50_ms": _get(results, "embeddings", name, "added_p50_ms"),
        "added_embed_p99_ms": _get(results, "embeddings", name, "added_p99_ms"),
        "added_resp_ttft_p50_ms": _get(results, "responses_stream", name, "added_p50_ms"),
        "added_resp_ttft_p99_ms": _get(results, "responses_stream", name, "added_p99_ms"),
        "added_gap_p50_ms": _get(results, "chunks", name, "added_p50_ms"),
        "added_gap_p99_ms": _get(results, "chunks", name, "added_p99_ms"),
        "max_rps_w1": _get(g1, "throughput", "max_rps"),
        "p50_ms_w1": _get(g1, "throughput", "at_rate", "p50_ms"),
        "p99_ms_w1": _get(g1, "throughput", "at_rate", "p99_ms"),
        "cpu_us_w1": _get(g1, "throughput", "at_rate", "cpu_us_per_request"),
        "max_rps_w2": _get(g2, "throughput", "max_rps"),
        "p50_ms_w2": _get(g2, "throughput", "at_rate", "p50_ms"),
        "p99_ms_w2": _get(g2, "throughput", "at_rate", "p99_ms"),
        "cpu_us_w2": _get(g2, "throughput", "at_rate", "cpu_us_per_request"),
        "streams_held": _get(g1, "streams", "held"),
        "idle_rss_mb": g1.get("idle_rss_mb"),
        "peak_rss_mb": g1.get("peak_rss_mb"),
        "idle_rss_mb_w2": g2.get("idle_rss_mb"),
        "import_ms": _get(results, "import_ms", name),
        "ready_s": g1.get("ready_s"),
    }


# Latencies at each gateway's own maximum rate: different rates, so no ratio between them.
_NO_RATIO = {"p50_ms_w1", "p99_ms_w1", "p50_ms_w2", "p99_ms_w2"}


def _ratio(metric: str, turnout: float | None, litellm: float | None) -> float | None:
    if turnout is None or litellm is None or math.isnan(turnout) or math.isnan(litellm):
        return None
    if metric in _NO_RATIO:
        return None
    better = METRICS[metric][2]
    if better == "lower":
        # An added figure at or below zero is noise around nothing: no meaningful ratio.
        return litellm / turnout if turnout > 0 and litellm > 0 else None
    return turnout / litellm if litellm > 0 else None


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    turnout = _figures(results, "turnout")
    litellm = _figures(results, "litellm")
    ratios = {m: _ratio(m, turnout[m], litellm[m]) for m in METRICS}
    checks: dict[str, dict[str, Any]] = {}
    for metric, (_, _, better, target) in METRICS.items():
        value = turnout[metric]
        if target is not None and value is not None:
            ok = value <= target if better == "lower" else value >= target
            checks[metric] = {"target": target, "value": value, "met": ok}
    for metric, minimum in TARGETS.items():
        ratio = ratios[metric]
        if ratio is not None:
            checks[f"ratio:{metric}"] = {
                "target": minimum,
                "value": round(ratio, 2),
                "met": ratio >= minimum,
            }
    return {"turnout": turnout, "litellm": litellm, "ratios": ratios, "checks": checks}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{value:,}"


def table(results: dict[str, Any]) -> str:
    s = summarise(results)
    m = results["machine"]
    lines = [
        f"Turnout vs LiteLLM {results.get('versions', {}).get('litellm', '')} - "
        f"{m['date_utc']}, {m['nproc']} CPUs ({m['cpu']}), load average "
        f"{m['loadavg_start'][0]:.2f} at start, {m.get('loadavg_end', ['?'])[0]:.2f} at end, "
        f"commit {m['commit']}{' (dirty)' if m['dirty'] else ''}",
        "",
        f"{'metric':38} {'unit':>7} {'Turnout':>10} {'LiteLLM':>10} {'ratio':>7} "
        f"{'target':>10}  met",
    ]
    for metric, (label, unit, _, target) in METRICS.items():
        t, lite = s["turnout"][metric], s["litellm"][metric]
        ratio = s["ratios"][metric]
        check = s["checks"].get(metric)
        ratio_check = s["checks"].get(f"ratio:{metric}")
        want = (
            f"<= {target:g}"
            if target is not None and METRICS[metric][2] == "lower"
            else (f">= {target:g}" if target is not None else "")
        )
        if ratio_check:
            want += f"{' & ' if want else ''}{ratio_check['target']:g}x"
        met = []
        for c in (check, ratio_check):
            if c:
                met.append("yes" if c["met"] else "NO")
        lines.append(
            f"{label:38} {unit:>7} {_fmt(t):>10} {_fmt(lite):>10} "
            f"{(_fmt(ratio) + 'x') if ratio else '-':>7} {want:>10}  {'/'.join(met)}"
        )
    lines.append("")
    lines.append(
        "ratio: how many times better Turnout is (LiteLLM/Turnout for times and memory, "
        "Turnout/LiteLLM for rates)."
    )
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> Path | None:
    """A 2x2 PNG: added latency, throughput, streaming overhead, memory. None without
    matplotlib (a ``bench`` extra, never a core dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    s = summarise(results)
    names = [n for n in ("turnout", "litellm") if any(v is not None for v in s[n].values())]
    colours = {"turnout": "#1f77b4", "litellm": "#ff7f0e"}
    panels = [
        ("Added latency, concurrency 1 (ms)", ["added_p50_ms", "added_p99_ms"], ["p50", "p99"]),
        (
            "Max throughput, <=1% errors (req/s)",
            ["max_rps_w1", "max_rps_w2"],
            ["1 worker", "2 workers"],
        ),
        (
            "Added streaming latency (ms)",
            ["added_ttft_p50_ms", "added_ttft_p99_ms", "added_gap_p50_ms", "added_gap_p99_ms"],
            ["TTFT p50", "TTFT p99", "chunk p50", "chunk p99"],
        ),
        (
            "Memory, process tree (MB)",
            ["idle_rss_mb", "peak_rss_mb", "idle_rss_mb_w2"],
            ["idle w1", "peak w1", "idle w2"],
        ),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (title, metrics, labels) in zip(axes.flat, panels, strict=True):
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            values = [s[name][m] or 0.0 for m in metrics]
            xs = [j + i * width for j in range(len(metrics))]
            bars = ax.bar(xs, values, width, label=name, color=colours[name])
            ax.bar_label(bars, labels=[_fmt(v) for v in values], fontsize=8)
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(metrics))], labels)
        ax.set_title(title)
        ax.legend()
    m = results["machine"]
    fig.suptitle(
        f"Turnout vs LiteLLM {results.get('versions', {}).get('litellm', '')}, same mock "
        f"upstream - {m['nproc']} CPUs, load {m['loadavg_start'][0]:.1f}, {m['date_utc']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown(results: dict[str, Any]) -> str:
    """The summary as a Markdown table (for docs/benchmarks.md)."""
    s = summarise(results)
    m = results["machine"]
    out = [
        f"Run of {m['date_utc']} on commit {m['commit']}{' (dirty)' if m['dirty'] else ''}: "
        f"{m['nproc']} CPUs ({m['cpu']}), Python {m.get('python', '?')}, load average "
        f"{m['loadavg_start'][0]:.2f} at start and {m.get('loadavg_end', [float('nan')])[0]:.2f} "
        "at end.",
        "",
        "| metric | unit | Turnout | LiteLLM | Turnout better by | target | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for metric, (label, unit, better, target) in METRICS.items():
        ratio = s["ratios"][metric]
        want = ""
        if target is not None:
            want = f"{'<=' if better == 'lower' else '>='} {target:g}"
        ratio_check = s["checks"].get(f"ratio:{metric}")
        if ratio_check:
            want += f"{', ' if want else ''}>= {ratio_check['target']:g}x"
        met = [
            "yes" if c["met"] else "**no**"
            for c in (s["checks"].get(metric), ratio_check)
            if c is not None
        ]
        out.append(
            f"| {label.replace('  ', '&nbsp;&nbsp;')} | {unit} | {_fmt(s['turnout'][metric])} | "
            f"{_fmt(s['litellm'][metric])} | {(_fmt(ratio) + 'x') if ratio else '-'} | "
            f"{want} | {', '.join(met)} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    import orjson

    loaded = orjson.loads(Path(sys.argv[1]).read_bytes())
    print(markdown(loaded))
