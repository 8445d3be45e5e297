"""What differs between the wire APIs the server speaks: a ``Dialect`` parses an incoming body
into the canonical ``ChatRequest`` and renders a result, a stream and an error in its own
shape (the embeddings surface's ``EmbeddingsDialect`` parses an ``EmbeddingRequest``
instead; the Responses surface's ``OpenAIResponses`` parses a call that may continue a stored
conversation, so its handler adds that lookup and the storing). Everything else (caller,
body, limits, the call, metering) is the one pipeline in ``ingress``; a new surface is a new
dialect, not a new pipeline.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from starlette.responses import Response

from ..errors import TurnoutError
from ..redaction import Redactor
from ..streaming import ChatStream
from ..types import ChatRequest, ChatResult, StreamEvent

__all__ = [
    "Dialect",
    "ErrorDialect",
    "StreamRender",
    "error_headers",
    "error_response",
    "json_response",
]

JSON = "application/json"


class StreamRender(Protocol):
    """The frames of one streamed response, in order: ``start``, one ``event`` per stream
    event, then ``end`` (usage, cost, terminator) or ``error`` (a failure mid-stream, which
    must be reported in-band: the status already went out). Empty bytes send nothing."""

    def start(self) -> bytes: ...

    def event(self, event: StreamEvent) -> bytes: ...

    def end(self, stream: ChatStream) -> bytes: ...

    def error(self, err: TurnoutError, redact: Redactor) -> bytes: ...


class ErrorDialect(Protocol):
    """What every surface renders in its own shape: errors (the part ``endpoint`` needs)."""

    name: str

    def error_body(self, err: TurnoutError, redact: Redactor) -> dict[str, Any]:
        """The error object, every string in it through ``redact`` (an upstream's message may
        quote a key)."""
        ...

    def error_status(self, err: TurnoutError) -> int: ...

    def plain_error(
        self, status: int, kind: str, message: str, code: str | None = None
    ) -> dict[str, Any]:
        """An error that is no ``TurnoutError`` (an unknown path, an internal fault)."""
        ...

    def stream_error(self, err: TurnoutError, redact: Redactor) -> bytes:
        """``err`` as the last frame of an event stream this surface had begun, where its
        stream writer is out of reach (a request cut at shutdown: ``lifecycle``)."""
        ...


class Dialect(ErrorDialect, Protocol):
    """A chat surface: parse into a ``ChatRequest``, render a result and a stream."""

    def parse(self, obj: Any) -> ChatRequest:
        """The canonical request from a decoded body; ``BadRequestError`` when malformed."""
        ...

    def result(self, result: ChatResult, chat: ChatRequest) -> bytes: ...

    def stream(self, stream: ChatStream, chat: ChatRequest) -> StreamRender: ...


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=JSON, headers=headers)


def error_headers(err: TurnoutError) -> dict[str, str]:
    """The headers an error carries (a gateway key's limits, ``Retry-After``), made safe."""
    from .openai_wire import header_text

    headers = {k: header_text(v) for k, v in (err.headers or {}).items()}
    retry_after = getattr(err, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return headers


def error_response(err: TurnoutError, dialect: ErrorDialect, redact: Redactor) -> Response:
    """``err`` in ``dialect``'s shape, with its headers and ``Retry-After`` when it has one."""
    body = dialect.error_body(err, redact)
    return json_response(body, dialect.error_status(err), error_headers(err))
