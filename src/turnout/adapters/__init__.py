"""Adapters, one module per wire API. Each implements ``Adapter``; hosts are data (``hosts``).

Modules are imported on first use so that ``import turnout`` stays fast and optional
dependencies (llama-cpp for ``local``) are needed only by those who use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import import_module
from typing import Any, ClassVar, Protocol

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import ConfigError
from ..http import HttpPool
from ..types import ChatRequest, ChatResult, EmbeddingRequest, EmbeddingResult, StreamEvent
from .base import Listing, ModelsRequest

__all__ = ["Adapter", "AdapterSet", "Listing", "ModelsRequest", "adapter_class"]


class Adapter(Protocol):
    """A wire API, whole: chat, stream, embeddings, errors, and model listing.

    An adapter whose backend counts input tokens itself also has ``async def
    count_tokens(request, d, t) -> int`` (Anthropic's and Bedrock's counting endpoints, the
    embedded model's tokenizer); ``Gateway.count_tokens`` estimates for the others."""

    wire_api: ClassVar[str]
    in_process: ClassVar[bool]
    """True for a model run inside the gateway (no account, no key to check)."""

    async def chat(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> ChatResult:
        """One whole completion."""
        ...

    def stream(
        self, request: ChatRequest, d: Deployment, t: TimeoutsConfig
    ) -> AsyncIterator[StreamEvent]:
        """Typed events; raises a ``TurnoutError`` on failure, before or during the stream."""
        ...

    async def embed(
        self, request: EmbeddingRequest, d: Deployment, t: TimeoutsConfig
    ) -> EmbeddingResult:
        """Vectors for every input, in order; a wire API without embeddings raises a
        ``BadRequestError`` (400) that says so."""
        ...

    def models_request(self, d: Deployment) -> ModelsRequest | None:
        """The GET that lists ``d``'s models and so proves its credentials; None if none."""
        ...

    async def list_models(self, d: Deployment, timeout: float) -> Listing | None:
        """What the provider answers to ``models_request``; None without a listing."""
        ...

    def credentials_hint(self, d: Deployment) -> str:
        """The credentials in use as they may be shown (last four characters at most)."""
        ...


_MODULES = {
    "openai_chat": ("openai_chat", "OpenAIChatAdapter"),
    "openai_responses": ("openai_responses", "OpenAIResponsesAdapter"),
    "local": ("local", "LocalAdapter"),
    "bedrock_converse": ("bedrock_converse", "BedrockConverseAdapter"),
    "gemini": ("gemini", "GeminiAdapter"),
    "cohere_chat": ("cohere_chat", "CohereChatAdapter"),
    "ollama_chat": ("ollama_chat", "OllamaChatAdapter"),
    "anthropic_messages": ("anthropic_messages", "AnthropicMessagesAdapter"),
}


def adapter_class(wire_api: str) -> Any:
    """The adapter class of a wire API (its module imported on first use)."""
    if wire_api not in _MODULES:
        raise ConfigError(f"no adapter for wire API '{wire_api}'")
    module, cls = _MODULES[wire_api]
    return getattr(import_module(f"{__name__}.{module}"), cls)


class AdapterSet:
    """The adapters of one gateway, created lazily and sharing one HTTP pool."""

    def __init__(self, http: HttpPool) -> None:
        self.http = http
        self._adapters: dict[str, Adapter] = {}

    def get(self, wire_api: str) -> Adapter:
        adapter = self._adapters.get(wire_api)
        if adapter is None:
            adapter = self._adapters[wire_api] = adapter_class(wire_api)(self.http)
        return adapter

    def loaded(self) -> list[Adapter]:
        return list(self._adapters.values())

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            closer = getattr(adapter, "aclose", None)
            if closer is not None:
                await closer()
        await self.http.aclose()
