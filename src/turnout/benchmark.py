"""``turnout bench``: the same prompts against several models or providers, N samples each,
timed through the library (streaming, so time to first token is real), summarised per model
as a table, a JSON document and a chart.

Every request goes through ``Gateway.stream``, so what is measured is what an application
using Turnout sees: TTFT from the request's start to the first content token, total time to
the last token, output tokens per second over the total time, cost from the catalogue.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, MissingDependencyError, TurnoutError

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = [
    "BUILTIN_PROMPTS",
    "ModelSummary",
    "Sample",
    "chart",
    "load_prompts",
    "run",
    "summarise",
    "table",
]

BUILTIN_PROMPTS: tuple[str, ...] = (
    "Explain in two sentences what a hash table is.",
    "Write a Python function that reverses a string.",
    "Summarise the plot of Romeo and Juliet in one sentence.",
    "List three uses of a load balancer.",
    "What is the capital of Australia? Answer in one word.",
)


def load_prompts(path: str | Path) -> list[str]:
    """Prompts from a file: a JSON array of strings, JSON Lines of strings or of objects with
    a ``prompt`` key, or plain text with one prompt per line (blank lines skipped)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read prompts from {file}: {exc}") from None
    prompts: list[Any]
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            prompts = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{file}: not a valid JSON array: {exc}") from None
    elif stripped.startswith(("{", '"')):
        prompts = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{file}:{n}: not valid JSON: {exc}") from None
            prompts.append(item.get("prompt") if isinstance(item, dict) else item)
    else:
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
    if bad:
        raise ConfigError(f"{file}: prompt {bad[0] + 1} is not a non-empty string")
    if not prompts:
        raise ConfigError(f"{file}: no prompts")
    return [p.strip() for p in prompts]


@dataclass(slots=True)
class Sample:
    """One request of the benchmark."""

    model: str
    prompt: int
    """Index into the prompt list."""
    ttft: float | None = None
    total: float | None = None
    output_tokens: int = 0
    input_tokens: int = 0
    chars: int = 0
    cost: float | None = None
    provider: str | None = None
    error: str | None = None


@dataclass(slots=True)
class ModelSummary:
    model: str
    requests: int
    errors: int
    ttft_p50: float | None
    ttft_p95: float | None
    total_p50: float | None
    total_p95: float | None
    tokens_per_s: float | None
    """Median over successful requests of output tokens / total time."""
    mean_output_tokens: float | None
    mean_chars: float | None
    cost: float | None
    """USD for all the model's requests; None when the catalogue has no price."""
    error_kinds: dict[str, int] = field(default_factory=dict)


async def _one(gateway: Gateway, sample: Sample, request: dict[str, Any]) -> None:
    started = time.perf_counter()
    stream = None
    try:
        stream = await gateway.stream(request)
        async for _ in stream:
            pass
        result = stream.final()
    except TurnoutError as exc:
        sample.error = f"{type(exc).__name__}: {exc.message}"
        return
    finally:
        if stream is not None:
            await stream.aclose()
    sample.total = time.perf_counter() - started
    sample.ttft = result.time_to_first_token
    sample.output_tokens = result.usage.completion_tokens
    sample.input_tokens = result.usage.prompt_tokens
    sample.chars = sum(len(c.content or "") for c in result.choices)
    sample.provider = result.provider
    sample.cost = gateway.cost(result)


