"""Bounded connections: how long a client may take over a request's headers and its body, how
many connections one server process holds, and what was dropped. The app owns one
``ConnectionGuard`` (read by ``/metrics``) and hands it to the HTTP protocol that enforces it
(``protocol.py``) through the ASGI lifespan state. docs/design.md, "Bounded connections".
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING

import orjson

from ..errors import RequestTimeoutError, ServerBusyError, TurnoutError
from ..redaction import Redactor
from . import openai_wire

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import ServerConfig
    from .dialect import ErrorDialect

__all__ = ["GUARD_STATE_KEY", "LINGER", "STAGES", "ConnectionGuard"]

log = logging.getLogger("turnout.server.connections")

GUARD_STATE_KEY = "turnout_connection_guard"
"""The lifespan-state key under which the app publishes its guard to the protocol."""

LINGER = 1.0
"""Seconds a refused connection stays half-open so that the client reads the 503 (closing with
its request unread would reset the connection and lose the answer)."""

_GENERIC_ONLY = Redactor()
"""The guard's errors are its own words (limits from the config), nothing an upstream said:
the generic shapes are all there is to cut."""

STAGES = ("body", "response")
"""Where a client went away: while sending the body, or while waiting for (or reading) the
answer."""


class ConnectionGuard:
    """The limits one server process enforces on its connections, and what they dropped.
    Plain integers, updated by the protocol on the event loop and read when Prometheus
    scrapes: nothing here costs a request more than an addition."""

    def __init__(
        self,
        header_timeout: float,
        body_timeout: float,
        max_connections: int,
        keep_alive_timeout: float = 5.0,
    ) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.keep_alive_timeout = keep_alive_timeout
        self.open = 0
        self.header_timeouts = 0
        self.body_timeouts = 0
        self.refused = 0
        self.disconnects = dict.fromkeys(STAGES, 0)
        self._full = False
        self.dialect_for: Callable[[str], ErrorDialect] = lambda path: openai_wire.OPENAI_CHAT
        """The error shape of the route for a path: the app sets it (``ingress.route_dialect``
        over its route table)."""
        message = f"the gateway holds its maximum of {max_connections} connections; retry shortly"
        busy = openai_wire.error_body(ServerBusyError(message), _GENERIC_ONLY)
        self._busy_body = orjson.dumps(busy)

    @classmethod
    def from_config(cls, server: ServerConfig) -> ConnectionGuard:
        return cls(
            server.header_timeout,
            server.body_timeout,
            server.max_connections,
            server.keep_alive_timeout,
        )

    def admit(self) -> bool:
        """Count a new connection in, or refuse it when the process is full."""
        if self.open >= self.max_connections:
            self.refused += 1
            if not self._full:
                self._full = True
                log.warning(
                    "%d connections open (server.max_connections): refusing new ones with 503",
                    self.open,
                )
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1
        if self._full and self.open < self.max_connections * 0.9:
            self._full = False
            log.warning("%d connections open: accepting new ones again", self.open)

    def busy_response(self, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        return _raw_response(503, default_headers, self._busy_body, [(b"retry-after", b"1")])

    def timeout_response(self, path: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        """A 408 in the error shape of the route the request was for (``dialect_for``)."""
        err: TurnoutError = RequestTimeoutError(
            f"the request body did not arrive within {self.body_timeout:g} s"
        )
        body = orjson.dumps(self.dialect_for(path).error_body(err, _GENERIC_ONLY))
        return _raw_response(408, default_headers, body, [])


def _raw_response(
    status: int,
    default_headers: list[tuple[bytes, bytes]],
    body: bytes,
    extra: list[tuple[bytes, bytes]],
) -> bytes:
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
    for name, value in [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
        (b"connection", b"close"),
    ]:
        head += [name, b": ", value, b"\r\n"]
    head.append(b"\r\n")
    return b"".join(head) + body
