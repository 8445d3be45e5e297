"""Soak and fault benchmark: memory over many requests, and failover when an upstream dies.
Prints figures; not a test (a short run is in tests/test_soak.py as a functional check).

    python -m bench.soak                      # 60,000 requests, then the fault phase
    python -m bench.soak --requests 400 --fault-requests 300 --sample-every 100 --slow 0  # quick

1. Soak: ``--requests`` requests through one ``turnout serve`` (one worker, request log on),
   mixed evenly: OpenAI chat, OpenAI chat streamed, Anthropic messages, Anthropic messages
   streamed, on ``--concurrency`` keep-alive connections, against the mock upstream
   (bench/mock_upstream.py). The server's RSS is sampled every ``--sample-every`` answers;
   the series is printed, with its spread after the warm-up (goal: within 5 MB).
2. Fault: a route of two deployments (round robin over two mock processes); one mock is
   killed (SIGKILL) a third of the way through ``--fault-requests`` and restarted on the same
   port at two thirds. Every answer is checked: HTTP 200 and a complete body (a stream ends
   with ``[DONE]`` or ``message_stop`` and carries no error). Goal: 0 client-visible failures.
3. Slowloris: ``--slow`` connections that send nothing or part of their headers: descriptors
   and RSS the server holds, what a client meanwhile gets, and when the header deadline
   (``server.header_timeout``) lets them go; the drops as /metrics counts them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .client import Conn
from .gateways import MASTER_KEY, Proc, start_mock, start_turnout

__all__ = ["KINDS", "check", "main", "run"]

PROMPT = [{"role": "user", "content": "Say hello in one short sentence."}]
KINDS = ("chat", "chat-stream", "messages", "messages-stream")


def request(kind: str, model: str, port: int) -> bytes:
    """One raw HTTP/1.1 request of ``kind`` for ``model``."""
    body: dict[str, Any] = {"model": model, "messages": PROMPT, "max_tokens": 64}
    if kind.endswith("stream"):
        body["stream"] = True
    if kind.startswith("chat"):
        path, auth = "/v1/chat/completions", f"Authorization: Bearer {MASTER_KEY}"
        if body.get("stream"):
            body["stream_options"] = {"include_usage": True}
    else:
        path, auth = (
            "/v1/messages",
            f"x-api-key: {MASTER_KEY}\r\nanthropic-version: 2023-06-01",
        )
    raw = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    )
    return head.encode() + raw


def check(kind: str, status: int, body: bytes) -> str | None:
    """Why this answer is a failure the client would see, or None when it is whole."""
    if status != 200:
        return f"HTTP {status}"
    if kind == "chat":
        ok = b'"choices"' in body and b'"finish_reason":"stop"' in body
    elif kind == "chat-stream":
        ok = body.endswith(b"data: [DONE]\n\n") and b'"error"' not in body
    elif kind == "messages":
        ok = body.startswith(b'{"id"') and b'"stop_reason":"end_turn"' in body
    else:
        ok = b"event: message_stop" in body and b"event: error" not in body
    return None if ok else f"{kind}: incomplete or error body"


@dataclass
class Load:
    """A closed loop of ``concurrency`` keep-alive connections sending ``total`` requests,
    kinds in rotation; ``on_done(n)`` runs after each answer (n answered so far)."""

    port: int
    model: str
    total: int
    concurrency: int
    on_done: Callable[[int], None] | None = None
    timeout: float = 30.0
    done: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    started: int = 0

    async def run(self) -> None:
        """Until ``total`` requests were sent (``total`` may be raised while it runs)."""
        raws = {kind: request(kind, self.model, self.port) for kind in KINDS}

        async def worker() -> None:
            conn: Conn | None = None
            while self.started < self.total:
                kind = KINDS[self.started % len(KINDS)]
                self.started += 1
                try:
                    if conn is None or not conn.usable:
                        conn = await Conn.open("127.0.0.1", self.port)
                    reply = await asyncio.wait_for(
                        conn.send(raws[kind], keep_body=True), self.timeout
                    )
                    failure = check(kind, reply.status, reply.body)
                except (OSError, TimeoutError) as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                    if conn is not None:
                        conn.close()
                    conn = None
                if failure is not None:
                    self.failures[failure] += 1
                self.kinds[kind] += 1
                self.done += 1
                if self.on_done is not None:
                    self.on_done(self.done)
            if conn is not None:
                conn.close()

        await asyncio.gather(*[worker() for _ in range(self.concurrency)])

    async def reached(self, answered: int) -> None:
        while self.done < answered:
            await asyncio.sleep(0.005)


def _mb(n: int) -> float:
    return round(n / 2**20, 1)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _uptime() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


async def soak(
    turnout: Proc, requests: int, concurrency: int, every: int, warmup: int
) -> dict[str, Any]:
    series: list[tuple[int, float]] = [(0, _mb(turnout.rss()))]
    _log(f"soak: {requests} requests, {concurrency} connections; RSS {series[0][1]} MB at start")

    def sample(n: int) -> None:
        if n % every == 0:
            series.append((n, _mb(turnout.rss())))
            _log(f"  {n:>6} requests  RSS {series[-1][1]:6.1f} MB")

    load = Load(turnout.port, "soak", requests, concurrency, on_done=sample)
    started = time.perf_counter()
    await load.run()
    elapsed = time.perf_counter() - started
    after = [mb for n, mb in series if n > warmup]
    result = {
        "requests": requests,
        "kinds": dict(load.kinds),
        "failures": dict(load.failures),
        "seconds": round(elapsed, 1),
        "rps": round(requests / elapsed, 1),
        "rss_series_mb": series,
        "warmup_requests": warmup,
        "rss_spread_after_warmup_mb": round(max(after) - min(after), 1) if after else None,
        "rss_drift_after_warmup_mb": round(after[-1] - after[0], 1) if after else None,
    }
    return result


async def fault(
    turnout: Proc, mock_a: Proc, log_dir: Path, requests: int, concurrency: int
) -> tuple[dict[str, Any], Proc]:
    """A third of ``requests`` with both mocks up; kill mock A (SIGKILL, requests in flight);
    a third with A dead; restart A on its port (the load goes on meanwhile); a third more."""
    third = max(1, requests // 3)
    load = Load(turnout.port, "ha", requests, concurrency)
    events: list[str] = []
    snapshots: list[tuple[str, dict[str, int]]] = [("start", await served_by(turnout.port))]
    state = {"mock_a": mock_a}

    def event(text: str) -> None:
        events.append(f"{text} after {load.done} answers")
        _log(events[-1])

    async def orchestrate() -> None:
        await load.reached(third)
        snapshots.append(("both up", await served_by(turnout.port)))
        load.total = sys.maxsize  # until A is back and has had its share
        state["mock_a"].stop(kill=True)
        event("killed mock A")
        await load.reached(2 * third)
        event(f"restarting mock A on port {mock_a.port}")
        state["mock_a"] = await asyncio.to_thread(
            start_mock, log_dir, port=mock_a.port, name="mock-a-restarted"
        )
        event("mock A restarted")
        snapshots.append(("A killed", await served_by(turnout.port)))
        load.total = load.started + third

    _log(f"fault: {requests} requests on a two-deployment route, {concurrency} connections")
    await asyncio.gather(load.run(), orchestrate())
    snapshots.append(("A restarted", await served_by(turnout.port)))
    segments = {}
    for (_, before), (name, after) in itertools.pairwise(snapshots):
        segments[name] = {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    result = {
        "requests": load.done,
        "failures": dict(load.failures),
        "client_visible_failures": sum(load.failures.values()),
        "events": events,
        "served_by": segments,
    }
    return result, state["mock_a"]


class _Slow(asyncio.Protocol):
    """A slowloris client: connects, maybe sends part of a request's headers, never more."""

    def __init__(self, partial: bytes) -> None:
        self.partial = partial
        self.received = b""
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.partial:
            transport.write(self.partial)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def slowloris(turnout: Proc, count: int, wait: float) -> dict[str, Any]:
    """``count`` connections that send nothing (half) or part of their headers (half): how
    many descriptors the server holds, whether it still answers, and when it lets them go."""
    loop = asyncio.get_running_loop()
    _log(f"slowloris: {count} connections sending nothing or part of their headers")
    before = {"fds": _fds(turnout.pid), "rss_mb": _mb(turnout.rss())}
    # Clients already connected keep sending requests all along.
    busy = Load(turnout.port, "soak", sys.maxsize, 2)
    busy_task = loop.create_task(busy.run())
    await busy.reached(10)
    partial = f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{turnout.port}\r\n"
    slow: list[tuple[asyncio.BaseTransport, _Slow]] = []
    for i in range(count):
        slow.append(
            await loop.create_connection(
                lambda i=i: _Slow(partial.encode() if i % 2 else b""),
                "127.0.0.1",
                turnout.port,
            )
        )
    await asyncio.sleep(0.5)
    peak = {"fds": _fds(turnout.pid), "rss_mb": _mb(turnout.rss())}
    # A new client meanwhile (over the cap: refused at once).
    conn = await Conn.open("127.0.0.1", turnout.port)
    try:
        reply = await asyncio.wait_for(conn.send(request("chat", "soak", turnout.port)), 10)
        newcomer = f"HTTP {reply.status}"
    except (OSError, TimeoutError) as exc:
        newcomer = type(exc).__name__
    conn.close()
    started = loop.time()
    _, pending = await asyncio.wait([p.closed for _, p in slow], timeout=wait)
    closed_in = round(loop.time() - started, 1)
    await asyncio.sleep(0.5)
    after = {"fds": _fds(turnout.pid), "rss_mb": _mb(turnout.rss())}
    busy.total = busy.started
    await busy_task
    refused = sum(1 for _, p in slow if p.received.startswith(b"HTTP/1.1 503"))
    for transport, _ in slow:
        transport.close()
    metrics = await _metrics(turnout.port)
    return {
        "connections": count,
        "before": before,
        "held": peak,
        "after": after,
        "answered_503_at_once": refused,
        "still_open_after_wait": len(pending),
        "all_closed_within_s": closed_in,
        "connected_clients_meanwhile": {
            "answers": busy.done,
            "failures": dict(busy.failures),
        },
        "new_client_meanwhile": newcomer,
        "metrics": {
            k: v
            for k, v in metrics.items()
            if k.startswith(("turnout_header", "turnout_connections", "turnout_client"))
        },
    }


