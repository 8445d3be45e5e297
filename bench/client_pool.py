"""Upstream HTTP client choice, measured: aiohttp vs httpx against a loopback server that
answers a ~560-byte chat completion, at several concurrency levels (closed loop).

    .venv/bin/python bench/client_pool.py [--requests 3000]

Prints requests per second and p50 / p99 latency for each client. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import orjson
from aiohttp import web

BODY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! " * 40},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 41, "total_tokens": 50},
    }
)
REQUEST = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


async def handler(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


async def run(client: str, url: str, total: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    if client == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def one() -> None:
            async with session.post(
                url, data=REQUEST, headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()
    else:
        import httpx

        session = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
        )

        async def one() -> None:
            r = await session.post(
                url, content=REQUEST, headers={"Content-Type": "application/json"}
            )
            r.read()

    async def worker(n: int) -> None:
        for _ in range(n):
            t = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - t)

    for _ in range(50):
        await one()  # warm-up
    started = time.perf_counter()
    await asyncio.gather(*[worker(total // concurrency) for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    await (session.close() if client == "aiohttp" else session.aclose())
    return len(latencies) / elapsed, latencies


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    print(f"{'client':8} {'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for concurrency in (1, 16, 64, 256):
        for client in ("aiohttp", "httpx"):
            rps, lat = await run(client, url, args.requests, concurrency)
            lat.sort()
            p50 = statistics.median(lat) * 1000
            p99 = lat[int(len(lat) * 0.99) - 1] * 1000
            print(f"{client:8} {concurrency:>5} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f}")
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
