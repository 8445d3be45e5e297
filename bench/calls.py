"""Python calls per request of the ASGI app called in process, counted by ``cProfile``: a
figure that repeats to within about one call whatever the machine's load, for comparing two
trees of the code (docs/benchmarks.md, "What the one ingress pipeline costs").

    .venv/bin/python -m bench.calls                          # non-streamed chat completions
    .venv/bin/python -m bench.calls --stream --out /tmp/s    # also writes /tmp/s.pstat
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python -m bench.calls  # compare

The app is built from the benchmark config with the request log off and called without an
HTTP server; it calls the bench mock upstream over aiohttp (about 10 deltas per stream).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from .gateways import start_mock, turnout_config
from .profile import REQUEST, chat_scope


async def count(requests: int, warmup: int, stream: bool, out: str | None) -> float:
    from turnout.config import Config
    from turnout.gateway import Gateway
    from turnout.server import create_app

    body = orjson.dumps(dict(REQUEST, stream=True) if stream else REQUEST)
    mock = start_mock(Path(tempfile.mkdtemp(prefix="turnout-calls-")))
    try:
        config = turnout_config(mock.port, {"request_log": {"enabled": False}})
        gateway = Gateway(Config.model_validate(config))
        app = create_app(gateway)
        scope = chat_scope(body)

        sent = [False]

        async def receive() -> dict[str, Any]:
            # The body once, then nothing more (a stream's disconnect listener waits here).
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()
            raise AssertionError("not reached")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"app answered {message['status']}")

        async def call() -> None:
            sent[0] = False
            await app(dict(scope), receive, send)

        for _ in range(warmup):
            await call()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(requests):
            await call()
        profile.disable()
        await gateway.aclose()
        stats = pstats.Stats(profile)
        if out:
            stats.dump_stats(out + ".pstat")
        return float(stats.total_calls) / requests
    finally:
        mock.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--stream", action="store_true", help="streamed chat completions")
    parser.add_argument("--out", help="also write the profile to OUT.pstat")
    args = parser.parse_args(argv)
    import turnout

    print(f"turnout from {Path(turnout.__file__).parent}")
    per_request = asyncio.run(count(args.requests, args.warmup, args.stream, args.out))
    kind = "streamed chat" if args.stream else "chat"
    print(f"{kind}: {per_request:.1f} Python calls per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
