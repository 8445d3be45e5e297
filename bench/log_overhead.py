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

import orjson

from .gateways import MASTER_KEY, free_port, start_mock, turnout_config
from .profile import REQUEST


def _scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", f"Bearer {MASTER_KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }


async def _app_cpu(mock_port: int, db_dir: Path, n: int, blocks: int) -> dict[str, list[float]]:
    from turnout.config import Config
    from turnout.gateway import Gateway
    from turnout.server import create_app

    body = orjson.dumps(REQUEST)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"app answered {message['status']}")

    apps = {}
    for label, overlay in (
        ("off", {"database_url": "none"}),
        ("on", {"database_url": f"sqlite:///{db_dir / 'log.db'}"}),
    ):
        config = Config.model_validate({**turnout_config(mock_port), **overlay})
        app = create_app(Gateway(config))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        apps[label] = (app, lifespan)
    on_app = apps["on"][0]
    await on_app.state.accounting.migrated.wait()
    out: dict[str, list[float]] = {"off": [], "on": []}
    walls: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(blocks):
        for label, (app, _) in apps.items():
            for _ in range(100):
                await app(_scope(body), receive, send)
            start = time.process_time()
            for _ in range(n):
                t0 = time.perf_counter()
                await app(_scope(body), receive, send)
                walls[label].append(time.perf_counter() - t0)
            if label == "on":
                assert await app.state.accounting.request_log.flush(30)
            out[label].append((time.process_time() - start) / n * 1e6)
    log = on_app.state.accounting.request_log
    print(f"  request log: {log.written} written, {log.dropped} dropped")
    for _app, lifespan in apps.values():
        await lifespan.__aexit__(None, None, None)
    for label, values in walls.items():
        q = statistics.quantiles(values, n=100)
        out[f"wall_{label}"] = [q[49] * 1e6, q[98] * 1e6, max(values) * 1e6]
    return out


def _record_path_us(n: int) -> float:
    """Wall time of what the request path does for the log: build the record, queue it."""
    from turnout.accounting import Database, RequestLog, record_result
    from turnout.config import RequestLogConfig
    from turnout.types import ChatResult, Choice, Usage

    result = ChatResult(
        id="chatcmpl-x",
        model="mock-model",
        provider="mock",
        choices=[Choice(content="hi", finish_reason="stop")],
        usage=Usage(11, 7),
        created=0,
        deployment="mock:mock-model",
        latency=0.01,
    )

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
    from turnout.types import ChatResult, Choice, Usage

    dead = Database(f"postgresql+psycopg://turnout@127.0.0.1:{free_port()}/none")
    log = RequestLog(dead, RequestLogConfig())  # the defaults: queue 10,000, batch 500
    log.start()
    result = ChatResult(
        id="chatcmpl-x",
        model="mock-model",
        provider="mock",
        choices=[Choice(content="hi", finish_reason="stop")],
        usage=Usage(11, 7),
        created=0,
        deployment="mock:mock-model",
        latency=0.01,
    )
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
    off, on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    # Each "on" block runs right after an "off" block: their difference cancels slow drifts
    # in machine load, which the two medians do not.
    paired = statistics.median(b - a for a, b in zip(cpu["off"], cpu["on"], strict=True))
    print("CPU per request, ASGI app in process (median of blocks; all threads):")
    print(f"  request log off : {off:7.1f} us   blocks: {[round(v) for v in cpu['off']]}")
    print(f"  request log on  : {on:7.1f} us   blocks: {[round(v) for v in cpu['on']]}")
    print(f"  difference      : {paired:+7.1f} us ({paired / off * 100:+.1f} %), median of pairs")
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
