"""``UsageRecord``: what the request log keeps about one request, built once per request from
the finished result, stream or error."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from ..errors import AllAttemptsFailedError, TurnoutError
from ..streaming import ChatStream
from ..types import ChatResult

__all__ = ["COLUMNS", "UsageRecord", "record_error", "record_result"]


@dataclass(slots=True)
class UsageRecord:
    ts: float
    """UNIX seconds when the request arrived."""
    route: str
    status: int
    request_id: str | None = None
    key_id: str | None = None
    strategy: str | None = None
    provider: str | None = None
    model: str | None = None
    deployment: str | None = None
    stream: bool = False
    error: str | None = None
    """The error class (``RateLimitError``, ...), never its message (it may quote input)."""
    attempts: int = 1
    ttft: float | None = None
    latency: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None

    def values(self) -> tuple[Any, ...]:
        """The record as a row in ``COLUMNS`` order (``dataclasses.asdict`` costs 40 us a
        record; this costs well under one)."""
        return _getter(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
"""The request log's columns, in the order ``UsageRecord.values`` gives them."""
_getter = attrgetter(*COLUMNS)


def record_result(
    served: ChatResult | ChatStream,
    *,
    ts: float,
    route: str,
    cost: float | None,
    key_id: str | None = None,
    strategy: str | None = None,
    error: TurnoutError | None = None,
) -> UsageRecord:
    """The record of a request that reached a deployment: a result, or a stream that finished
    (``error`` set when it broke after its first event)."""
    usage = served.usage
    return UsageRecord(
        ts=ts,
        route=route,
        status=error.status_code if error else 200,
        request_id=served.id,
        key_id=key_id,
        strategy=strategy or served.strategy or None,
        provider=served.provider,
        model=served.model,
        deployment=served.deployment,
        stream=isinstance(served, ChatStream),
        error=type(error).__name__ if error else None,
        attempts=served.attempts,
        ttft=served.time_to_first_token,
        latency=served.latency if served.latency is not None else time.time() - ts,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cost=cost,
    )


def record_error(
    err: TurnoutError,
    *,
    ts: float,
    route: str,
    stream: bool,
    key_id: str | None = None,
    strategy: str | None = None,
) -> UsageRecord:
    """The record of a request that failed before any answer (every attempt failed, or it was
    refused by the gateway itself)."""
    attempts, last = 1, err
    if isinstance(err, AllAttemptsFailedError) and err.attempts:
        attempts, last = len(err.attempts), err.attempts[-1].error
    return UsageRecord(
        ts=ts,
        route=route,
        status=err.status_code,
        key_id=key_id,
        strategy=strategy,
        provider=last.provider,
        model=last.model,
        stream=stream,
        error=type(last).__name__,
        attempts=attempts,
        latency=time.time() - ts,
    )
