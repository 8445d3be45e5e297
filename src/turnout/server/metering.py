"""What a model call costs and how it ended, in one place for every path that calls a model
(both ingresses and the management API's generate, stream and test).

A ``Meter`` admits one request against its gateway key's limits and budget, makes the call,
gives the response's cost and limit headers, and records how it ended (result, stream or
error) exactly once: the request log and the metrics. A whole result and a stream are
metered alike; a stream's record is written when it closes (finished, failed mid-way, or left
by its client).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Sequence

from starlette.requests import Request

from ..accounting import (
    Accounting,
    UsageRecord,
    attempt_records,
    judge_records,
    record_error,
    record_result,
)
from ..accounting.records import ERROR_MESSAGE_LIMIT, prompt_text
from ..errors import AllAttemptsFailedError, Attempt, TurnoutError, VerificationFailedError
from ..gateway import Gateway
from ..logs import REQUEST_ID
from ..metrics import Metrics
from ..redaction import Redactor, excerpt
from ..streaming import ChatStream
from ..types import ChatRequest, ChatResult, EmbeddingRequest, EmbeddingResult
from .auth import Caller
from .dialect import StreamRender
from .openai_wire import format_usd, header_texts

__all__ = ["Meter"]

log = logging.getLogger("turnout.server")


def _observe(metrics: Metrics, r: ChatResult | ChatStream | EmbeddingResult) -> None:
    """The answer, and a cascade's other answered calls (rejected steps, the judge's): each
    was served and paid for."""
    model = r.deployment.partition(":")[2] or r.model
    metrics.observe(r.provider, model, r.usage, r.cost, r.time_to_first_token, r.latency)
    if isinstance(r, EmbeddingResult):
        return
    for a in r.failed_attempts:
        err = a.error
        if isinstance(err, VerificationFailedError):
            provider, _, upstream = a.deployment.partition(":")
            metrics.observe(provider, upstream, err.usage, err.cost, None, a.elapsed)
    for judged in r.judged:
        _observe(metrics, judged)


class Meter:
    __slots__ = (
        "_accounting",
        "_done",
        "_metrics",
        "_prompt",
        "_redact",
        "_store",
        "caller",
        "headers",
        "request_id",
        "route",
        "stream",
        "ts",
    )

    def __init__(self, request: Request, caller: Caller, route: str, stream: bool) -> None:
        self._accounting: Accounting | None = request.app.state.accounting
        self._metrics: Metrics = request.app.state.metrics
        self._redact: Redactor = request.app.state.gateway.redactor
        self.caller = caller
        self.route = route
        self.stream = stream
        self.ts = time.time()
        self.request_id = REQUEST_ID.get()
        self.headers: dict[str, str] = {}
        """The key's limit headers, set by ``admit``."""
        self._done = False
        log_config = request.app.state.gateway.config.request_log
        self._store = log_config.content_limit if log_config.store_content else 0
        """Characters of prompt and answer the record keeps; 0: none (the default)."""
        self._prompt: ChatRequest | EmbeddingRequest | None = None

    async def call(self, gateway: Gateway, chat: ChatRequest) -> ChatResult | ChatStream:
        """Admit, then call the gateway: a stream when the request asks for one. A failure
        before any byte is recorded and raised."""
        if chat.stream:
            return await self.open_stream(gateway, chat)
        self._prompt = chat
        try:
            await self.admit()
            return await gateway.chat(chat)
        except TurnoutError as err:
            await self.failed(err)
            raise

    async def embed(self, gateway: Gateway, request: EmbeddingRequest) -> EmbeddingResult:
        """Admit, then embed; a failure is recorded and raised."""
        self._prompt = request
        try:
            await self.admit()
            return await gateway.embed(request)
        except TurnoutError as err:
            await self.failed(err)
            raise

    async def open_stream(self, gateway: Gateway, chat: ChatRequest) -> ChatStream:
        """Admit, then open a stream whatever the request says (the management API streams
        upstream to time the first token)."""
        self._prompt = chat
        try:
            await self.admit()
            return await gateway.stream(chat)
        except TurnoutError as err:
            await self.failed(err)
            raise

    def response_headers(self, served: ChatResult | ChatStream | EmbeddingResult) -> dict[str, str]:
        """Who served the request, what it cost (a whole result's; a stream's is known only
        at its end, where the dialect reports it) and the key's limit headers."""
        headers = {
            "x-turnout-provider": served.provider,
            "x-turnout-model": served.model,
            "x-turnout-deployment": served.deployment,
            "x-turnout-attempts": str(served.attempts),
            "x-turnout-strategy": served.strategy or "priority",
        }
        if served.task:
            headers["x-turnout-task"] = served.task
        if served.estimates:
            headers["x-turnout-estimates"] = served.estimates
        if not isinstance(served, EmbeddingResult) and served.cascade:
            headers["x-turnout-cascade"] = served.cascade
        cost = served.request_cost if not isinstance(served, ChatStream) else None
        if cost is not None:  # the whole request's: a cascade's rejected steps and judge too
            headers["x-turnout-cost-usd"] = format_usd(cost)
        # The values echo text from the client (a task hint) and the upstream (the model it
        # reports): each goes through ``header_text``.
        return {**header_texts(headers), **self.headers}

    async def admit(self) -> None:
        key = self.caller.key
        if self._accounting is not None and key is not None:
            self.headers = await self._accounting.admit(key, self.route, self.ts)

    async def failed(self, err: TurnoutError) -> None:
        if self._accounting is None or self._done:
            return
        self._done = True
        # The route is the client's text: a refused one may be a key pasted in the wrong field.
        route = self._redact(self.route)
        record = record_error(
            err, ts=self.ts, route=route, stream=self.stream, key_id=self.caller.key_id
        )
        record.request_id = self.request_id
        self._content(record, None)
        others = []
        if isinstance(err, AllAttemptsFailedError):  # the record describes the last attempt
            others = self._others(err.attempts[:-1], (), record)
        await self._accounting.settle(self.caller.key, record, others)

    async def served(self, result: ChatResult | EmbeddingResult) -> None:
        """A whole result: metrics, then the request log and the key's spend."""
        _observe(self._metrics, result)
        if self._accounting is None or self._done:
            return
        self._done = True
        record = record_result(
            result, ts=self.ts, route=self.route, cost=result.cost, key_id=self.caller.key_id
        )
        record.request_id = self.request_id or record.request_id
        judged = result.judged if isinstance(result, ChatResult) else ()
        self._content(record, result)
        others = (
            self._others(result.failed_attempts, judged, record)
            if result.failed_attempts or judged
            else []
        )
        await self._accounting.settle(self.caller.key, record, others)

    async def collect(self, stream: ChatStream) -> ChatResult:
        """A stream read whole (the management API streams upstream to time the first
        token); a failure is recorded, the result is the caller's to pass to ``served``."""
        try:
            return await stream.collect()
        except TurnoutError as err:
            await self.failed(err)
            raise
        finally:
            await stream.aclose()

    async def relay(self, stream: ChatStream, render: StreamRender) -> AsyncGenerator[bytes, None]:
        """The frames of a streamed response, metered when the stream closes."""
        failure: TurnoutError | None = None
        try:
            start = render.start()
            if start:
                yield start
            async for event in stream:
                frame = render.event(event)
                if frame:
                    yield frame
            _observe(self._metrics, stream)
            yield render.end(stream)
        except TurnoutError as err:
            # Bytes already went out, so the status is fixed: report in-band, never
            # truncate silently.
            failure = err
            log.warning("stream from %s failed mid-way: %s", stream.deployment, err)
            self._metrics.observe_error(err)
            yield render.error(err, self._redact)
        finally:
            await stream.aclose()
            self._stream_closed(stream, failure)

    def _stream_closed(self, stream: ChatStream, error: TurnoutError | None) -> None:
        """From the stream's ``finally``: must not wait (the client may be gone)."""
        if self._accounting is None or self._done:
            return
        self._done = True
        record = record_result(
            stream,
            ts=self.ts,
            route=self.route,
            cost=stream.cost,
            key_id=self.caller.key_id,
            error=error,
        )
        record.request_id = self.request_id or record.request_id
        if error is None and stream.latency is None:
            record.status, record.error = 499, "ClientDisconnected"
        self._content(record, stream)
        others = (
            self._others(stream.failed_attempts, stream.judged, record)
            if stream.failed_attempts or stream.judged
            else []
        )
        self._accounting.settle_soon(self.caller.key, record, others)

    def _content(
        self, record: UsageRecord, answer: ChatResult | ChatStream | EmbeddingResult | None
    ) -> None:
        """The error message, always, and the prompt and ``answer``'s text when the config
        keeps them: secrets redacted before cutting (a key cut in two would no longer be
        recognised)."""
        if record.error_message:
            self._error_message(record)
        if not self._store:
            return
        if self._prompt is not None:
            record.prompt = self._clip(prompt_text(self._prompt), self._store)
        text = answer.text if isinstance(answer, ChatResult | ChatStream) else None
        record.answer = self._clip(text or "", self._store)

    def _error_message(self, record: UsageRecord) -> None:
        if record.error_message:
            record.error_message = self._clip(record.error_message, ERROR_MESSAGE_LIMIT)

    def _clip(self, text: str, limit: int) -> str | None:
        """Secrets redacted, then cut (never inside a word: see ``excerpt``); None when
        empty."""
        return excerpt(self._redact(text), limit) or None

    def _others(
        self, failed: Sequence[Attempt], judged: Sequence[ChatResult], record: UsageRecord
    ) -> list[UsageRecord]:
        """A record per failed attempt before the final one (a deployment failed over from
        shows in the statistics; a cascade's rejected step with its cost), then one per
        answer of a cascade's judge: settled with the request's own record."""
        records = attempt_records(
            failed,
            ts=self.ts,
            route=record.route,
            stream=self.stream,
            request_id=record.request_id,
            key_id=self.caller.key_id,
            strategy=record.strategy,
        )
        records += judge_records(
            judged,
            ts=self.ts,
            route=record.route,
            request_id=record.request_id,
            key_id=self.caller.key_id,
            first=len(records) + 1,
        )
        for other in records:
            self._error_message(other)
        return records
