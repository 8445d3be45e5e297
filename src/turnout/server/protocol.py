"""The HTTP protocol of ``turnout serve``: uvicorn's httptools protocol plus the deadlines and
the cap of a ``ConnectionGuard`` (``connections.py``). Passed as uvicorn's ``http=`` setting;
kept apart so that importing the app does not import uvicorn. docs/design.md, "Bounded
connections", says why a protocol subclass.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .connections import GUARD_STATE_KEY, LINGER, ConnectionGuard

if TYPE_CHECKING:
    from uvicorn.config import Config as UvicornConfig
    from uvicorn.server import ServerState

__all__ = ["GuardedHttpProtocol", "uvicorn_options"]

log = logging.getLogger("turnout.server.connections")


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a body deadline and a connection
    cap and the keep-alive timeout, all from the ``ConnectionGuard`` in the lifespan state
    (without one it is uvicorn's protocol unchanged).

    - Headers: a timer from ``connection_made`` (a client that sends nothing) and from the
      first byte after a finished exchange, cancelled when the headers are complete. On expiry
      the connection is closed: there is no request to answer yet.
    - Body: a timer from the end of the headers to the end of the body. On expiry the client
      gets a 408 in the route's error shape when no answer has started, and the connection is
      closed; the handler waiting for the body sees a disconnect and its answer goes nowhere.
      A wait that is the server's doing (a pipelined request queued behind another, reading
      paused because the handler has not consumed the buffered body) re-arms the timer.
    - Cap: over ``max_connections`` a new connection gets a 503 at once, is half-closed and
      closed after ``LINGER`` seconds (or when the client closes), and is never parsed.
    - A client that closes mid-request is counted (and logged on one line), not an error.
    """

    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard: ConnectionGuard | None = app_state.get(GUARD_STATE_KEY)
        if self._guard is not None:
            self.timeout_keep_alive = self._guard.keep_alive_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self._refused = False
        self._closed_here = False
        self._peer_eof = False

    # -- connection life ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self._guard
        if guard is None:
            return
        if not guard.admit():
            self._refuse(guard)
            return
        self._admitted = True
        self._header_timer = self.loop.call_later(guard.header_timeout, self._headers_late)

    def _refuse(self, guard: ConnectionGuard) -> None:
        self._refused = self._closed_here = True
        self.transport.write(guard.busy_response(self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._header_timer = self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()

    def eof_received(self) -> None:
        self._peer_eof = True
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        guard = self._guard
        if self._admitted and guard is not None:
            self._admitted = False
            guard.release()
            cycle = self.cycle
            went_away = exc is not None or self._peer_eof
            if (
                went_away
                and not self._closed_here
                and cycle is not None
                and not cycle.response_complete
            ):
                self._client_went_away(guard, "body" if cycle.more_body else "response")
        super().connection_lost(exc)

    def _client_went_away(self, guard: ConnectionGuard, stage: str) -> None:
        guard.disconnects[stage] += 1
        scope = self.scope
        what = f"{scope.get('method', '?')} {scope.get('path', '?')}" if scope else "a request"
        if stage == "body":
            log.info("client %s went away while sending the body of %s", self._peer(), what)
        else:
            log.debug("client %s went away before the end of the answer to %s", self._peer(), what)

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "?"

    def _cancel_timers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    # -- reading a request -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped, so that closing does not reset the connection
        guard = self._guard
        if (
            guard is not None
            and self._header_timer is None
            and self._body_timer is None
            and (self.cycle is None or self.cycle.response_complete)
        ):
            # The first byte of the next request on a kept-alive connection.
            self._header_timer = self.loop.call_later(guard.header_timeout, self._headers_late)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        guard = self._guard
        if guard is not None:
            self._body_timer = self.loop.call_later(guard.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()
        cycle = self.cycle
        if (
            cycle is not None
            and cycle.response_complete
            and self.timeout_keep_alive_task is None
            and not self.pipeline
            and not self.transport.is_closing()
        ):
            # The answer went out before the body was in (e.g. a 401); the body's bytes
            # cancelled uvicorn's keep-alive timer, so arm it again for the idle connection.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    # -- deadlines ---------------------------------------------------------------------------

    def _headers_late(self) -> None:
        self._header_timer = None
        guard = self._guard
        if guard is None or self.transport.is_closing():
            return
        guard.header_timeouts += 1
        log.debug(
            "closed the connection from %s: no complete request headers within %g s",
            self._peer(),
            guard.header_timeout,
        )
        self._closed_here = True
        self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        guard = self._guard
        if guard is None or self.transport.is_closing():
            return
        if self.pipeline or self.flow.read_paused:
            # Not the client's delay: this request waits behind another, or the server
            # stopped reading until the handler consumes what is buffered.
            self._body_timer = self.loop.call_later(guard.body_timeout, self._body_late)
            return
        guard.body_timeouts += 1
        cycle, scope = self.cycle, self.scope
        log.info(
            "closed the connection from %s: the body of %s %s did not arrive within %g s",
            self._peer(),
            scope["method"],
            scope["path"],
            guard.body_timeout,
        )
        self._closed_here = True
        if cycle is not None and not cycle.response_started:
            self.transport.write(
                guard.timeout_response(scope["path"], self.server_state.default_headers)
            )
        if cycle is not None:
            # The handler waiting in receive() sees a disconnect; whatever it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def uvicorn_options() -> dict[str, Any]:
    """The uvicorn settings of a Turnout server: the guarded protocol, which takes its limits
    from the app's config. uvicorn's ``limit_concurrency`` stays off: the guard's cap replaces
    it (docs/design.md says why)."""
    return {"http": GuardedHttpProtocol}
