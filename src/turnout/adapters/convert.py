"""Pure helpers shared by the native adapters' translations (Gemini, Cohere, Ollama): the
request as a plain dict with the deployment's defaults, the fields no upstream field can carry,
content flattening, data URLs and tool-call arguments.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..deployment import Deployment
from ..errors import BadRequestError, UnsupportedParameterError
from ..types import ChatRequest

__all__ = [
    "IGNORED",
    "TOOL_ERROR_MARK",
    "arguments_object",
    "arguments_text",
    "data_url",
    "new_call_id",
    "request_fields",
    "tool_error",
    "take_unsupported",
    "text_of",
]

IGNORED = frozenset({"model", "messages", "stream", "stream_options", "user"})
"""Fields no native adapter forwards and none needs to: routing and streaming are ours, and
``user`` is an end-user tag the native APIs have no field for (it changes no output)."""


def request_fields(request: ChatRequest, d: Deployment) -> dict[str, Any]:
    """What the caller set, as JSON, with the deployment's ``params`` as defaults. A field
    sent as null counts as not sent (native APIs reject nulls where OpenAI shrugs)."""
    fields = {k: v for k, v in request.to_openai().items() if v is not None}
    for key, value in d.params.items():
        fields.setdefault(key, value)
    return fields


_NO_OPS: Mapping[str, Any] = {"n": 1, "logprobs": False}
"""Values that ask for nothing beyond the default (clients often send them), so refusing
them would only break those clients."""


def take_unsupported(fields: Mapping[str, Any], handled: Iterable[str], d: Deployment) -> None:
    """Raise for a field this wire API cannot carry, unless the config says to drop it. A
    field sent as null, or as a value that asks for nothing (``n: 1``), is not a request."""
    left = sorted(
        name
        for name in set(fields) - IGNORED - set(handled)
        if fields[name] is not None and not (name in _NO_OPS and fields[name] == _NO_OPS[name])
    )
    if left and not d.drop_params:
        name = left[0]
        raise UnsupportedParameterError(
            f"'{name}' is not supported by {d.provider} ({d.host.wire_api}); "
            "remove it or set drop_params",
            provider=d.provider,
            model=d.model,
            param=name,
        )


def text_of(content: Any) -> str:
    """Message content (a string or a list of text parts) as one string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text") or p.get("refusal") or "" for p in content if isinstance(p, dict))


def data_url(url: str, d: Deployment) -> tuple[str, str]:
    """``(mime type, base64 data)`` from a ``data:`` URL; an http(s) URL cannot be inlined
    without fetching it, which the gateway does not do on the request path."""
    head, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or ";base64" not in head:
        raise UnsupportedParameterError(
            f"{d.provider} ({d.host.wire_api}) takes images inline only: send the image as a "
            "base64 data URL (data:image/png;base64,...) rather than a link",
            provider=d.provider,
            model=d.model,
            param="messages",
        )
    mime = head[5:].split(";", 1)[0] or "application/octet-stream"
    return mime, payload


def arguments_object(arguments: str, d: Deployment) -> dict[str, Any]:
    """A canonical tool call's JSON ``arguments`` as the object native APIs want."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise BadRequestError(
            f"tool call arguments are not valid JSON: {arguments[:100]!r}",
            provider=d.provider,
            model=d.model,
            param="messages",
        ) from None
    if not isinstance(value, dict):
        raise BadRequestError(
            "tool call arguments must be a JSON object",
            provider=d.provider,
            model=d.model,
            param="messages",
        )
    return value


def arguments_text(args: Any) -> str:
    """A native tool call's argument object as the canonical JSON string. One function for
    whole answers and streams, so both give byte-identical arguments."""
    return orjson.dumps(args if args is not None else {}).decode()


TOOL_ERROR_MARK = "[tool error] "
"""What the Anthropic ingress puts before the text of a tool result sent with ``is_error``
(the tool message then also carries ``is_error: true``)."""


def tool_error(m: Mapping[str, Any]) -> tuple[bool, Any]:
    """Whether a tool message reports a failed tool call, and its content without the mark
    (for wire APIs with an error flag of their own)."""
    content = m.get("content")
    if not m.get("is_error"):
        return False, content
    if isinstance(content, str):
        return True, content.removeprefix(TOOL_ERROR_MARK)
    if isinstance(content, list) and content and isinstance(content[0].get("text"), str):
        first = {**content[0], "text": content[0]["text"].removeprefix(TOOL_ERROR_MARK)}
        return True, [first, *content[1:]]
    return True, content


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
