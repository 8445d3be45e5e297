"""Gateway overhead, side by side: Turnout and LiteLLM in front of the same mock upstream, in
the same run, with the same number of worker processes. See docs/benchmarks.md.

    python -m bench                     # everything (creates bench/.venv-litellm once)
    python -m bench --quick             # a short smoke run
    python -m bench --gateways turnout --turnout-config overlay.yaml

Prints a table and writes ``bench/results/<stamp>.json`` and ``.png`` (and ``latest.*``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import yaml

from . import report
from .client import Target
from .gateways import (
    LITELLM_VERSION,
    MASTER_KEY,
    Proc,
    ensure_litellm,
    litellm_python,
    start_litellm,
    start_mock,
    start_turnout,
)
from .scenarios import added_latency, added_ttft, chunk_gaps, max_rate, max_streams

HERE = Path(__file__).resolve().parent
PACED_CHUNKS = 64
PACE = 0.020


def _machine() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=HERE, capture_output=True, text=True, check=True
            )
            return out.stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "loadavg_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def _import_time(python: str, module: str, runs: int = 7) -> float:
    """Median wall time of ``import module`` in a fresh interpreter, in ms."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = []
    for _ in range(runs):
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()) * 1000)
    return round(statistics.median(times), 1)


class _PeakRss:
    """Samples a process tree's RSS every 50 ms in a thread; ``peak`` is the maximum."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.peak = proc.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.rss())

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _target(name: str, proc: Proc, model: str = "mock") -> Target:
    return Target(name, "127.0.0.1", proc.port, model=model, api_key=MASTER_KEY)


async def _warm(target: Target, n: int = 200) -> None:
    await added_latency(target, [], rounds=n, warmup=0)


def _mb(n: int) -> float:
    return round(n / 2**20, 1)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def _each_gateway(
    measure: Callable[[Target, list[Target], int, int], Awaitable[dict[str, Any]]],
    direct: Target,
    targets: list[Target],
    path: str,
    rounds: int,
    warmup: int,
) -> dict[str, Any]:
    """``measure`` against ``direct`` for each gateway in turn, asked at ``path``; a gateway
    that cannot serve it is reported, not fatal."""
    out: dict[str, Any] = {}
    for t in targets:
        try:
            figures = await measure(direct, [replace(t, path=path)], rounds, warmup)
        except (RuntimeError, OSError) as exc:
            out[t.name] = {"error": str(exc)}
            continue
        out.setdefault("direct", figures["direct"])
        out[t.name] = figures[t.name]
    return out


async def _embeddings(
    direct: Target, targets: list[Target], rounds: int, warmup: int
) -> dict[str, Any]:
    """Added latency of ``POST /v1/embeddings`` (one input, a 768-float answer), each gateway
    interleaved with the direct call."""
    to_mock = replace(direct, path="/v1/embeddings")
    return await _each_gateway(added_latency, to_mock, targets, "/v1/embeddings", rounds, warmup)


async def _responses_stream(
    direct: Target, targets: list[Target], rounds: int, warmup: int
) -> dict[str, Any]:
    """Added time to first token of a streamed ``POST /v1/responses`` (the gateway turns the
    mock's chat stream into typed Responses events, and stores the response as ``store``
    defaults to), against the mock's own chat stream."""
    return await _each_gateway(added_ttft, direct, targets, "/v1/responses", rounds, warmup)


