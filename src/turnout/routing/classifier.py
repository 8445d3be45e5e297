"""Task classification for ``task`` and ``auto`` routing: sentence embeddings of the request
compared with embeddings of example prompts.

Each label is defined by its examples (the built-in ones in ``turnout/data/tasks.yaml`` plus any
the route declares). A request is embedded once and scored against each label as the mean
cosine similarity of its ``neighbours`` most similar examples (``neighbours: 0`` compares with
the label's centroid, the normalised mean of its examples, instead). The best label wins, or
none when its score is below ``threshold``. Why neighbours by default: a label such as
"knowledge question" spans every topic, and a centroid blurs it into one topic-less point;
on the labelled set the top-5 mean reaches 0.86 where the centroid reaches 0.70 (see
docs/routing.md). The model loads once, on first use or at start-up (``preload``), and
everything runs on one worker thread so the event loop never waits on it. At most ``queue``
requests wait for that thread: under more load than it can embed, a request goes
unclassified (route order) at once instead of queueing until its client gives up.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .tasks import builtin_tasks

if TYPE_CHECKING:
    import numpy as np

    from .embedding import MiniLM

__all__ = ["TaskClassifier"]

log = logging.getLogger("turnout.routing")


class TaskClassifier:
    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        threshold: float = 0.1,
        neighbours: int = 5,
        max_tokens: int = 64,
        embedder: Callable[[], MiniLM] | None = None,
        queue: int = 8,
    ) -> None:
        self.threshold = threshold
        self.queue = queue
        self.waiting = 0
        """Requests waiting for the worker thread now (those in ``classify``)."""
        self.unclassified_busy = 0
        """Requests that went unclassified because ``queue`` were already waiting."""
        self.neighbours = neighbours
        self._model_dir = model_dir
        self._max_tokens = max_tokens
        self._factory = embedder
        self._model: MiniLM | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turnout-classifier")
        self._tables: dict[tuple[str, ...], tuple[tuple[str, ...], np.ndarray, np.ndarray]] = {}
        self._extra: dict[str, tuple[str, ...]] = {}

    # --- on the worker thread ---------------------------------------------------------------

    def _load(self) -> MiniLM:
        if self._model is None:
            if self._factory is not None:
                self._model = self._factory()
            else:
                from .embedding import shared_model

                # The same copy the embedded embedding model uses (``adapters/local``).
                self._model = shared_model(str(self._model_dir) if self._model_dir else None)
        return self._model

    def _examples(self, label: str, extra: Mapping[str, Sequence[str]]) -> list[str]:
        examples = [*builtin_tasks().get(label, ()), *extra.get(label, ())]
        if not examples:
            raise ConfigError(
                f"task '{label}' has no example prompts: it is not built in "
                f"({', '.join(builtin_tasks())}); give examples under the route's tasks.{label}"
            )
        return examples

    def _table(
        self, labels: frozenset[str], extra: Mapping[str, Sequence[str]]
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """Label names, a (labels, examples, dim) array of example embeddings padded with zero
        rows, and how many rows of each label are real."""
        key = tuple(sorted(labels)) + tuple(
            f"{k}\0{len(v)}\0{hash(tuple(v))}" for k, v in sorted(extra.items())
        )
        table = self._tables.get(key)
        if table is None:
            import numpy as np

            model = self._load()
            names = tuple(sorted(labels))
            groups = [
                model.embed_many(self._examples(label, extra), self._max_tokens, cache=True)
                for label in names
            ]
            if self.neighbours <= 0:
                groups = [g.mean(axis=0, keepdims=True) for g in groups]
                groups = [g / np.linalg.norm(g) for g in groups]
            width = max(len(g) for g in groups)
            dim = groups[0].shape[1]
            padded = np.full((len(groups), width, dim), 0.0, dtype=np.float32)
            counts = []
            for i, g in enumerate(groups):
                padded[i, : len(g)] = g
                counts.append(len(g))
            table = self._tables[key] = (names, padded, np.array(counts, dtype=np.float32))
        return table

    def classify_sync(
        self,
        text: str,
        labels: frozenset[str] | None = None,
        extra: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[str | None, float]:
        """(label, score) on the calling thread; label None when below the threshold."""
        return self.classify_vector(self.embed_sync(text), labels, extra)

    def embed_sync(self, text: str) -> np.ndarray:
        """The request's unit vector as the classifier reads it (the first three quarters and
        last quarter of ``max_tokens``, 48 and 16 by default): the one embedding every
        consumer of a request shares."""
        return self._load().embed(text, self._max_tokens)

    def classify_vector(
        self,
        vector: np.ndarray,
        labels: frozenset[str] | None = None,
        extra: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[str | None, float]:
        """``classify_sync`` for a request already embedded (``embed_sync``)."""
        import numpy as np

        names, examples, counts = self._table(labels or frozenset(builtin_tasks()), extra or {})
        sims = examples @ vector  # (labels, examples); padding rows score exactly 0
        width = sims.shape[1]
        real = np.arange(width)[None, :] < counts[:, None]
        sims = np.where(real, sims, -np.inf)
        k = min(max(self.neighbours, 1), width)
        top = sims if k == width else np.partition(sims, width - k, axis=1)[:, -k:]
        scores = np.where(np.isfinite(top), top, 0.0).sum(axis=1) / np.minimum(counts, k)
        best = int(scores.argmax())
        score = float(scores[best])
        return (names[best] if score >= self.threshold else None), score

    # --- from the event loop ----------------------------------------------------------------

    async def classify(
        self,
        text: str,
        labels: frozenset[str] | None = None,
        extra: Mapping[str, Sequence[str]] | None = None,
    ) -> str | None:
        if self._busy():
            return None
        label, score = await self._on_worker(self.classify_sync, text, labels, extra)
        log.debug("task classifier: %s (similarity %.3f)", label, score)
        return label

    def _busy(self) -> bool:
        """Whether ``queue`` requests already wait for the worker thread (counted, and said
        in a warning now and then): the caller then goes without a vector or a label."""
        if self.waiting < self.queue:
            return False
        self.unclassified_busy += 1
        if self.unclassified_busy == 1 or self.unclassified_busy % 1000 == 0:
            log.warning(
                "task classifier busy (%d requests waiting): %d requests unclassified so far "
                "(routing.task_queue)",
                self.waiting,
                self.unclassified_busy,
            )
        return True

    async def _on_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the worker thread, counted in ``waiting`` until it is done."""
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self.waiting -= 1

    async def embed_and_classify(
        self,
        text: str,
        labels: frozenset[str] | None,
        extra: Mapping[str, Sequence[str]] | None,
    ) -> tuple[np.ndarray | None, str | None]:
        """The request's vector, and its task label when ``labels`` is given: one embedding
        for every consumer (the classifier, ``learned`` routing), one trip to the worker.
        ``(None, None)`` at once when ``queue`` requests already wait for it."""
        if self._busy():
            return None, None

        def work() -> tuple[np.ndarray, str | None]:
            vector = self.embed_sync(text)
            if not labels:
                return vector, None
            label, score = self.classify_vector(vector, labels, extra)
            log.debug("task classifier: %s (similarity %.3f)", label, score)
            return vector, label

        result: tuple[np.ndarray, str | None] = await self._on_worker(work)
        return result

    @property
    def embedding_id(self) -> str:
        """What determines a vector besides the text: the model and the cut (an outcome
        file's index is kept by it, so a change of either embeds the file again)."""
        return f"minilm:{self._model_dir or 'default'}:{self._max_tokens}:head-tail"

    def embed_texts(self, texts: list[str], *, cache: bool = False) -> np.ndarray:
        """Unit vectors of many texts (an outcome store), as ``embed_sync`` reads each.
        ``cache``: kept on disk by the model, the cut and the texts (``MiniLM.embed_many``),
        so that a store is embedded once, not at every start or reload."""
        import numpy as np

        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return self._load().embed_many(texts, self._max_tokens, cache=cache)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the classifier's worker thread (work that uses the model)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def preload(self, labels: Any = None, extra: Any = None) -> None:
        """Load the model and compute centroids now rather than on the first request."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._pool, self._table, labels or frozenset(builtin_tasks()), extra or {}
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
