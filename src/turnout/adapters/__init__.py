"""Adapters, one module per wire API. Each implements ``Adapter``; hosts are data (``hosts``).

Modules are imported on first use so that ``import turnout`` stays fast and optional
dependencies (llama-cpp for ``local``) are needed only by those who use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import import_module
from typing import Protocol

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import ConfigError
from ..http import HttpPool
from ..types import ChatRequest, ChatResult, StreamEvent

__all__ = ["Adapter", "AdapterSet"]


class Adapter(Protocol):
    wire_api: str

    async def chat(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> ChatResult:
        """One whole completion."""
        ...

    def stream(
        self, request: ChatRequest, d: Deployment, t: TimeoutsConfig
    ) -> AsyncIterator[StreamEvent]:
        """Typed events; raises a ``TurnoutError`` on failure, before or during the stream."""
        ...


_MODULES = {
    "openai_chat": ("openai_chat", "OpenAIChatAdapter"),
    "local": ("local", "LocalAdapter"),
    "bedrock_converse": ("bedrock_converse", "BedrockConverseAdapter"),
    "gemini": ("gemini", "GeminiAdapter"),
    "cohere_chat": ("cohere_chat", "CohereChatAdapter"),
    "ollama_chat": ("ollama_chat", "OllamaChatAdapter"),
    "anthropic_messages": ("anthropic_messages", "AnthropicMessagesAdapter"),
}


class AdapterSet:
    """The adapters of one gateway, created lazily and sharing one HTTP pool."""

    def __init__(self, http: HttpPool) -> None:
        self.http = http
        self._adapters: dict[str, Adapter] = {}

    def get(self, wire_api: str) -> Adapter:
        adapter = self._adapters.get(wire_api)
        if adapter is None:
            if wire_api not in _MODULES:
                raise ConfigError(f"no adapter for wire API '{wire_api}'")
            module, cls = _MODULES[wire_api]
            factory = getattr(import_module(f"{__name__}.{module}"), cls)
            adapter = self._adapters[wire_api] = factory(self.http)
        return adapter

    def loaded(self) -> list[Adapter]:
        return list(self._adapters.values())

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            closer = getattr(adapter, "aclose", None)
            if closer is not None:
                await closer()
        await self.http.aclose()
