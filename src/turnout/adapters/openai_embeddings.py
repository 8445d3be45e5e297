"""OpenAI's ``/v1/embeddings`` as an upstream, for every OpenAI-compatible host (hosts stay
data: the embeddings path sits next to the host's chat path). Pure translation; the
``OpenAIChatAdapter`` owns the network edge and calls these.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from ..deployment import Deployment
from ..errors import UpstreamServerError
from ..types import EmbeddingRequest, EmbeddingResult, Usage

__all__ = ["embeddings_url", "from_embedding_response", "to_embedding_request"]


def embeddings_url(d: Deployment) -> str:
    """The host's chat path with ``chat/completions`` swapped for ``embeddings`` (so Azure's
    ``/openai/deployments/{model}/chat/completions`` becomes its embeddings path too)."""
    path = d.host.path
    if path.endswith("/chat/completions"):
        path = path[: -len("/chat/completions")] + "/embeddings"
    else:
        path = "/embeddings"
    url = d.base_url + path
    if d.query:
        url += "?" + urlencode(d.query)
    return url


def to_embedding_request(
    request: EmbeddingRequest, d: Deployment
) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and JSON body: the caller's body with the upstream's model name, vectors
    asked for as floats (the ingress encodes them as its own client asked)."""
    body = request.to_openai()
    body["model"] = d.model
    body["encoding_format"] = "float"
    headers = {"Content-Type": "application/json", "Accept": "application/json", **d.headers}
    api_key = d.require_key()
    if api_key:
        headers[d.host.auth_header] = d.host.auth_prefix + api_key
    return embeddings_url(d), headers, orjson.dumps(body)


def _malformed(d: Deployment, what: str) -> UpstreamServerError:
    return UpstreamServerError(
        f"malformed embeddings response: {what}", provider=d.provider, model=d.model
    )


def from_embedding_response(obj: Any, d: Deployment, count: int) -> EmbeddingResult:
    """An ``EmbeddingResult`` from an upstream ``list`` of ``embedding`` objects, put in
    input order by their ``index``; ``count`` is how many inputs were sent."""
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise _malformed(d, "no 'data' list")
    vectors: list[list[float] | None] = [None] * count
    for item in obj["data"]:
        if not isinstance(item, dict) or not isinstance(item.get("embedding"), list):
            raise _malformed(d, "an item without an 'embedding' list")
        index = item.get("index", 0)
        if not isinstance(index, int) or not 0 <= index < count:
            raise _malformed(d, f"index {index!r} for {count} inputs")
        vectors[index] = item["embedding"]
    if any(v is None for v in vectors):
        raise _malformed(d, f"{sum(v is None for v in vectors)} of {count} inputs missing")
    usage = obj.get("usage") or {}
    return EmbeddingResult(
        model=str(obj.get("model") or d.model),
        provider=d.provider,
        vectors=vectors,  # type: ignore[arg-type]
        usage=Usage(prompt_tokens=int(usage.get("prompt_tokens") or 0)),
        deployment=d.id,
    )
