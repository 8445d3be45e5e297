"""Turnout: every LLM provider behind one OpenAI-compatible interface.

    from turnout import Gateway
    async with Gateway() as gw:            # no config: the embedded local model
        result = await gw.chat(model="smollm2", messages=[{"role": "user", "content": "Hi"}])

Names are imported on first use, so ``import turnout`` stays fast and pulls in nothing
optional.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Gateway": "gateway",
    "parse_request": "gateway",
    "Config": "config",
    "load_config": "config",
    "Catalogue": "catalogue",
    "ModelEntry": "catalogue",
    "ChatStream": "streaming",
    "ChatRequest": "types",
    "ChatResult": "types",
    "Usage": "types",
    "TextDelta": "types",
    "ToolCallDelta": "types",
    "Finish": "types",
    "UsageUpdate": "types",
    "TurnoutError": "errors",
    "AllAttemptsFailedError": "errors",
    "AuthenticationError": "errors",
    "BadRequestError": "errors",
    "ConfigError": "errors",
    "NotFoundError": "errors",
    "RateLimitError": "errors",
    "UnsupportedParameterError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'turnout' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .catalogue import Catalogue, ModelEntry
    from .config import Config, load_config
    from .errors import (
        AllAttemptsFailedError,
        AuthenticationError,
        BadRequestError,
        ConfigError,
        NotFoundError,
        RateLimitError,
        TurnoutError,
        UnsupportedParameterError,
    )
    from .gateway import Gateway, parse_request
    from .streaming import ChatStream
    from .types import ChatRequest, ChatResult, Finish, TextDelta, ToolCallDelta, Usage, UsageUpdate
