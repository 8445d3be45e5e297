"""Vendor-neutral script steps for the fake upstreams, and the surface every fake shares.

A test (or the conformance suite) queues steps on a fake with ``then``; each incoming request
pops the next step (``Reply()`` when the script is empty) and the fake renders it in its own
vendor's wire format: the same ``Fail(429)`` is an OpenAI error object on the OpenAI fake, a
``RESOURCE_EXHAUSTED`` status on the Gemini fake and a ``ThrottlingException`` on Bedrock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Reply:
    text: str = "Hello from the fake upstream."
    tool_call: tuple[str, str] | None = None
    """(name, JSON arguments): answer with a tool call instead of text."""
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int = 0
    delay: float = 0.0
    """Seconds before the response (headers) is sent."""
    chunk_delay: float = 0.0
    """Seconds between stream events."""
    # Wire knobs for SSE fakes (the OpenAI fake honours them; others may).
    crlf: bool = False
    comments: bool = False
    split: bool = False
    """Write the stream a few bytes at a time, splitting events and lines."""
    done: bool = True
    """End an OpenAI stream with ``[DONE]``."""

    @property
    def words(self) -> list[str]:
        """The text as stream deltas: one word each, spaces kept, joined back exactly."""
        parts = self.text.split(" ")
        return [p + " " for p in parts[:-1]] + [parts[-1]]


@dataclass
class Fail:
    """An HTTP error status with the vendor's own error body."""

    status: int
    message: str = "upstream failure"
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None
    type: str = "server_error"


@dataclass
class Hang:
    """Accept the request and say nothing for ``seconds``."""

    seconds: float = 30.0


@dataclass
class Cut:
    """Stream ``keep`` events of a reply, then drop the connection without finishing."""

    keep: int = 2


@dataclass
class StreamError:
    """Stream ``after`` text events, then the vendor's own in-band error event or line."""

    after: int = 1
    message: str = "upstream broke mid-stream"


@dataclass
class Reset:
    """Read the request, then drop the connection without a byte of response."""


@dataclass
class Stall:
    """Start a stream (headers and an empty first event), then say nothing for ``seconds``."""

    seconds: float = 30.0


@dataclass
class Raw:
    """Exactly these bytes, for malformed-response tests."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"


class FakeUpstream:
    """What every fake shares: ``app``, ``script``, ``calls`` (``record``), ``reset`` and ``then``.

    Subclasses add their routes to ``app`` (``handle`` records and dispatches) and implement
    ``render`` for the steps above in their wire format.
    """

    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        self.calls: list[dict[str, Any]] = []
        self.app = web.Application()

    def reset(self) -> None:
        self.script.clear()
        self.calls.clear()

    def then(self, *steps: Any) -> FakeUpstream:
        self.script.extend(steps)
        return self

    def record(self, request: web.Request, raw: bytes, body: Any, **extra: Any) -> None:
        """One call as ``calls`` holds it: path, query, headers, parsed body and raw bytes, and
        what else a fake notes."""
        self.calls.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
                "raw": raw,
                **extra,
            }
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw and raw[:1] in (b"{", b"[") else {}
        self.record(request, raw, body)
        step = self.script.popleft() if self.script else Reply()
        if isinstance(step, Reset):
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if isinstance(step, Raw):
            return web.Response(body=step.body, status=step.status, content_type=step.content_type)
        return await self.render(step, request, body)

    async def render(
        self, step: Any, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        raise NotImplementedError


async def drop(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Close the connection under a half-written response (what ``Cut`` does)."""
    assert request.transport is not None
    request.transport.close()
    return resp
