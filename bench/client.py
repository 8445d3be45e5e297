"""The benchmark's HTTP client: raw asyncio protocol plus httptools' response parser, so the
client costs little next to what it measures, and every timestamp is taken when bytes arrive.

``Conn`` is one keep-alive HTTP/1.1 connection; ``open_loop`` fires requests at a fixed rate
whatever the server does (open loop: a slow answer never delays the next request, and latency
is measured from the moment a request was due, so queueing shows up in it).
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

import httptools
import orjson

__all__ = ["Conn", "LoadResult", "Reply", "Target", "open_loop", "percentile"]

PROMPT = [{"role": "user", "content": "Say hello in one short sentence."}]


@dataclass(frozen=True)
class Target:
    """One place to send chat completions (or embeddings, when ``path`` ends in
    ``/embeddings``; a Responses request when it ends in ``/responses``): the mock itself or
    a gateway in front of it."""

    name: str
    host: str
    port: int
    path: str = "/v1/chat/completions"
    model: str = "mock"
    api_key: str = "sk-bench"

    def request(self, *, stream: bool = False) -> bytes:
        obj: dict[str, object] = {"model": self.model, "messages": PROMPT, "max_tokens": 64}
        if self.path.endswith("/embeddings"):
            obj = {"model": self.model, "input": PROMPT[0]["content"], "encoding_format": "float"}
        elif self.path.endswith("/responses"):
            obj = {"model": self.model, "input": PROMPT[0]["content"], "max_output_tokens": 64}
            if stream:
                obj["stream"] = True
        elif stream:
            obj["stream"] = True
            obj["stream_options"] = {"include_usage": True}
        body = orjson.dumps(obj)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.api_key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


@dataclass
class Reply:
    status: int = 0
    sent: float = 0.0
    first_byte: float = 0.0
    done: float = 0.0
    events: list[float] = field(default_factory=list)
    """Arrival time of every SSE event that carried content (streams only)."""
    body: bytes = b""

    @property
    def latency(self) -> float:
        return self.done - self.sent

    @property
    def ttft(self) -> float:
        return (self.events[0] if self.events else self.done) - self.sent

    @property
    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.events, self.events[1:], strict=False)]


_CONTENT = (b'"content":"', b'"delta":"')
"""Where a content event's text starts: a chat chunk's ``content``, a Responses
``output_text.delta``'s ``delta``."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reply: Reply | None = None
        self.waiter: asyncio.Future[Reply] | None = None
        self.keep_body = False
        self._buf = b""
        self._parts: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        reply = self.reply
        if reply is not None and not reply.first_byte:
            reply.first_byte = now
        self._now = now
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))

    def on_body(self, body: bytes) -> None:
        if self.keep_body:
            self._parts.append(body)
            return
        buf = self._buf + body if self._buf else body
        *events, self._buf = buf.split(b"\n\n")
        reply = self.reply
        if reply is not None:
            for event in events:
                # A content event with at least one character (the role chunk has "").
                for mark in _CONTENT:
                    i = event.find(mark)
                    if i >= 0 and event[i + len(mark) : i + len(mark) + 1] != b'"':
                        reply.events.append(self._now)
                        break

    def on_message_complete(self) -> None:
        reply, waiter = self.reply, self.waiter
        self.reply = self.waiter = None
        self._buf = b""
        if reply is None or waiter is None or waiter.done():
            return
        reply.status = self.parser.get_status_code()
        reply.done = self._now
        if self._parts:
            reply.body = b"".join(self._parts)
            self._parts = []
        waiter.set_result(reply)

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.reply = self.waiter = None
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc or 'closed by peer'}"))


