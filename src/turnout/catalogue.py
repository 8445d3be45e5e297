"""The model catalogue: what each model is, costs and can do, and the one parser of model ids.

Capabilities come from here, never from the model's name. The curated entries live in
``data/catalogue.yaml`` (read on first use, never at import); users add or override entries
under ``models:`` in the config, validated by the same schema (``config.ModelConfig``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

from .config import ModelConfig
from .errors import BadRequestError, ConfigError
from .types import Usage

__all__ = [
    "LOCAL_MODEL_ID",
    "MODEL_NAME_MAX",
    "Catalogue",
    "ModelEntry",
    "builtin_entries",
    "check_model_name",
    "parse_model_id",
]

LOCAL_MODEL_ID = "local:smollm2-135m-instruct"

MODEL_NAME_MAX = 256
# What upstream model names are made of (``ollama:hf.co/org/m:Q8_0``, ``bedrock:arn:aws:...``,
# ``vertex:claude@2024``): a name the client chooses reaches upstream URLs and response
# headers, so nothing else (spaces, control characters, CR/LF, non-ASCII, ``?#%``) gets through.
_MODEL_NAME = re.compile(r"[A-Za-z0-9._~:/@+=-]+")


def check_model_name(name: str) -> str:
    """``name`` when it may be a model id; a ``BadRequestError`` saying what is wrong if not."""
    if not name:
        raise BadRequestError("model name is empty", param="model")
    if len(name) > MODEL_NAME_MAX:
        raise BadRequestError(
            f"model name is {len(name)} characters long; the limit is {MODEL_NAME_MAX}",
            param="model",
        )
    if _MODEL_NAME.fullmatch(name) is None:
        bad = next((c for c in name if _MODEL_NAME.fullmatch(c) is None), "")
        raise BadRequestError(
            f"model name {name!r} holds {bad!r}: a model name is made of letters, digits and "
            "._~:/@+=- only",
            param="model",
        )
    return name


def parse_model_id(model_id: str) -> tuple[str, str]:
    """Split ``provider:model`` into its two parts. The only place ids are parsed.

    The model part may itself hold colons (``ollama:llama3.2:3b``); the provider may not.
    """
    provider, sep, model = check_model_name(model_id).partition(":")
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
    default_max_tokens: int | None = None
    """Output cap applied when the caller sets none (adapters that honour it: ``local``)."""
    input_price: float | None = None
    """USD per million input tokens."""
    output_price: float | None = None
    cached_input_price: float | None = None
    """USD per million input tokens served from the provider's prompt cache; when None,
    cached tokens are priced as ordinary input."""
    cache_write_price: float | None = None
    """USD per million input tokens written to the prompt cache for five minutes (Anthropic:
    1.25x input); when None, written tokens are priced as ordinary input."""
    cache_write_1h_price: float | None = None
    """USD per million input tokens written to the prompt cache for one hour (Anthropic: 2x
    input); when None, the five-minute write price."""
    capabilities: frozenset[str] = frozenset({"streaming"})
    aliases: tuple[str, ...] = field(default=())
    quality: float | None = None
    """Relative answer quality in [0, 1] (read by the quality-aware routing strategies);
    None when unknown."""
    tags: frozenset[str] = frozenset()
    quality_source: str | None = None
    price_source: str | None = None
    price_date: date | None = None
    price_verified: bool | None = None
    price_note: str | None = None

    def cost(self, usage: Usage) -> float | None:
        """USD for this usage, or None when the catalogue does not know the prices."""
        if self.input_price is None or self.output_price is None:
            return None
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        hour = min(usage.cache_write_1h_tokens, written)
        cached_price = (
            self.cached_input_price if self.cached_input_price is not None else self.input_price
        )
        write_price = (
            self.cache_write_price if self.cache_write_price is not None else self.input_price
        )
        hour_price = (
            self.cache_write_1h_price if self.cache_write_1h_price is not None else write_price
        )
        return (
            (usage.prompt_tokens - cached - written) * self.input_price
            + cached * cached_price
            + (written - hour) * write_price
            + hour * hour_price
            + usage.completion_tokens * self.output_price
        ) / 1_000_000

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data (the shape ``GET /api/models`` serves)."""
        return {
            "id": self.id,
            "provider": self.provider,
            "upstream": self.upstream,
            "context_window": self.context_window,
            "max_output": self.max_output,
            "default_max_tokens": self.default_max_tokens,
            "input_price": self.input_price,
            "output_price": self.output_price,
            "cached_input_price": self.cached_input_price,
            "cache_write_price": self.cache_write_price,
            "cache_write_1h_price": self.cache_write_1h_price,
            "capabilities": sorted(self.capabilities),
            "tags": sorted(self.tags),
            "aliases": list(self.aliases),
            "quality": self.quality,
            "quality_source": self.quality_source,
            "price_source": self.price_source,
            "price_date": self.price_date.isoformat() if self.price_date else None,
            "price_verified": self.price_verified,
            "price_note": self.price_note,
        }


