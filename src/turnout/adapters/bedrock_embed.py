"""Bedrock embeddings through ``InvokeModel`` (``/model/{modelId}/invoke``), whose body is
the model vendor's own: Amazon Titan Text Embeddings (one text per call: ``inputText``,
``dimensions``, ``normalize``) and Cohere Embed (``texts``, ``input_type``). Which one is
the vendor segment of the Bedrock model id (``amazon.`` / ``cohere.``, with an optional
region prefix such as ``us.``), as Bedrock itself defines the body by it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from ..deployment import Deployment
from ..errors import BadRequestError, UpstreamServerError
from ..types import EmbeddingRequest, Usage
from .base import no_embeddings, text_inputs
from .bedrock_aws import authorise

__all__ = ["TOKEN_HEADER", "embed_bodies", "family", "invoke_request", "read_vectors"]

TOKEN_HEADER = "X-Amzn-Bedrock-Input-Token-Count"
"""Bedrock's count of the input tokens of an InvokeModel call."""


def family(d: Deployment) -> str:
    """``titan`` or ``cohere`` from the model id's vendor segment; else a 400."""
    parts = d.model.split(".")
    vendor = parts[1] if len(parts) > 2 and len(parts[0]) == 2 else parts[0]
    if vendor == "amazon" and "embed" in d.model:
        return "titan"
    if vendor == "cohere" and "embed" in d.model:
        return "cohere"
    raise no_embeddings(d, "Bedrock InvokeModel embeddings (Titan or Cohere Embed)")


def embed_bodies(request: EmbeddingRequest, d: Deployment) -> list[dict[str, Any]]:
    """One body per call: a Titan call per text, one Cohere call for all."""
    texts = text_inputs(request, d)
    extra = request.model_extra or {}
    if family(d) == "titan":
        bodies = []
        for text in texts:
            body: dict[str, Any] = {"inputText": text, "normalize": True}
            if request.dimensions is not None:
                body["dimensions"] = request.dimensions
            bodies.append(body)
        return bodies
    cohere: dict[str, Any] = {
        "texts": texts,
        "input_type": str(extra.get("input_type") or "search_document"),
    }
    if request.dimensions is not None:
        raise BadRequestError(
            f"'{d.id}' gives vectors of one size on Bedrock; leave dimensions out",
            param="dimensions",
        )
    return [cohere]


def invoke_request(body: dict[str, Any], d: Deployment) -> tuple[str, dict[str, str], bytes]:
    raw = orjson.dumps(body)
    url = f"{d.base_url}/model/{quote(d.model, safe='-._~')}/invoke"
    headers = {"Content-Type": "application/json", "Accept": "application/json", **d.headers}
    return url, authorise(url, headers, raw, d), raw


def read_vectors(obj: Any, d: Deployment) -> list[list[float]]:
    """The vectors of one answer: Titan's ``embedding``, Cohere's ``embeddings`` (a list, or
    ``{"float": [...]}`` when types were asked for)."""
    if isinstance(obj, dict):
        if isinstance(obj.get("embedding"), list):
            return [obj["embedding"]]
        found = obj.get("embeddings")
        if isinstance(found, dict):
            found = found.get("float")
        if isinstance(found, list) and all(isinstance(v, list) for v in found):
            return found
    raise UpstreamServerError(
        "malformed embeddings response: no 'embedding' or 'embeddings'",
        provider=d.provider,
        model=d.model,
    )


def usage(tokens: list[str | None]) -> Usage:
    return Usage(prompt_tokens=sum(int(t) for t in tokens if t and t.isdigit()))
