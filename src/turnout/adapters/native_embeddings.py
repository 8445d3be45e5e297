"""Embeddings over the native wire APIs that have them, as pure translation (each adapter's
``embed`` is the thin network edge around its pair): Gemini ``batchEmbedContents``, Cohere
v2 ``/v2/embed`` and Ollama ``/api/embed``. Each takes text only: token arrays are a
tokenizer's own ids, so they are a 400 here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from ..deployment import Deployment
from ..errors import UpstreamServerError
from ..types import EmbeddingRequest, EmbeddingResult, Usage
from .base import auth_headers, text_inputs

__all__ = [
    "cohere_embed_request",
    "cohere_embed_result",
    "gemini_embed_request",
    "gemini_embed_result",
    "ollama_embed_request",
    "ollama_embed_result",
]

Request = tuple[str, dict[str, str], bytes]


def _headers(d: Deployment) -> dict[str, str]:
    d.require_key()  # a missing key is the gateway's to report, before any call
    return {"Content-Type": "application/json", **auth_headers(d)}


def _malformed(d: Deployment, what: str) -> UpstreamServerError:
    return UpstreamServerError(
        f"malformed embeddings response: {what}", provider=d.provider, model=d.model
    )


def _vectors(items: Any, count: int, d: Deployment) -> list[list[float]]:
    if not isinstance(items, list) or len(items) != count:
        raise _malformed(d, f"expected {count} vectors")
    if not all(isinstance(v, list) for v in items):
        raise _malformed(d, "a vector that is not a list")
    return items


def _result(d: Deployment, vectors: list[list[float]], tokens: int) -> EmbeddingResult:
    return EmbeddingResult(
        model=d.model,
        provider=d.provider,
        vectors=vectors,
        usage=Usage(prompt_tokens=tokens),
        deployment=d.id,
    )


# --- Gemini --------------------------------------------------------------------------------


def gemini_embed_request(request: EmbeddingRequest, d: Deployment) -> Request:
    """``models/{model}:batchEmbedContents``, one ``EmbedContentRequest`` per text. Each
    names its model, as Google's reference requires; ``dimensions`` becomes
    ``outputDimensionality`` and a ``task_type`` field the caller adds becomes ``taskType``."""
    model = d.model.removeprefix("models/")
    url = d.base_url + d.host.path.replace("{model}", quote(model, safe=""))
    url += ":batchEmbedContents"
    if d.query:
        url += "?" + urlencode(d.query)
    extra = request.model_extra or {}
    requests = []
    for text in text_inputs(request, d):
        item: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if request.dimensions is not None:
            item["outputDimensionality"] = request.dimensions
        if extra.get("task_type"):
            item["taskType"] = str(extra["task_type"])
        requests.append(item)
    return url, _headers(d), orjson.dumps({"requests": requests})


def gemini_embed_result(obj: Any, d: Deployment, texts: list[str]) -> EmbeddingResult:
    """Gemini reports no token count for embeddings unless ``usageMetadata`` is present;
    without it the count is estimated at four characters a token (cost is then an
    estimate too)."""
    if not isinstance(obj, dict):
        raise _malformed(d, "not an object")
    items = obj.get("embeddings")
    if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
        raise _malformed(d, "no 'embeddings' list")
    vectors = _vectors([e.get("values") for e in items], len(texts), d)
    meta = obj.get("usageMetadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("promptTokenCount"), int):
        tokens = meta["promptTokenCount"]
    else:
        tokens = sum(max(1, len(t) // 4) for t in texts)
    return _result(d, vectors, tokens)


# --- Cohere --------------------------------------------------------------------------------


def cohere_embed_request(request: EmbeddingRequest, d: Deployment) -> Request:
    """``/v2/embed`` for float vectors. ``input_type`` (required by Cohere's v3 and later
    models) is the caller's extra field when given, else ``search_document``."""
    extra = request.model_extra or {}
    body: dict[str, Any] = {
        "model": d.model,
        "texts": text_inputs(request, d),
        "input_type": str(extra.get("input_type") or "search_document"),
        "embedding_types": ["float"],
    }
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions
    if extra.get("truncate"):
        body["truncate"] = str(extra["truncate"])
    return d.base_url + "/v2/embed", _headers(d), orjson.dumps(body)


def cohere_embed_result(obj: Any, d: Deployment, count: int) -> EmbeddingResult:
    if not isinstance(obj, dict) or not isinstance(obj.get("embeddings"), dict):
        raise _malformed(d, "no 'embeddings' object")
    vectors = _vectors(obj["embeddings"].get("float"), count, d)
    billed = (obj.get("meta") or {}).get("billed_units") or {}
    return _result(d, vectors, int(billed.get("input_tokens") or 0))


# --- Ollama --------------------------------------------------------------------------------


def ollama_embed_request(request: EmbeddingRequest, d: Deployment) -> Request:
    body: dict[str, Any] = {"model": d.model, "input": text_inputs(request, d)}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return d.base_url + "/api/embed", _headers(d), orjson.dumps(body)


def ollama_embed_result(obj: Any, d: Deployment, count: int) -> EmbeddingResult:
    if not isinstance(obj, dict):
        raise _malformed(d, "not an object")
    vectors = _vectors(obj.get("embeddings"), count, d)
    return _result(d, vectors, int(obj.get("prompt_eval_count") or 0))
