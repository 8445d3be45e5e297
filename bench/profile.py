"""Where a non-streaming request's CPU goes in Turnout, layer by layer, measured as CPU time
(user + system) per request rather than wall time, so it holds on a busy machine:

    python -m bench.profile [--py-spy]      # --py-spy also records a flame graph (SVG)

1. the bare upstream client (one aiohttp POST to the mock), in process;
2. ``Gateway.chat`` (library: validation, routing, adapter, client), in process;
3. the ASGI app (Starlette + handlers + library), called in process without an HTTP server;
4. uvicorn serving a trivial ASGI app with a fixed body (the HTTP server's own floor);
5. ``turnout serve`` end to end at a fixed open-loop rate.

The gaps between them are what each layer costs.

Calling the app in process is shared with the benches that compare a feature off and on
(``bench.log_overhead``, ``bench.otel_overhead``): ``chat_scope``, ``chat_io``,
``apps_in_process``, ``alternating_blocks`` and ``print_off_on``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from .client import Target, open_loop
from .gateways import (
    HERE,
    MASTER_KEY,
    Proc,
    _spawn,
    free_port,
    start_mock,
    start_turnout,
    tree_cpu_seconds,
    turnout_config,
)

_BODY = b"x" * 557
REQUEST = {
    "model": "mock",
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
    "max_tokens": 64,
}


def chat_scope(body: bytes) -> dict[str, Any]:
    """The ASGI scope of ``POST /v1/chat/completions`` with ``body``, as the master key: for
    calling the app in process without an HTTP server (here and in ``bench.calls``)."""
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


def chat_io(body: bytes) -> tuple[Any, Any]:
    """The ASGI ``receive`` (``body`` in one message) and ``send`` (which raises on any status
    but 200) of a chat request called in process."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"app answered {message['status']}")

    return receive, send


@asynccontextmanager
async def apps_in_process(
    mock_port: int, overlays: Mapping[str, dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    """One ASGI app per label, built from the benchmark config with that label's overlay, its
    lifespan entered; the lifespans are left in the same order on the way out."""
    from turnout.config import Config
    from turnout.gateway import Gateway
    from turnout.server import create_app

    apps: dict[str, Any] = {}
    lifespans = []
    for label, overlay in overlays.items():
        config = Config.model_validate({**turnout_config(mock_port), **overlay})
        app = create_app(Gateway(config))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        apps[label] = app
        lifespans.append(lifespan)
    try:
        yield apps
    finally:
        for lifespan in lifespans:
            await lifespan.__aexit__(None, None, None)


async def alternating_blocks(
    apps: Mapping[str, Any],
    n: int,
    blocks: int,
    warmup: int,
    settle: Callable[[str, Any], Awaitable[None]] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Chat requests to each app in turn, ``blocks`` times over, so that machine load hits them
    alike: ``warmup`` calls, then ``n`` timed ones. Returns each block's CPU time per request
    (us, the whole process) and each request's wall time (s), by label. ``settle(label, app)``
    runs before a block's clock stops (work the block left to a background thread)."""
    body = orjson.dumps(REQUEST)
    receive, send = chat_io(body)
    cpu: dict[str, list[float]] = {label: [] for label in apps}
    walls: dict[str, list[float]] = {label: [] for label in apps}
    for _ in range(blocks):
        for label, app in apps.items():
            for _ in range(warmup):
                await app(chat_scope(body), receive, send)
            start = time.process_time()
            for _ in range(n):
                t0 = time.perf_counter()
                await app(chat_scope(body), receive, send)
                walls[label].append(time.perf_counter() - t0)
            if settle is not None:
                await settle(label, app)
            cpu[label].append((time.process_time() - start) / n * 1e6)
    return cpu, walls


def print_off_on(cpu: Mapping[str, list[float]], off: str, on: str, difference: str) -> None:
    """Print the median CPU per request of the ``off`` and ``on`` blocks under those names, and
    the median of the paired differences."""
    median_off, median_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    # Each "on" block runs right after an "off" block: their difference cancels slow drifts
    # in machine load, which the two medians do not.
    paired = statistics.median(b - a for a, b in zip(cpu["off"], cpu["on"], strict=True))
    width = max(len(off), len(on), len(difference))
    print("CPU per request, ASGI app in process (median of blocks; all threads):")
    print(f"  {off:{width}} : {median_off:7.1f} us   blocks: {[round(v) for v in cpu['off']]}")
    print(f"  {on:{width}} : {median_on:7.1f} us   blocks: {[round(v) for v in cpu['on']]}")
    print(
        f"  {difference:{width}} : {paired:+7.1f} us ({paired / median_off * 100:+.1f} %), "
        "median of pairs"
    )


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The cheapest ASGI app: read the body, answer a fixed 557 bytes."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", b"557")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _BODY})


