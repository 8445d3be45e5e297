"""Where a non-streaming request's CPU goes in Turnout, layer by layer, measured as CPU time
(user + system) per request rather than wall time, so it holds on a busy machine:

    python -m bench.profile [--py-spy]      # --py-spy also records a flame graph (SVG)

1. the bare upstream client (one aiohttp POST to the mock), in process;
2. ``Gateway.chat`` (library: validation, routing, adapter, client), in process;
3. the ASGI app (Starlette + handlers + library), called in process without an HTTP server;
4. uvicorn serving a trivial ASGI app with a fixed body (the HTTP server's own floor);
5. ``turnout serve`` end to end at a fixed open-loop rate.

The gaps between them are what each layer costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
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

    from .gateways import turnout_config

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

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"app answered {message['status']}")

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