def _apply(base: ModelEntry, item: ModelConfig) -> ModelEntry:
    """``base`` with every field ``item`` sets (a user override touches only what it names)."""
    changes = item.model_dump(exclude_unset=True, exclude={"id"})
    for name in ("capabilities", "tags"):
        if changes.get(name) is not None:
            changes[name] = frozenset(changes[name])
        elif name in changes:
            del changes[name]
    if "aliases" in changes:
        changes["aliases"] = tuple(changes["aliases"])
    return replace(base, **changes)


def _from_config(item: ModelConfig) -> ModelEntry:
    provider, upstream = parse_model_id(item.id)
    return _apply(ModelEntry(item.id, provider, upstream), item)


@cache
def builtin_entries() -> tuple[ModelEntry, ...]:
    """The curated catalogue shipped in ``turnout/data/catalogue.yaml``, parsed once."""
    import yaml
    from pydantic import ValidationError

    text = resources.files("turnout").joinpath("data/catalogue.yaml").read_text("utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rows = yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    entries = []
    for i, row in enumerate(rows):
        try:
            entries.append(_from_config(ModelConfig.model_validate(row)))
        except ValidationError as exc:
            raise ConfigError(f"turnout/data/catalogue.yaml: entry {i}: {exc}") from None
    return tuple(entries)


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
        """The curated catalogue with the config's ``models:`` entries applied: an entry
        with a known id changes only the fields it sets; a new id adds a model."""
        catalogue = cls(builtin_entries())
        for item in overrides:
            base = catalogue._by_id.get(item.id)
            catalogue._add(_apply(base, item) if base else _from_config(item))
        return catalogue

    def names(self) -> list[str]:
        """Every id and alias a request may use."""
        return [*self._by_id, *self._alias]

    def get(self, name: str) -> ModelEntry | None:
        """Look up by id or alias."""
        return self._by_id.get(name) or self._by_id.get(self._alias.get(name, ""))

    def query(
        self,
        *,
        capabilities: Iterable[str] = (),
        tags: Iterable[str] = (),
        provider: str | None = None,
        max_input_price: float | None = None,
        max_output_price: float | None = None,
        min_context: int | None = None,
    ) -> list[ModelEntry]:
        """Entries that have every capability and tag asked for, from ``provider``, within
        the price caps (USD per million tokens) and with at least ``min_context`` tokens of
        context. A model whose price or context is unknown never passes a cap on it."""
        need_caps, need_tags = frozenset(capabilities), frozenset(tags)
        out = []
        for e in self._by_id.values():
            if not need_caps <= e.capabilities or not need_tags <= e.tags:
                continue
            if provider is not None and e.provider != provider:
                continue
            if max_input_price is not None and (
                e.input_price is None or e.input_price > max_input_price
            ):
                continue
            if max_output_price is not None and (
                e.output_price is None or e.output_price > max_output_price
            ):
                continue
            if min_context is not None and (
                e.context_window is None or e.context_window < min_context
            ):
                continue
            out.append(e)
        return out

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
