"""What OpenTelemetry costs per request, off (the default) and on (spans per request and per
attempt, exported over OTLP/HTTP by the batch processor to a receiver on loopback), as CPU
time of the whole process (the exporter's thread included) per request.

    python -m bench.otel_overhead [-n 1000] [--blocks 12]      (make bench-otel)

The ASGI app (Starlette + handler + library) is called in process against the bench's mock
upstream, off and on in alternating blocks so that machine load hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from .gateways import start_mock, turnout_config
from .log_overhead import _scope
from .profile import REQUEST


class _Receiver:
    """A loopback OTLP/HTTP receiver that counts what it is sent and discards it."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


async def _cpu(mock_port: int, endpoint: str, n: int, blocks: int) -> dict[str, list[float]]:
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
    for label, otel in (("off", {}), ("on", {"enabled": True, "endpoint": endpoint})):
        overlay = {"database_url": "none", "otel": otel}
        config = Config.model_validate({**turnout_config(mock_port), **overlay})
        app = create_app(Gateway(config))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        apps[label] = (app, lifespan)
    out: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(blocks):
        for label, (app, _) in apps.items():
            for _ in range(50):
                await app(_scope(body), receive, send)
            start = time.process_time()
            for _ in range(n):
                await app(_scope(body), receive, send)
            out[label].append((time.process_time() - start) / n * 1e6)
    for _app, lifespan in apps.values():
        await lifespan.__aexit__(None, None, None)  # the "on" app exports what it holds
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.otel_overhead", description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="requests per block")
    parser.add_argument("--blocks", type=int, default=12, help="alternating off/on blocks")
    args = parser.parse_args(argv)
    receiver = _Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        mock = start_mock(Path(tmp))
        try:
            cpu = asyncio.run(_cpu(mock.port, receiver.url, args.n, args.blocks))
        finally:
            mock.stop()
            receiver.stop()
    off, on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    paired = statistics.median(b - a for a, b in zip(cpu["off"], cpu["on"], strict=True))
    print("CPU per request, ASGI app in process (median of blocks; all threads):")
    print(f"  otel off : {off:7.1f} us   blocks: {[round(v) for v in cpu['off']]}")
    print(f"  otel on  : {on:7.1f} us   blocks: {[round(v) for v in cpu['on']]}")
    print(f"  on - off : {paired:+7.1f} us ({paired / off * 100:+.1f} %), median of pairs")
    print(f"  OTLP export requests received: {receiver.requests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