_REQUESTS_RE = re.compile(r"^turnout_requests_total\{([^}]*)\} (\S+)$", re.MULTILINE)
_LABEL_RE = re.compile(r'(\w+)="([^"]*)"')


_SAMPLE_RE = re.compile(r"^(turnout_\w+(?:\{[^}]*\})?) (\S+)$", re.MULTILINE)


async def _metrics_text(port: int) -> str:
    conn = await Conn.open("127.0.0.1", port)
    try:
        raw = (
            f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {MASTER_KEY}\r\n\r\n"
        ).encode()
        reply = await conn.send(raw, keep_body=True)
    finally:
        conn.close()
    return reply.body.decode()


async def _metrics(port: int) -> dict[str, float]:
    return {k: float(v) for k, v in _SAMPLE_RE.findall(await _metrics_text(port))}


async def served_by(port: int) -> dict[str, int]:
    """Answers per provider and outcome, from the gateway's own /metrics."""
    out: Counter[str] = Counter()
    for labels, value in _REQUESTS_RE.findall(await _metrics_text(port)):
        label = dict(_LABEL_RE.findall(labels))
        out[f"{label['provider']} {label['status']}"] += int(float(value))
    return dict(sorted(out.items()))


def overlay(mock_b_port: int, mock_a_port: int, header_timeout: float) -> dict[str, Any]:
    """Routes added to the benchmark's Turnout config: ``soak`` on mock A alone, ``ha`` over
    mock A and mock B. A short circuit-breaker cooldown, so that A comes back within the run."""
    return {
        "providers": {
            "mocka": {
                "host": "custom",
                "base_url": f"http://127.0.0.1:{mock_a_port}/v1",
                "api_key": "sk-mock",
            },
            "mockb": {
                "host": "custom",
                "base_url": f"http://127.0.0.1:{mock_b_port}/v1",
                "api_key": "sk-mock",
            },
        },
        "routes": [
            {"name": "soak", "deployments": ["mocka:mock-model"]},
            {
                "name": "ha",
                "strategy": "round_robin",
                "deployments": ["mocka:mock-model", "mockb:mock-model"],
            },
        ],
        "health": {"cooldown": 2.0},
        "server": {"header_timeout": header_timeout},
        "timeouts": {"connect": 2.0},
        "key_health": {"enabled": False},
    }


