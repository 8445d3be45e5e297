"""Who is asking and what it cost: the server's bridge from a request to ``Accounting``.

``authorize`` finds the caller (master key, gateway key, or nobody on an open server);
a ``Meter`` admits one request against the key's limits and budget, then records how it
ended (result, stream or error) exactly once. Any handler (OpenAI or Anthropic wire) uses
the same two steps.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence

from starlette.requests import Request

from ..accounting import (
    Accounting,
    GatewayKey,
    UsageRecord,
    attempt_records,
    record_error,
    record_result,
)
from ..accounting.keys import SECRET_PREFIX
from ..errors import AllAttemptsFailedError, Attempt, AuthenticationError, TurnoutError
from ..logs import REQUEST_ID
from ..redaction import Redactor
from ..streaming import ChatStream
from ..types import ChatResult
from .admin import presented_key

__all__ = ["Meter", "authorize"]


async def authorize(request: Request) -> GatewayKey | None:
    """The gateway key of this request; None for the master key or an open server (no
    master key set, and no gateway key presented). Raises ``AuthenticationError``.

    A presented secret that looks like a gateway key (``sk-tn-...``) must be a known, live
    one, whether or not a master key is set: an open server that silently served an unknown
    key would hide a key made against another database, and a revoked key would keep
    working for anything admission does not meter (listing models, routing status)."""
    master: str | None = request.app.state.master_key
    accounting: Accounting | None = request.app.state.accounting
    token = presented_key(request)
    if token is None:
        if master is None:
            return None
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    if master is not None and hmac.compare_digest(token.encode(), master.encode()):
        return None
    key = await accounting.authenticate(token) if accounting is not None else None
    if key is not None:
        return key
    if token.startswith(SECRET_PREFIX):
        where = "" if accounting is not None else " (this server has no key database)"
        raise AuthenticationError(f"unknown gateway key{where}")
    if master is None:
        return None  # an open server: any other key (SDKs insist on one) is no key at all
    raise AuthenticationError("invalid API key")


class Meter:
    __slots__ = (
        "_accounting",
        "_done",
        "_redact",
        "headers",
        "key",
        "request_id",
        "route",
        "stream",
        "ts",
    )

    def __init__(self, request: Request, key: GatewayKey | None, route: str, stream: bool):
        self._accounting: Accounting | None = request.app.state.accounting
        self._redact: Redactor = request.app.state.gateway.redactor
        self.key = key
        self.route = route
        self.stream = stream
        self.ts = time.time()
        self.request_id = REQUEST_ID.get()
        self.headers: dict[str, str] = {}
        self._done = False

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None

    async def admit(self) -> None:
        if self._accounting is not None and self.key is not None:
            self.headers = await self._accounting.admit(self.key, self.route, self.ts)

    async def failed(self, err: TurnoutError) -> None:
        if self._accounting is None or self._done:
            return
        self._done = True
        # The route is the client's text: a refused one may be a key pasted in the wrong field.
        route = self._redact(self.route)
        record = record_error(err, ts=self.ts, route=route, stream=self.stream, key_id=self.key_id)
        record.request_id = self.request_id
        if isinstance(err, AllAttemptsFailedError):  # the record describes the last attempt
            self._attempts(err.attempts[:-1], record)
        await self._accounting.settle(self.key, record)

    async def served(self, result: ChatResult, cost: float | None) -> None:
        if self._accounting is None or self._done:
            return
        self._done = True
        record = record_result(result, ts=self.ts, route=self.route, cost=cost, key_id=self.key_id)
        record.request_id = self.request_id or record.request_id
        self._attempts(result.failed_attempts, record)
        await self._accounting.settle(self.key, record)

    def stream_closed(
        self, stream: ChatStream, cost: float | None, error: TurnoutError | None
    ) -> None:
        """Called from the stream's ``finally``: must not wait (the client may be gone)."""
        if self._accounting is None or self._done:
            return
        self._done = True
        record = record_result(
            stream, ts=self.ts, route=self.route, cost=cost, key_id=self.key_id, error=error
        )
        record.request_id = self.request_id or record.request_id
        if error is None and stream.latency is None:
            record.status, record.error = 499, "ClientDisconnected"
        self._attempts(stream.failed_attempts, record)
        self._accounting.settle_soon(self.key, record)

    def _attempts(self, failed: Sequence[Attempt], record: UsageRecord) -> None:
        if failed and self._accounting is not None:
            self._accounting.log_attempts(
                attempt_records(
                    failed,
                    ts=self.ts,
                    route=record.route,
                    stream=self.stream,
                    request_id=record.request_id,
                    key_id=self.key_id,
                    strategy=record.strategy,
                )
            )
