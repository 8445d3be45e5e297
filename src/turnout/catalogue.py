"""The model catalogue: what each model is, costs and can do, and the one parser of model ids.

Capabilities come from here, never from the model's name. The built-in catalogue is small for
now (the embedded model); users add or override entries under ``models:`` in the config.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from .config import ModelConfig
from .errors import BadRequestError
from .types import Usage

__all__ = ["LOCAL_MODEL_ID", "Catalogue", "ModelEntry", "parse_model_id"]

LOCAL_MODEL_ID = "local:smollm2-135m-instruct"


def parse_model_id(model_id: str) -> tuple[str, str]:
    """Split ``provider:model`` into its two parts. The only place ids are parsed.

    The model part may itself hold colons (``ollama:llama3.2:3b``); the provider may not.
    """
    provider, sep, model = model_id.partition(":")
    if not sep or not provider or not model:
        raise BadRequestError(
            f"model id '{model_id}' is not of the form provider:model", param="model"
        )
    return provider, model


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    provider: str
    upstream: str
    context_window: int | None = None
    max_output: int | None = None
    input_price: float | None = None
    """USD per million input tokens."""
    output_price: float | None = None
    cached_input_price: float | None = None
    capabilities: frozenset[str] = frozenset({"streaming"})
    aliases: tuple[str, ...] = field(default=())
    quality: float | None = None
    """Relative answer quality in [0, 1] (read by the quality-aware routing strategies);
    None when unknown."""

    def cost(self, usage: Usage) -> float | None:
        """USD for this usage, or None when the catalogue does not know the prices."""
        if self.input_price is None or self.output_price is None:
            return None
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_price = (
            self.cached_input_price if self.cached_input_price is not None else (self.input_price)
        )
        return (
            (usage.prompt_tokens - cached) * self.input_price
            + cached * cached_price
            + usage.completion_tokens * self.output_price
        ) / 1_000_000


_BUILTIN: tuple[ModelEntry, ...] = (
    ModelEntry(
        id=LOCAL_MODEL_ID,
        provider="local",
        upstream="smollm2-135m-instruct",
        context_window=4096,  # as served (n_ctx); the model itself supports 8192
        max_output=2048,
        input_price=0.0,
        output_price=0.0,
        cached_input_price=0.0,
        capabilities=frozenset({"streaming", "json"}),
        aliases=("smollm2", "local"),
    ),
)


class Catalogue:
    """Entries by id, with aliases. Built once at start-up; read-only afterwards."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._by_id: dict[str, ModelEntry] = {}
        self._alias: dict[str, str] = {}
        for entry in entries:
            self._add(entry)

    def _add(self, entry: ModelEntry) -> None:
        self._by_id[entry.id] = entry
        for alias in entry.aliases:
            self._alias[alias] = entry.id

    @classmethod
    def default(cls, overrides: Iterable[ModelConfig] = ()) -> Catalogue:
        catalogue = cls(_BUILTIN)
        for item in overrides:
            catalogue._add(catalogue._merge(item))
        return catalogue

    def _merge(self, item: ModelConfig) -> ModelEntry:
        provider, upstream = parse_model_id(item.id)
        base = self._by_id.get(item.id) or ModelEntry(item.id, provider, upstream)
        changes = item.model_dump(exclude_unset=True, exclude={"id"})
        if "capabilities" in changes:
            changes["capabilities"] = frozenset(changes["capabilities"])
        if "aliases" in changes:
            changes["aliases"] = tuple(changes["aliases"])
        return replace(base, **changes)

    def get(self, name: str) -> ModelEntry | None:
        """Look up by id or alias."""
        return self._by_id.get(name) or self._by_id.get(self._alias.get(name, ""))

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
