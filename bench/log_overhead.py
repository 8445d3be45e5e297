"""What the request log costs per request, as CPU time (user + system, every thread of the
process, so the background writer is included) rather than wall time, so it holds on a busy
machine; and how much memory records hold while the database is down.

    python -m bench.log_overhead [-n 1000] [--blocks 16]

1. The ASGI app (Starlette + handler + library) called in process against the bench's mock
   upstream, request log off (``database_url: none``) and on (SQLite in WAL mode, the default;
   its writer thread running), in alternating blocks so machine load hits both alike; wall
   time per request (p50, p99, max) for both, which shows whether the writer thread holds up
   the event loop; and the wall time of the request-path part alone (build, queue a record).
2. The request log pointed at a database that refuses connections, 10,000 and then 100,000
   requests' records submitted: queue depth, drops, and the Python heap they hold.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from .gateways import free_port, start_mock
from .profile import alternating_blocks, apps_in_process, print_off_on


async def _app_cpu(mock_port: int, db_dir: Path, n: int, blocks: int) -> dict[str, list[float]]:
    overlays = {
        "off": {"database_url": "none"},
        "on": {"database_url": f"sqlite:///{db_dir / 'log.db'}"},
    }

    async def flush(label: str, app: Any) -> None:
        if label == "on":
            assert await app.state.accounting.request_log.flush(30)

    async with apps_in_process(mock_port, overlays) as apps:
        await apps["on"].state.accounting.migrated.wait()
        out, walls = await alternating_blocks(apps, n, blocks, warmup=100, settle=flush)
        log = apps["on"].state.accounting.request_log
        print(f"  request log: {log.written} written, {log.dropped} dropped")
    for label, values in walls.items():
        q = statistics.quantiles(values, n=100)
        out[f"wall_{label}"] = [q[49] * 1e6, q[98] * 1e6, max(values) * 1e6]
    return out


def _result() -> Any:
    """The answer whose record the request log is given: a short non-streamed chat."""
    from turnout.types import ChatResult, Choice, Usage

    return ChatResult(
        id="chatcmpl-x",
        model="mock-model",
        provider="mock",
        choices=[Choice(content="hi", finish_reason="stop")],
        usage=Usage(11, 7),
        created=0,
        deployment="mock:mock-model",
        latency=0.01,
    )


def _record_path_us(n: int) -> float:
    """Wall time of what the request path does for the log: build the record, queue it."""
    from turnout.accounting import Database, RequestLog, record_result
    from turnout.config import RequestLogConfig

    result = _result()

    async def run() -> float:
        log = RequestLog(Database("sqlite:///:memory:"), RequestLogConfig(queue_size=n + 1))
        start = time.perf_counter()
        for _ in range(n):
            log.submit(record_result(result, ts=time.time(), route="mock", cost=0.0001))
        return (time.perf_counter() - start) / n * 1e6

    return asyncio.run(run())


async def _memory_db_down() -> list[tuple[int, int, int, float]]:
    from turnout.accounting import Database, RequestLog, record_result
    from turnout.config import RequestLogConfig

    dead = Database(f"postgresql+psycopg://turnout@127.0.0.1:{free_port()}/none")
    log = RequestLog(dead, RequestLogConfig())  # the defaults: queue 10,000, batch 500
    log.start()
    result = _result()
    rows = []
    await asyncio.sleep(1.0)  # the writer's first attempt imports the driver: not the queue's
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    total = 0
    for target in (10_000, 100_000):
        while total < target:
            log.submit(record_result(result, ts=time.time(), route="mock", cost=0.0001))
            total += 1
            if total % 1000 == 0:
                await asyncio.sleep(0)
        used, _ = tracemalloc.get_traced_memory()
        rows.append((total, log.depth, log.dropped, (used - base) / 1e6))
    tracemalloc.stop()
    await log.aclose(drain_timeout=0.1)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.log_overhead", description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="requests per block")
    parser.add_argument("--blocks", type=int, default=16, help="alternating off/on blocks")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        mock = start_mock(Path(tmp))
        try:
            cpu = asyncio.run(_app_cpu(mock.port, Path(tmp), args.n, args.blocks))
        finally:
            mock.stop()
    print_off_on(cpu, "request log off", "request log on", "difference")
    for label in ("off", "on"):
        p50, p99, top = cpu[f"wall_{label}"]
        print(
            f"  wall per request, log {label:3}: p50 {p50:6.1f} us  p99 {p99:7.1f} us  "
            f"max {top:8.1f} us"
        )
    print(f"request-path part (build record + queue it): {_record_path_us(20_000):.2f} us wall")
    print("database down (connections refused), default queue_size 10,000:")
    print("  requests   queued   dropped   heap held by the log")
    for total, depth, dropped, mb in asyncio.run(_memory_db_down()):
        print(f"  {total:8d} {depth:8d} {dropped:9d}   {mb:6.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