class Conn:
    """One keep-alive connection to a target; one request at a time."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(_Protocol, host, port)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(transport, protocol)

    @property
    def usable(self) -> bool:
        return not self._protocol.closed

    def send(self, raw: bytes, *, keep_body: bool = False) -> asyncio.Future[Reply]:
        p = self._protocol
        if p.closed:
            raise ConnectionError("connection is closed")
        p.waiter = asyncio.get_running_loop().create_future()
        p.reply = Reply(sent=time.perf_counter())
        p.keep_body = keep_body
        self._transport.write(raw)
        return p.waiter

    def close(self) -> None:
        self._protocol.closed = True
        self._transport.close()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class LoadResult:
    rate: float
    """Offered requests per second."""
    sent: int
    ok: int
    errors: dict[str, int]
    achieved: float
    """Successful responses per second over the run."""
    latencies: list[float]
    lag: float
    """How late the generator fired, at worst (seconds): large means the client saturated."""

    @property
    def error_rate(self) -> float:
        return (self.sent - self.ok) / self.sent if self.sent else 1.0

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        ms = [x * 1000 for x in self.latencies]
        return {
            "offered_rps": round(self.rate, 1),
            "achieved_rps": round(self.achieved, 1),
            "sent": self.sent,
            "ok": self.ok,
            "error_rate": round(self.error_rate, 4),
            "errors": self.errors,
            "p50_ms": round(percentile(ms, 50), 3),
            "p90_ms": round(percentile(ms, 90), 3),
            "p99_ms": round(percentile(ms, 99), 3),
            "max_generator_lag_ms": round(self.lag * 1000, 2),
        }


async def open_loop(
    target: Target,
    rate: float,
    duration: float,
    *,
    timeout: float = 2.0,
    max_conns: int = 1024,
    prewarm: int = 16,
) -> LoadResult:
    """Send ``rate`` requests per second for ``duration`` seconds, each on an idle keep-alive
    connection (a new one when none is idle, up to ``max_conns``)."""
    loop = asyncio.get_running_loop()
    raw = target.request()
    idle: list[Conn] = []
    for _ in range(prewarm):
        idle.append(await Conn.open(target.host, target.port))
    open_count = len(idle)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    last_done = 0.0

    async def one(due: float) -> None:
        nonlocal open_count, last_done
        conn = None
        while idle and conn is None:
            candidate = idle.pop()
            if candidate.usable:
                conn = candidate
            else:
                open_count -= 1  # the server closed it while idle
        try:
            if conn is None:
                if open_count >= max_conns:
                    errors["client connection cap"] += 1
                    return
                open_count += 1
                conn = await Conn.open(target.host, target.port)
            reply = await asyncio.wait_for(conn.send(raw), timeout)
        except TimeoutError:
            errors["timeout"] += 1
            if conn is not None:
                conn.close()
                open_count -= 1
            return
        except OSError as exc:
            errors[type(exc).__name__] += 1
            if conn is not None:
                conn.close()
            open_count -= 1
            return
        if reply.status == 200:
            latencies.append(reply.done - due)
            last_done = max(last_done, reply.done)
        else:
            errors[f"HTTP {reply.status}"] += 1
        idle.append(conn)

    total = int(rate * duration)
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.01
    lag = 0.0
    fired = 0
    while fired < total:
        now = time.perf_counter()
        due = start + fired / rate
        if due > now:
            await asyncio.sleep(min(due - now, 0.001))
            continue
        # Fire everything that is due now (the loop wakes about once a millisecond).
        while fired < total and start + fired / rate <= now:
            due = start + fired / rate
            lag = max(lag, now - due)
            task = loop.create_task(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            fired += 1
    if tasks:
        await asyncio.wait(tasks)
    for conn in idle:
        conn.close()
    span = (last_done or time.perf_counter()) - start
    ok = len(latencies)
    return LoadResult(
        rate=rate,
        sent=total,
        ok=ok,
        errors=dict(errors),
        achieved=ok / span if span > 0 else 0.0,
        latencies=latencies,
        lag=lag,
    )


async def streams_held(
    target: Target, count: int, *, expect: int, stall: float
) -> dict[str, object]:
    """Open ``count`` streams at once; report how many delivered all ``expect`` content events
    and the gaps between two events of one stream. Held: every stream complete and 99 % of
    the gaps at most ``stall`` seconds."""
    raw = target.request(stream=True)

    async def one() -> Reply | str:
        try:
            conn = await Conn.open(target.host, target.port)
        except OSError as exc:
            return type(exc).__name__
        try:
            reply = await asyncio.wait_for(conn.send(raw), 60)
        except (TimeoutError, OSError) as exc:
            return type(exc).__name__
        finally:
            conn.close()
        return reply if reply.status == 200 else f"HTTP {reply.status}"

    outcomes = await asyncio.gather(*[one() for _ in range(count)])
    replies = [o for o in outcomes if isinstance(o, Reply)]
    errors = Counter(o for o in outcomes if isinstance(o, str))
    gaps = [g for r in replies for g in r.gaps]
    worst = max(gaps, default=float("nan"))
    complete = sum(1 for r in replies if len(r.events) == expect)
    return {
        "streams": count,
        "complete": complete,
        "errors": dict(errors),
        "gap_p50_ms": round(percentile(gaps, 50) * 1000, 2),
        "gap_p99_ms": round(percentile(gaps, 99) * 1000, 2),
        "gap_max_ms": round(worst * 1000, 2),
        "held": complete == count and not errors and percentile(gaps, 99) <= stall,
    }
