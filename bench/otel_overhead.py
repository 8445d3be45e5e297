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
import tempfile
import threading
from pathlib import Path
from typing import Any

from .gateways import start_mock
from .profile import alternating_blocks, apps_in_process, print_off_on


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
    overlays = {
        "off": {"database_url": "none", "otel": {}},
        "on": {"database_url": "none", "otel": {"enabled": True, "endpoint": endpoint}},
    }
    # Leaving the "on" app's lifespan exports what it holds.
    async with apps_in_process(mock_port, overlays) as apps:
        cpu, _ = await alternating_blocks(apps, n, blocks, warmup=50)
    return cpu


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
    print_off_on(cpu, "otel off", "otel on", "on - off")
    print(f"  OTLP export requests received: {receiver.requests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
