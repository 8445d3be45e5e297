"""The OpenAI Embeddings dialect of the ingress (``POST /v1/embeddings``): the body parsed
into the canonical ``EmbeddingRequest``, the result rendered as OpenAI's ``list`` of
``embedding`` objects (floats, or base64 of little-endian float32 as OpenAI's SDKs ask by
default), errors in the OpenAI shape."""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any, Protocol

import orjson

from ..errors import BadRequestError
from ..gateway import parse_embedding_request
from ..types import EmbeddingRequest, EmbeddingResult
from .dialect import ErrorDialect
from .openai_wire import OpenAIErrors

__all__ = ["OPENAI_EMBEDDINGS", "EmbeddingsDialect", "OpenAIEmbeddings", "embeddings_body"]


class EmbeddingsDialect(ErrorDialect, Protocol):
    def parse(self, obj: Any) -> EmbeddingRequest:
        """The canonical request from a decoded body; ``BadRequestError`` when malformed."""
        ...

    def result(self, result: EmbeddingResult, request: EmbeddingRequest) -> bytes: ...


def _base64(vector: list[float]) -> str:
    packed = array("f", vector)  # C float: 4 bytes wherever CPython runs
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def embeddings_body(result: EmbeddingResult, request: EmbeddingRequest) -> dict[str, Any]:
    as_base64 = request.encoding_format == "base64"
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _base64(v) if as_base64 else v,
        }
        for i, v in enumerate(result.vectors)
    ]
    usage: dict[str, Any] = {
        "prompt_tokens": result.usage.prompt_tokens,
        "total_tokens": result.usage.prompt_tokens,
    }
    if result.cost is not None:
        usage["cost_usd"] = result.cost
    return {"object": "list", "data": data, "model": request.model, "usage": usage}


class OpenAIEmbeddings(OpenAIErrors):
    """``POST /v1/embeddings``."""

    name = "openai_embeddings"

    def parse(self, obj: Any) -> EmbeddingRequest:
        if isinstance(obj, dict) and obj.get("stream"):
            raise BadRequestError("embeddings are not streamed", param="stream")
        return parse_embedding_request(obj)

    def result(self, result: EmbeddingResult, request: EmbeddingRequest) -> bytes:
        return orjson.dumps(embeddings_body(result, request))


OPENAI_EMBEDDINGS = OpenAIEmbeddings()
