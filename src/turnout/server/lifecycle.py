"""Graceful shutdown: what a replica does between SIGTERM and exit.

    SIGTERM ── readiness 503 at once (balancers stop sending)
       │ server.shutdown_grace_period: new requests are still served
       ├── the listener closes; idle keep-alive connections close (uvicorn)
       │ requests and streams in flight go on
    server.shutdown_timeout after SIGTERM ── what is still running ends with an explicit
       error (a 503, or an error event in the stream), never a silent cut
       └── lifespan shutdown: the request-log queue is flushed, pools close

Each worker process of ``--workers N`` does this on its own: uvicorn's supervisor passes
SIGTERM to every worker. A second SIGTERM skips the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any

import orjson

from ..errors import ShuttingDownError
from ..logs import REQUEST_ID
from ..redaction import Redactor
from .dialect import ErrorDialect
from .health import Readiness
from .openai_wire import OPENAI_CHAT
from .request_id import HEADER, request_id

__all__ = ["Lifecycle", "TrackRequests"]

log = logging.getLogger("turnout.server")

_MESSAGE = "the gateway is shutting down and this request ran past server.shutdown_timeout"
_NOTHING_TO_REDACT = Redactor()  # the message is the gateway's own words


class _Exchange:
    """One HTTP request in flight, as far as its response has gone."""

    __slots__ = ("cut", "finished", "headers", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        """What decides the error's shape if the request is cut (looked up then, not now)."""
        self.finished = self.cut = False
        self.headers: list[tuple[bytes, bytes]] | None = None
        """The response's headers once it has started."""

    @property
    def sse(self) -> bool:
        """The response is an event stream (read only when a cut needs it)."""
        return any(
            k.lower() == b"content-type" and v.startswith(b"text/event-stream")
            for k, v in self.headers or ()
        )


class Lifecycle:
    """The shutdown sequence of one server process (see the module docstring)."""

    def __init__(self, readiness: Readiness, grace_period: float, timeout: float) -> None:
        self.readiness = readiness
        self.grace_period = grace_period
        self.timeout = timeout
        self.draining = False
        self.inflight: dict[asyncio.Task[Any], _Exchange] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dialect_for: Callable[[str], ErrorDialect] = lambda path: OPENAI_CHAT
        """The error shape of the route for a path: the app sets it (``ingress.route_dialect``
        over its route table, as for the errors that never reach a handler)."""

    def install(self) -> None:
        """Take SIGTERM (and SIGINT, without the grace period: someone at a terminal) over
        from the server (uvicorn), whose own handler runs when the listener is to close.
        Called at start-up; does nothing off the main thread (tests run servers in threads
        and call ``begin_shutdown`` themselves)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        for sig, grace in ((signal.SIGTERM, self.grace_period), (signal.SIGINT, 0.0)):
            previous = signal.getsignal(sig)
            if callable(previous):
                signal.signal(sig, partial(self._on_signal, previous, grace))

    def _on_signal(
        self,
        previous: Callable[[int, FrameType | None], Any],
        grace: float,
        sig: int,
        frame: FrameType | None,
    ) -> None:
        if self.draining or self._loop is None:
            previous(sig, frame)  # a second signal: stop listening now
            return
        self._loop.call_soon_threadsafe(self.begin_shutdown, partial(previous, sig, frame), grace)

    def begin_shutdown(
        self, stop_listening: Callable[[], Any] | None = None, grace: float | None = None
    ) -> None:
        """Turn readiness to 503, close the listener after the grace period (by calling
        ``stop_listening``: the server's own exit handler), and cut what is still in flight
        once ``timeout`` has passed."""
        if self.draining:
            return
        grace = self.grace_period if grace is None else grace
        self.draining = True
        self.readiness.drain()
        log.info(
            "shutting down: not ready; closing the listener in %.1f s; %d request(s) in "
            "flight have %.1f s",
            grace,
            len(self.inflight),
            self.timeout,
        )
        loop = asyncio.get_running_loop()
        if stop_listening is not None:
            loop.call_later(grace, stop_listening)
        loop.call_later(self.timeout, self._expire)

    def _expire(self) -> None:
        running = [(t, x) for t, x in self.inflight.items() if not x.finished]
        if running:
            log.warning(
                "shutdown timeout: ending %d request(s) still in flight with an error",
                len(running),
            )
        for task, exchange in running:
            exchange.cut = True
            task.cancel()


class TrackRequests:
    """The one ASGI wrapper every HTTP request passes, outermost: gives the request its id
    (``REQUEST_ID`` while it is served, ``x-request-id`` on its response: see
    ``request_id``), registers it with the ``Lifecycle`` and, when the shutdown timeout cuts
    it, ends its response with an explicit error in the route's own shape (its dialect in the
    route table): a 503 before the first byte, an error event mid-stream. One wrapper of
    ``send`` for both, doing no more per message than a dictionary look-up or two: a stream
    sends a message per event."""

    def __init__(self, app: Any, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        exchange = _Exchange(scope["path"])
        raw = request_id(scope["headers"])
        header = (HEADER, raw)

        async def tracked(message: Any) -> None:
            kind = message["type"]
            if kind == "http.response.body":
                if not message.get("more_body"):
                    exchange.finished = True
            elif kind == "http.response.start":
                exchange.headers = message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        inflight = self.lifecycle.inflight
        inflight[task] = exchange
        token = REQUEST_ID.set(raw.decode())
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not exchange.cut:
                raise
            task.uncancel()
            await _end(exchange, self.lifecycle.dialect_for(exchange.path), tracked)
        finally:
            REQUEST_ID.reset(token)
            del inflight[task]


async def _end(exchange: _Exchange, dialect: ErrorDialect, send: Any) -> None:
    if exchange.finished:
        return
    err = ShuttingDownError(_MESSAGE)
    if exchange.headers is None:
        body = orjson.dumps(dialect.error_body(err, _NOTHING_TO_REDACT))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"1"),
            (b"connection", b"close"),
        ]
        status = dialect.error_status(err)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    tail = dialect.stream_error(err, _NOTHING_TO_REDACT) if exchange.sse else b""
    await send({"type": "http.response.body", "body": tail, "more_body": False})