async def _run(args: argparse.Namespace, results: dict[str, Any], log_dir: Path) -> None:
    overlay = yaml.safe_load(Path(args.turnout_config).read_text()) if args.turnout_config else {}
    names = args.gateways
    mock = start_mock(log_dir)
    procs: list[Proc] = [mock]
    try:
        direct = Target("direct", "127.0.0.1", mock.port)
        paced_direct = Target("direct", "127.0.0.1", mock.port, path="/n64/p20/v1/chat/completions")

        def start(name: str, workers: int) -> Proc:
            if name == "turnout":
                proc = start_turnout(mock.port, workers, log_dir, overlay)
            else:
                proc = start_litellm(mock.port, workers, log_dir)
            procs.append(proc)
            _log(f"{name} with {workers} worker(s) ready in {proc.ready_s:.2f}s")
            return proc

        def stop(proc: Proc) -> None:
            proc.stop()
            procs.remove(proc)

        # --- concurrency 1: both gateways up, requests interleaved -------------------------
        running = {name: start(name, 1) for name in names}
        targets = [_target(n, p) for n, p in running.items()]
        for t in targets:
            await _warm(t)
        _log(f"added latency: {args.rounds} interleaved rounds")
        results["latency"] = await added_latency(direct, targets, args.rounds, args.warmup)
        _log(f"added time to first token: {args.stream_rounds} rounds")
        results["ttft"] = await added_ttft(direct, targets, args.stream_rounds, args.warmup // 2)
        _log(f"added embeddings latency: {args.rounds // 2} interleaved rounds")
        results["embeddings"] = await _embeddings(direct, targets, args.rounds // 2, args.warmup)
        _log(f"added Responses-stream TTFT: {args.stream_rounds} rounds")
        results["responses_stream"] = await _responses_stream(
            direct, targets, args.stream_rounds, args.warmup // 2
        )
        _log(f"inter-chunk gaps: {args.gap_rounds} rounds of {PACED_CHUNKS} chunks")
        paced = [_target(n, p, "mock-paced") for n, p in running.items()]
        results["chunks"] = await chunk_gaps(paced_direct, paced, args.gap_rounds, PACED_CHUNKS)
        for proc in running.values():
            stop(proc)

        # --- one gateway at a time: fresh start, idle memory, throughput, streams -----------
        results["gateways"] = {}
        for workers in args.workers:
            for name in names:
                proc = start(name, workers)
                target = _target(name, proc)
                await _warm(target)
                await asyncio.sleep(1.0)
                entry: dict[str, Any] = {
                    "ready_s": round(proc.ready_s, 3),
                    "idle_rss_mb": _mb(proc.rss()),
                }
                prior = results["gateways"].get(f"{name}-w1", {}).get("throughput", {})
                begin = max(args.start_rate, 0.6 * prior.get("max_rps", 0.0))
                _log(f"{name} w{workers}: throughput search from {begin:.0f} req/s")

                def show(r: Any, name: str = name) -> None:
                    s = r.summary()
                    _log(
                        f"  {name}: offered {s['offered_rps']:>7} achieved {s['achieved_rps']:>7}"
                        f" errors {s['error_rate']:.2%} p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms"
                        + (f" {s['errors']}" if s["errors"] else "")
                    )

                with _PeakRss(proc) as peak:
                    entry["throughput"] = await max_rate(
                        target,
                        start=begin,
                        duration=args.duration,
                        on_step=show,
                        cpu_seconds=proc.cpu_seconds,
                    )
                    if workers == 1 and not args.no_streams:
                        _log(f"{name}: concurrent paced streams")
                        entry["streams"] = await max_streams(
                            _target(name, proc, "mock-paced"),
                            args.stream_ladder,
                            expect=PACED_CHUNKS,
                            stall=5 * PACE,
                        )
                entry["peak_rss_mb"] = _mb(peak.peak)
                results["gateways"][f"{name}-w{workers}"] = entry
                stop(proc)
    finally:
        for proc in reversed(procs):
            proc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--gateways",
        type=lambda s: [g for g in s.split(",") if g],
        default=["turnout", "litellm"],
        help="comma-separated: turnout,litellm",
    )
    parser.add_argument(
        "--turnout-config",
        help="YAML merged over the generated Turnout config (to measure a variant)",
    )
    parser.add_argument("--label", default="", help="a name for this run in the results")
    parser.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",")], default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2000, help="concurrency-1 rounds")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--stream-rounds", type=int, default=500)
    parser.add_argument("--gap-rounds", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per rate step")
    parser.add_argument("--start-rate", type=float, default=50.0)
    parser.add_argument(
        "--stream-ladder",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[25, 50, 100, 200, 400, 800],
    )
    parser.add_argument("--no-streams", action="store_true", help="skip concurrent streams")
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.stream_rounds, args.gap_rounds = 300, 50, 100, 2
        args.duration, args.stream_ladder = 2.0, [25, 100]
    unknown = set(args.gateways) - {"turnout", "litellm"}
    if unknown:
        parser.error(f"unknown gateway(s): {', '.join(sorted(unknown))}")

    results: dict[str, Any] = {"machine": _machine(), "label": args.label}
    results["settings"] = {
        k: v for k, v in vars(args).items() if k not in ("out", "quick", "label")
    }
    if "litellm" in args.gateways:
        ensure_litellm()
    results["versions"] = {"litellm": LITELLM_VERSION}
    _log("import times")
    results["import_ms"] = {"turnout": _import_time(sys.executable, "turnout")}
    results["import_ms"]["turnout.server"] = _import_time(sys.executable, "turnout.server")
    if "litellm" in args.gateways:
        results["import_ms"]["litellm"] = _import_time(str(litellm_python()), "litellm", runs=3)

    out = Path(args.out)
    stamp = time.strftime("%Y%m%d-%H%M%S") + (f"-{args.label}" if args.label else "")
    log_dir = out / f"logs-{stamp}"  # configs and every process's output, kept for a look
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        try:
            import uvloop

            uvloop.run(_run(args, results, log_dir))
        except ImportError:
            asyncio.run(_run(args, results, log_dir))
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    results["machine"]["loadavg_end"] = list(os.getloadavg())

    summary = report.summarise(results)
    results["summary"] = summary
    data = orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    for name in (stamp, "latest"):
        (out / f"{name}.json").write_bytes(data)
    print(report.table(results))
    chart = report.chart(results, out / f"{stamp}.png")
    if chart is not None:
        (out / "latest.png").write_bytes(chart.read_bytes())
        print(f"\nwrote {out / (stamp + '.json')} and {chart}")
    else:
        print(f"\nwrote {out / (stamp + '.json')} (no chart: pip install matplotlib)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