async def _in_process(n: int, call: Any) -> float:
    for _ in range(200):
        await call()
    start = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - start) / n * 1e6


async def _server_cpu(proc: Proc, rate: float, duration: float) -> float:
    target = Target("t", "127.0.0.1", proc.port, api_key=MASTER_KEY)
    await open_loop(target, rate, 1.0)
    before = tree_cpu_seconds(proc.pid)
    result = await open_loop(target, rate, duration)
    used = tree_cpu_seconds(proc.pid) - before
    return used / max(1, result.ok) * 1e6


async def _run(args: argparse.Namespace, log_dir: Path) -> dict[str, float]:
    import aiohttp

    from turnout.config import Config
    from turnout.gateway import Gateway
    from turnout.server import create_app

    mock = start_mock(log_dir)
    procs = [mock]
    out: dict[str, float] = {}
    try:
        url = f"http://127.0.0.1:{mock.port}/v1/chat/completions"
        body = orjson.dumps(REQUEST)
        async with aiohttp.ClientSession() as session:

            async def bare() -> None:
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    await r.read()

            out["1 aiohttp POST (client floor)"] = await _in_process(args.n, bare)

        config = Config.model_validate(turnout_config(mock.port))
        gateway = Gateway(config)
        out["2 Gateway.chat (library)"] = await _in_process(args.n, lambda: gateway.chat(REQUEST))
        app = create_app(gateway)
        scope = chat_scope(body)
        receive, send = chat_io(body)
        out["3 ASGI app (Starlette + handler + library)"] = await _in_process(
            args.n, lambda: app(dict(scope), receive, send)
        )
        await gateway.aclose()

        port = free_port()
        uvicorn = str(Path(sys.executable).parent / "uvicorn")
        argv = [uvicorn, "bench.profile:raw_app", "--port", str(port), "--no-access-log"]
        argv += ["--log-level", "warning"]
        trivial = _spawn("uvicorn-raw", argv, port, log_dir, {"PYTHONPATH": str(HERE.parent)})
        procs.append(trivial)
        time.sleep(1.5)
        out["4 uvicorn + trivial ASGI app (server floor)"] = await _server_cpu(
            trivial, args.rate, args.duration
        )
        turnout = start_turnout(mock.port, 1, log_dir)
        procs.append(turnout)
        if args.py_spy and shutil.which("py-spy"):
            svg = HERE / "results" / f"profile-{time.strftime('%Y%m%d-%H%M%S')}.svg"
            svg.parent.mkdir(exist_ok=True)
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(turnout.pid),
                    "-d",
                    str(int(args.duration)),
                    "-o",
                    str(svg),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            await open_loop(
                Target("t", "127.0.0.1", turnout.port, api_key=MASTER_KEY), args.rate, args.duration
            )
            spy.wait(60)
            print(f"flame graph: {svg}")
        out["5 turnout serve, end to end"] = await _server_cpu(turnout, args.rate, args.duration)
    finally:
        for proc in reversed(procs):
            proc.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("-n", type=int, default=3000, help="in-process calls per layer")
    parser.add_argument("--rate", type=float, default=800.0, help="req/s for server layers")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--py-spy", action="store_true", help="also record a flame graph")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="turnout-profile-") as tmp:
        try:
            import uvloop

            figures = uvloop.run(_run(args, Path(tmp)))
        except ImportError:
            figures = asyncio.run(_run(args, Path(tmp)))
    print(f"CPU per request (user + system), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    for name, us in figures.items():
        print(f"  {name:48} {us:7.0f} us")
    f = list(figures.values())
    print(
        f"derived: client {f[0]:.0f} us, Turnout library {f[1] - f[0]:.0f} us, "
        f"Starlette + handlers {f[2] - f[1]:.0f} us, HTTP server + kernel {f[4] - f[2]:.0f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
