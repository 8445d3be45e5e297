"""The one streaming object: typed events in, usage accumulated, time to first token recorded,
and ``final()`` giving the same ``ChatResult`` a non-streaming call returns.

Every adapter's stream is wrapped in a ``ChatStream``, so timing is measured the same way for
all of them: from the request's start to the first content event (text or tool call).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from .errors import TurnoutError, UpstreamServerError, UpstreamTimeoutError
from .types import (
    ChatResult,
    Choice,
    Finish,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
    whole_cost,
)

if TYPE_CHECKING:
    from .catalogue import ModelEntry

__all__ = ["ChatStream", "new_id"]


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


class _ChoiceAcc:
    __slots__ = ("finish", "stop_sequence", "text", "thinking", "tools")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.thinking: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.stop_sequence: str | None = None

    def think(self, event: ThinkingDelta) -> None:
        """Assemble reasoning blocks as Anthropic's API returns them whole."""
        block = self.thinking.get(event.block)
        if block is None:
            block = self.thinking[event.block] = (
                {"type": "redacted_thinking", "data": ""}
                if event.redacted is not None
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
        if event.redacted is not None:
            block["data"] += event.redacted
        else:
            block["thinking"] = block.get("thinking", "") + event.thinking
            if event.signature:
                block["signature"] = event.signature

    def extra(self) -> dict[str, Any]:
        if not self.thinking:
            return {}
        blocks = [self.thinking[n] for n in sorted(self.thinking)]
        text = "".join(b.get("thinking", "") for b in blocks)
        return (
            {"reasoning_content": text, "thinking_blocks": blocks}
            if text
            else {"thinking_blocks": blocks}
        )


class ChatStream:
    """An async iterator of ``StreamEvent`` with the bookkeeping every consumer needs."""

    def __init__(
        self,
        events: AsyncIterator[StreamEvent],
        *,
        id: str,
        provider: str,
        model: str,
        deployment: str,
        started: float | None = None,
        created: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self._events = events
        self.id = id or new_id()
        self.provider = provider
        self.model = model
        self.deployment = deployment
        self.started = started if started is not None else time.perf_counter()
        self.created = created if created is not None else int(time.time())
        self.time_to_first_token: float | None = None
        self.latency: float | None = None
        self.usage = Usage()
        self.attempts = 1
        self.failed_attempts: list[Any] = []
        """The ``errors.Attempt`` of each deployment that failed before this one answered."""
        self.strategy = ""
        self.task: str | None = None
        self.estimates: str | None = None
        self.cascade: str | None = None
        self.judged: list[ChatResult] = []
        """``cascade`` routing: the judge's answers, billed with the request."""
        self.on_done: Callable[[ChatStream, TurnoutError | None], None] | None = None
        """Called once when the stream ends, fails or is closed (routing records its health
        and latency here)."""
        self.entry: ModelEntry | None = None
        """The served model's catalogue entry (set by the gateway): prices the usage."""
        self._choices: dict[int, _ChoiceAcc] = {}
        self._pending: list[StreamEvent] = []
        self._done = False
        self._deadline = deadline

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._pending:
            return self._pending.pop(0)
        return await self._next()

    async def _next(self) -> StreamEvent:
        if self._done:
            raise StopAsyncIteration
        try:
            if self._deadline is None:
                event = await self._events.__anext__()
            else:
                async with asyncio.timeout_at(self._deadline):
                    event = await self._events.__anext__()
        except TimeoutError:
            err: TurnoutError = UpstreamTimeoutError(
                "stream exceeded its total timeout",
                provider=self.provider,
                model=self.model,
                code="total_timeout",
            )
            self._finish(err)
            await self.aclose()
            raise err from None
        except StopAsyncIteration:
            self._done = True
            if not self._choices or any(c.finish is None for c in self._choices.values()):
                err = UpstreamServerError(
                    "stream ended before the model finished (no finish reason): "
                    "the answer would be truncated",
                    provider=self.provider,
                    model=self.model,
                    code="stream_truncated",
                )
                self._finish(err)
                raise err from None
            self.latency = time.perf_counter() - self.started
            self._finish(None)
            raise
        except TurnoutError as exc:
            self._finish(exc)
            raise
        self._record(event)
        return event

    async def peek(self) -> StreamEvent | None:
        """Wait for the first event without consuming it (used to fail over before anything
        reaches the client). None when the stream ended cleanly with no events."""
        if not self._pending:
            try:
                self._pending.append(await self._next())
            except StopAsyncIteration:
                return None
        return self._pending[0]

    def _record(self, event: StreamEvent) -> None:
        if isinstance(event, UsageUpdate):
            self.usage = event.usage
            return
        acc = self._choices.get(event.choice)
        if acc is None:
            acc = self._choices[event.choice] = _ChoiceAcc()
        if isinstance(event, TextDelta):
            if self.time_to_first_token is None:
                self.time_to_first_token = time.perf_counter() - self.started
            acc.text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            if self.time_to_first_token is None:
                self.time_to_first_token = time.perf_counter() - self.started
            call = acc.tools.get(event.index)
            if call is None:
                call = acc.tools[event.index] = {"id": event.id, "name": event.name, "args": []}
            else:
                call["id"] = call["id"] or event.id
                call["name"] = call["name"] or event.name
            call["args"].append(event.arguments)
            if event.extra:
                call["extra"] = {**call.get("extra", {}), **event.extra}
        elif isinstance(event, ThinkingDelta):
            if self.time_to_first_token is None:
                self.time_to_first_token = time.perf_counter() - self.started
            acc.think(event)
        elif isinstance(event, Finish):
            acc.finish = event.reason
            acc.stop_sequence = event.stop_sequence

    @property
    def cost(self) -> float | None:
        """USD for the usage seen so far (the whole answer's once the stream has ended)."""
        return self.entry.cost(self.usage) if self.entry is not None else None

    @property
    def request_cost(self) -> float | None:
        """What the whole request cost once the stream has ended: ``cost`` plus, on a
        cascade, every rejected step's and judge call's (``types.whole_cost``)."""
        return whole_cost(self.cost, self.failed_attempts, self.judged)

    def _finish(self, error: TurnoutError | None) -> None:
        self._done = True
        callback, self.on_done = self.on_done, None
        if callback is not None:
            callback(self, error)

    async def aclose(self) -> None:
        self._finish(None)
        closer = getattr(self._events, "aclose", None)
        if closer is not None:
            await closer()

    async def collect(self) -> ChatResult:
        """Drain the stream and return the assembled result."""
        async for _ in self:
            pass
        return self.final()

    @property
    def text(self) -> str:
        """The first choice's text so far (``final().text`` once the stream is done)."""
        acc = self._choices.get(0)
        return "".join(acc.text) if acc is not None else ""

    def final(self) -> ChatResult:
        choices = []
        for index in sorted(self._choices):
            acc = self._choices[index]
            tools = [
                {
                    "id": call["id"] or f"call_{index}_{n}",
                    "type": "function",
                    "function": {"name": call["name"] or "", "arguments": "".join(call["args"])},
                    **call.get("extra", {}),
                }
                for n, call in sorted(acc.tools.items())
            ]
            text = "".join(acc.text)
            choices.append(
                Choice(
                    index=index,
                    content=text if text or not tools else None,
                    tool_calls=tools or None,
                    finish_reason=acc.finish,
                    extra=acc.extra(),
                    stop_sequence=acc.stop_sequence,
                )
            )
        return ChatResult(
            id=self.id,
            model=self.model,
            provider=self.provider,
            choices=choices,
            usage=self.usage,
            created=self.created,
            deployment=self.deployment,
            time_to_first_token=self.time_to_first_token,
            latency=self.latency,
            attempts=self.attempts,
            failed_attempts=self.failed_attempts,
            strategy=self.strategy,
            task=self.task,
            estimates=self.estimates,
            cost=self.cost,
            cascade=self.cascade,
            judged=self.judged,
        )