async def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"load_start": _uptime()}
    mock_a = start_mock(log_dir, name="mock-a")
    procs = [mock_a, start_mock(log_dir, name="mock-b")]
    try:
        # The bench's base config routes "mock" to its own mock: point that at mock A too.
        extra = overlay(procs[1].port, mock_a.port, args.header_timeout)
        turnout = start_turnout(mock_a.port, 1, log_dir, extra)
        procs.append(turnout)
        _log(f"turnout ready in {turnout.ready_s:.2f}s; {results['load_start']}")
        results["soak"] = await soak(
            turnout, args.requests, args.concurrency, args.sample_every, args.warmup
        )
        results["load_after_soak"] = _uptime()
        results["fault"], procs[0] = await fault(
            turnout, mock_a, log_dir, args.fault_requests, args.concurrency
        )
        if args.slow:
            wait = 3 * args.header_timeout + 10
            results["slowloris"] = await slowloris(turnout, args.slow, wait=wait)
        results["load_end"] = _uptime()
    finally:
        for proc in reversed(procs):
            proc.stop()
    return results


def report(results: dict[str, Any]) -> str:
    s, f = results["soak"], results["fault"]
    lines = [
        f"soak: {s['requests']} requests ({', '.join(f'{k} {v}' for k, v in s['kinds'].items())})"
        f" in {s['seconds']} s ({s['rps']} req/s), failures: {sum(s['failures'].values())}"
        + (f" {s['failures']}" if s["failures"] else ""),
        "RSS (MB) by requests answered:",
        "  " + "  ".join(f"{n}:{mb}" for n, mb in s["rss_series_mb"]),
        (
            f"after the first {s['warmup_requests']} requests: spread "
            f"{s['rss_spread_after_warmup_mb']} MB, drift (last - first) "
            f"{s['rss_drift_after_warmup_mb']} MB (goal: within 5 MB)"
        ),
        f"fault: {f['requests']} requests, {f['client_visible_failures']} client-visible failures"
        + (f" {f['failures']}" if f["failures"] else "")
        + " (goal: 0)",
        "  " + "; ".join(f["events"]),
        "  answers by provider and outcome: "
        + "; ".join(f"{name}: {counts}" for name, counts in f["served_by"].items()),
    ]
    if "slowloris" in results:
        w = results["slowloris"]
        lines += [
            (
                f"slowloris: {w['connections']} connections (half silent, half partial headers);"
                f" server fds {w['before']['fds']} -> {w['held']['fds']} held -> "
                f"{w['after']['fds']} after; RSS {w['before']['rss_mb']} -> "
                f"{w['held']['rss_mb']} -> {w['after']['rss_mb']} MB"
            ),
            (
                f"  {w['answered_503_at_once']} answered 503 at once (over the cap); all closed "
                f"within {w['all_closed_within_s']} s more ({w['still_open_after_wait']} still "
                f"open); meanwhile, clients already connected: "
                f"{w['connected_clients_meanwhile']}; a new client: {w['new_client_meanwhile']}"
            ),
            f"  /metrics: {w['metrics']}",
        ]
    lines.append(f"machine: start {results['load_start']}; end {results['load_end']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--sample-every", type=int, default=2_000, help="RSS sample interval")
    parser.add_argument("--warmup", type=int, default=10_000, help="requests before the spread")
    parser.add_argument("--fault-requests", type=int, default=12_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--slow",
        type=int,
        default=3000,
        help="slowloris connections at the end (0: none)",
    )
    parser.add_argument(
        "--header-timeout", type=float, default=10.0, help="the server's header_timeout"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:
        from uvloop import run as run_loop
    except ImportError:
        run_loop = asyncio.run  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="turnout-soak-") as tmp:
        results = run_loop(run(args, Path(tmp)))
    print(report(results))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    failed = sum(results["soak"]["failures"].values()) + results["fault"]["client_visible_failures"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
