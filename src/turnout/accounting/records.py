"""``UsageRecord``: what the request log keeps about one request, built once per request from
the finished result, stream or error."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from ..errors import AllAttemptsFailedError, Attempt, TurnoutError, VerificationFailedError
from ..streaming import ChatStream
from ..types import ChatRequest, ChatResult, EmbeddingRequest, EmbeddingResult

__all__ = [
    "COLUMNS",
    "ERROR_MESSAGE_LIMIT",
    "UsageRecord",
    "attempt_records",
    "judge_records",
    "prompt_text",
    "record_error",
    "record_result",
]


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
    """The error class (``RateLimitError``, ...)."""
    attempts: int = 1
    ttft: float | None = None
    latency: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None
    attempt: int | None = None
    """None on the request's own record; n on the record of its n-th attempt, one that failed
    and was followed by another (so every call to a deployment has exactly one record)."""
    error_message: str | None = None
    """The error's message, redacted and cut to ``ERROR_MESSAGE_LIMIT`` by whoever submits
    the record (the server's ``Meter``), for a free-text search of the log."""
    prompt: str | None = None
    """The request's messages as text, only with ``request_log.store_content`` (redacted,
    cut to ``content_limit``)."""
    answer: str | None = None
    """The answer's text, likewise."""

    def values(self) -> tuple[Any, ...]:
        """The record as a row in ``COLUMNS`` order (``dataclasses.asdict`` costs 40 us a
        record; this costs well under one)."""
        return _getter(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
"""The request log's columns, in the order ``UsageRecord.values`` gives them."""
_getter = attrgetter(*COLUMNS)


def record_result(
    served: ChatResult | ChatStream | EmbeddingResult,
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
        error_message=error.message if error else None,
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
        error_message=last.message,
        attempts=attempts,
        latency=time.time() - ts,
    )


def attempt_records(
    attempts: Sequence[Attempt],
    *,
    ts: float,
    route: str,
    stream: bool,
    request_id: str | None,
    key_id: str | None = None,
    strategy: str | None = None,
    first: int = 1,
) -> list[UsageRecord]:
    """The records of a request's failed attempts (those before the one its own record
    describes), so that a deployment that failed and was failed over from shows in the
    statistics. No tokens, no cost: a failed attempt is not billed, except a cascade step
    whose answer failed verification (it was an answer: its tokens and cost are kept).
    Numbered as attempts of the request from ``first`` on."""
    out = []
    for n, a in enumerate(attempts, first):
        provider, _, model = a.deployment.partition(":")
        record = UsageRecord(
            ts=ts,
            route=route,
            status=a.error.status_code,
            request_id=request_id,
            key_id=key_id,
            strategy=strategy,
            provider=a.error.provider or provider,
            model=a.error.model or model,
            deployment=a.deployment,
            stream=stream,
            error=type(a.error).__name__,
            error_message=a.error.message,
            latency=a.elapsed,
            attempt=n,
        )
        if isinstance(a.error, VerificationFailedError):
            usage = a.error.usage
            record.input_tokens = usage.prompt_tokens
            record.output_tokens = usage.completion_tokens
            record.cached_tokens = usage.cached_tokens
            record.cost = a.error.cost
        out.append(record)
    return out


def judge_records(
    judged: Sequence[ChatResult],
    *,
    ts: float,
    route: str,
    request_id: str | None,
    key_id: str | None = None,
    first: int = 1,
) -> list[UsageRecord]:
    """The records of a cascade judge's calls (strategy ``judge``), numbered as attempts
    of the request from ``first`` on: each call is billed with the request. A judge call's
    own failed attempts come before its answer, and when the judge route is a cascade, its
    rejected steps and its own judge's calls too: the records of a request sum to its
    ``request_cost``."""
    out: list[UsageRecord] = []
    for result in judged:
        out += attempt_records(
            result.failed_attempts,
            ts=ts,
            route=route,
            stream=False,
            request_id=request_id,
            key_id=key_id,
            strategy="judge",
            first=first + len(out),
        )
        out += judge_records(
            result.judged,
            ts=ts,
            route=route,
            request_id=request_id,
            key_id=key_id,
            first=first + len(out),
        )
        record = record_result(result, ts=ts, route=route, cost=result.cost, key_id=key_id)
        record.strategy, record.request_id = "judge", request_id
        record.attempt = first + len(out)
        out.append(record)
    return out


ERROR_MESSAGE_LIMIT = 500
"""Characters of an error message the request log keeps."""


def prompt_text(request: ChatRequest | EmbeddingRequest) -> str:
    """What a request asked, as text: a chat's messages one per line (``role: text``, text
    parts only), an embedding request's texts one per line."""
    if isinstance(request, EmbeddingRequest):
        return "\n".join(request.texts or [])
    lines = []
    for message in request.messages:
        content = message.content
        if isinstance(content, list):
            content = " ".join(t for part in content if (t := getattr(part, "text", None)))
        if content:
            lines.append(f"{message.role}: {content}")
    return "\n".join(lines)