async def run(
    gateway: Gateway,
    models: Sequence[str],
    prompts: Sequence[str],
    *,
    samples: int = 3,
    concurrency: int = 1,
    max_tokens: int | None = 256,
    temperature: float | None = None,
    system: str | None = None,
    on_done: Callable[[Sample], None] | None = None,
) -> list[Sample]:
    """Run every prompt ``samples`` times against every model, at most ``concurrency``
    requests at once. Order is model by model, sample round by round, so a slow model does
    not hold back the rest of a round."""
    gate = asyncio.Semaphore(max(1, concurrency))
    out: list[Sample] = []

    async def guarded(sample: Sample, request: dict[str, Any]) -> None:
        async with gate:
            await _one(gateway, sample, request)
        if on_done is not None:
            on_done(sample)

    jobs = []
    for model in models:
        for _ in range(samples):
            for index, prompt in enumerate(prompts):
                messages = [{"role": "system", "content": system}] if system else []
                messages.append({"role": "user", "content": prompt})
                request: dict[str, Any] = {"model": model, "messages": messages}
                if max_tokens:
                    request["max_tokens"] = max_tokens
                if temperature is not None:
                    request["temperature"] = temperature
                sample = Sample(model=model, prompt=index)
                out.append(sample)
                jobs.append(guarded(sample, request))
    await asyncio.gather(*jobs)
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(samples: Sequence[Sample]) -> list[ModelSummary]:
    by_model: dict[str, list[Sample]] = {}
    for s in samples:
        by_model.setdefault(s.model, []).append(s)
    out = []
    for model, group in by_model.items():
        ok = [s for s in group if s.error is None]
        kinds: dict[str, int] = {}
        for s in group:
            if s.error is not None:
                kind = s.error.split(":", 1)[0]
                kinds[kind] = kinds.get(kind, 0) + 1
        ttfts = [s.ttft for s in ok if s.ttft is not None]
        totals = [s.total for s in ok if s.total is not None]
        rates = [s.output_tokens / s.total for s in ok if s.total and s.output_tokens]
        known = [s.cost for s in ok if s.cost is not None]
        out.append(
            ModelSummary(
                model=model,
                requests=len(group),
                errors=len(group) - len(ok),
                ttft_p50=_pct(ttfts, 50),
                ttft_p95=_pct(ttfts, 95),
                total_p50=_pct(totals, 50),
                total_p95=_pct(totals, 95),
                tokens_per_s=_pct(rates, 50),
                mean_output_tokens=_mean([float(s.output_tokens) for s in ok]),
                mean_chars=_mean([float(s.chars) for s in ok]),
                cost=sum(known) if ok and len(known) == len(ok) else None,
                error_kinds=kinds,
            )
        )
    return out


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(summaries: Sequence[ModelSummary]) -> str:
    head = (
        "MODEL",
        "REQ",
        "ERR",
        "TTFT P50",
        "TTFT P95",
        "TOTAL P50",
        "TOTAL P95",
        "TOK/S",
        "OUT TOK",
        "CHARS",
        "COST $",
    )
    rows = [head]
    for m in summaries:
        rows.append(
            (
                m.model,
                str(m.requests),
                str(m.errors),
                _s(m.ttft_p50, 3) + ("s" if m.ttft_p50 is not None else ""),
                _s(m.ttft_p95, 3) + ("s" if m.ttft_p95 is not None else ""),
                _s(m.total_p50, 3) + ("s" if m.total_p50 is not None else ""),
                _s(m.total_p95, 3) + ("s" if m.total_p95 is not None else ""),
                _s(m.tokens_per_s, 1),
                _s(m.mean_output_tokens, 1),
                _s(m.mean_chars, 0),
                "unknown" if m.cost is None else f"{m.cost:.6f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for row in rows:
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        cells = [row[0].ljust(widths[0]), *rest]
        lines.append("  ".join(cells))
    for m in summaries:
        for kind, count in sorted(m.error_kinds.items()):
            lines.append(f"  {m.model}: {count} x {kind}")
    return "\n".join(lines)


def to_json(
    summaries: Sequence[ModelSummary], samples: Sequence[Sample], meta: dict[str, Any]
) -> dict[str, Any]:
    return {
        **meta,
        "summary": [asdict(m) for m in summaries],
        "samples": [asdict(s) for s in samples],
    }


def chart(summaries: Sequence[ModelSummary], path: Path, title: str = "turnout bench") -> Path:
    """Bars per model: TTFT p50 / p95, total p50, tokens per second. Needs matplotlib (the
    ``bench`` extra); imported here only."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError(
            "charts need matplotlib: pip install 'turnout[bench]' (or pass --no-chart)"
        ) from None
    names = [m.model for m in summaries]
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(8, 2.5 * len(names) + 4), 4.5))
    width = 0.27
    xs = range(len(names))
    for offset, label, values in (
        (-width, "TTFT p50", [m.ttft_p50 or 0 for m in summaries]),
        (0.0, "TTFT p95", [m.ttft_p95 or 0 for m in summaries]),
        (width, "total p50", [m.total_p50 or 0 for m in summaries]),
    ):
        left.bar([x + offset for x in xs], values, width, label=label)
    left.set_xticks(list(xs), names, rotation=15, ha="right")
    left.set_ylabel("seconds")
    left.set_title("Latency")
    left.legend()
    bars = right.bar(list(xs), [m.tokens_per_s or 0 for m in summaries], 0.5, color="#2ca02c")
    right.bar_label(bars, labels=[_s(m.tokens_per_s, 1) for m in summaries], fontsize=8)
    right.set_xticks(list(xs), names, rotation=15, ha="right")
    right.set_ylabel("output tokens / s")
    right.set_title("Speed")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
