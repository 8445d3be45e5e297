"""The embedded embedding model: all-MiniLM-L6-v2 run in the gateway's process, the same
loaded copy the task classifier uses (``routing/embedding.shared_model``), so that
``/v1/embeddings`` answers with no key and no network.

Inputs are cut to 256 tokens as sentence-transformers cuts them for this model; vectors are
unit length, 384 dimensions (the model has no shorter form, so another ``dimensions`` is a 400).
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..deployment import Deployment
from ..errors import BadRequestError, MissingDependencyError
from ..types import EmbeddingRequest, EmbeddingResult, Usage
from .base import no_embeddings, text_inputs

if TYPE_CHECKING:
    from ..routing.embedding import MiniLM

__all__ = ["DIMENSIONS", "EMBEDDING_MODELS", "MAX_TOKENS", "LocalEmbedder"]

EMBEDDING_MODELS = frozenset({"all-minilm-l6-v2"})
"""The embedded models that embed (a ``local:`` model name)."""
DIMENSIONS = 384
MAX_TOKENS = 256
"""all-MiniLM-L6-v2's ``max_seq_length`` in sentence-transformers."""


def _check(request: EmbeddingRequest, d: Deployment) -> list[str]:
    if d.model not in EMBEDDING_MODELS:
        raise no_embeddings(d, "embedded model's")
    texts = text_inputs(request, d)
    if request.dimensions is not None and request.dimensions != DIMENSIONS:
        raise BadRequestError(
            f"'{d.id}' gives {DIMENSIONS}-dimensional vectors; it cannot give "
            f"{request.dimensions} (leave dimensions out or set {DIMENSIONS})",
            param="dimensions",
        )
    return texts


class LocalEmbedder:
    """Runs the shared model on a thread of its own, so that embeddings never queue behind a
    chat generation on the embedded chat model's thread, nor block the event loop."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turnout-embed")

    @staticmethod
    def _model() -> MiniLM:
        from ..routing.embedding import EXTRA_HINT, shared_model

        try:
            return shared_model(None)
        except MissingDependencyError as exc:
            raise MissingDependencyError(
                exc.message.replace(EXTRA_HINT, EXTRA_HINT.replace("task-aware routing", "it")),
                provider="local",
            ) from None

    def _run(self, texts: list[str]) -> tuple[list[list[float]], int]:
        model = self._model()
        vectors, tokens = [], 0
        for text in texts:
            vec, n = model.embed_counted(text, MAX_TOKENS, head_only=True)
            vectors.append(vec.tolist())
            tokens += n
        return vectors, tokens

    async def embed(self, request: EmbeddingRequest, d: Deployment) -> EmbeddingResult:
        texts = _check(request, d)
        loop = asyncio.get_running_loop()
        vectors, tokens = await loop.run_in_executor(self._pool, self._run, texts)
        return EmbeddingResult(
            model=d.model,
            provider=d.provider,
            vectors=vectors,
            usage=Usage(prompt_tokens=tokens),
            deployment=d.id,
            id=f"emb-{uuid.uuid4().hex[:24]}",
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
