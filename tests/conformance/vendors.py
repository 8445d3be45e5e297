"""The adapters the conformance suite runs, one ``Vendor`` each.

To add an adapter: write its fake upstream to the contract in ``tests/fakes/script.py``, add a
``Vendor`` below, and run ``pytest tests/conformance -k <name>``. Where a case cannot apply to
a wire API, name the case in ``not_applicable`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..fakes.anthropic_upstream import FakeAnthropic
from ..fakes.bedrock_upstream import FakeBedrock
from ..fakes.cohere_upstream import FakeCohere
from ..fakes.gemini_upstream import FakeGemini
from ..fakes.ollama_upstream import FakeOllama
from ..fakes.openai_responses_upstream import FakeOpenAIResponses
from ..fakes.openai_upstream import FakeOpenAI
from ..fakes.script import FakeUpstream

KEY = "sk-conformance-secret-9876"


@dataclass(frozen=True)
class Vendor:
    name: str
    make_fake: Callable[[], FakeUpstream] | None
    """None: no upstream to script (the embedded model); only unscripted cases run."""
    provider: Callable[[str], dict[str, Any]]
    """The ``providers:`` config entry for a fake listening at this base URL."""
    model: str
    not_applicable: dict[str, str] = field(default_factory=dict)
    asks_json: Callable[[dict[str, Any]], bool] | None = None
    """Does this upstream request body ask for JSON output?"""
    overloaded_status: int = 503

    def __str__(self) -> str:
        return self.name


def _openai_json(body: dict[str, Any]) -> bool:
    return (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")


def _responses_json(body: dict[str, Any]) -> bool:
    fmt = (body.get("text") or {}).get("format") or {}
    return fmt.get("type") in ("json_object", "json_schema")


def _gemini_json(body: dict[str, Any]) -> bool:
    return (body.get("generationConfig") or {}).get("responseMimeType") == "application/json"


def _cohere_json(body: dict[str, Any]) -> bool:
    return (body.get("response_format") or {}).get("type") == "json_object"


def _ollama_json(body: dict[str, Any]) -> bool:
    return body.get("format") is not None


def _anthropic_json(body: dict[str, Any]) -> bool:
    """A schema goes in ``output_config.format``; ``json_object`` (no schema) has no native
    switch, so the adapter asks for it in the system prompt."""
    from turnout.adapters.anthropic_messages import JSON_OBJECT_INSTRUCTION

    fmt = (body.get("output_config") or {}).get("format") or {}
    return fmt.get("type") == "json_schema" or JSON_OBJECT_INSTRUCTION in str(body.get("system"))


LOCAL_ONLY = "the embedded model has no upstream to script"

# Bedrock signs with SigV4: the fake knows this key pair and recomputes every signature.
AWS_KEY_ID = "AKIDCONFORMANCE0001"


def _bedrock_json(body: dict[str, Any]) -> bool:
    # Converse has no bare JSON mode: json_object is asked for in a system block.
    return "outputConfig" in body or any(
        "JSON" in b.get("text", "") for b in body.get("system", [])
    )


VENDORS: list[Vendor] = [
    Vendor(
        name="openai_chat",
        make_fake=FakeOpenAI,
        provider=lambda url: {"host": "custom", "base_url": url + "/v1", "api_key": KEY},
        model="gpt-fake",
        asks_json=_openai_json,
    ),
    Vendor(
        name="openai_responses",
        make_fake=FakeOpenAIResponses,
        provider=lambda url: {"host": "openai_responses", "base_url": url + "/v1", "api_key": KEY},
        model="gpt-fake",
        asks_json=_responses_json,
    ),
    Vendor(
        name="anthropic_messages",
        make_fake=FakeAnthropic,
        provider=lambda url: {"host": "anthropic", "base_url": url + "/v1", "api_key": KEY},
        model="claude-fake",
        asks_json=_anthropic_json,
        overloaded_status=529,
    ),
    Vendor(
        name="local",
        make_fake=None,
        provider=lambda url: {"host": "local"},
        model="smollm2-135m-instruct",
        not_applicable={
            "system_prompt": LOCAL_ONLY + " (test_local_model covers its chat template)",
            "tool_call": "SmolLM2-135M has no tool calling; the adapter refuses tools with a 400",
            "tool_stream": "SmolLM2-135M has no tool calling",
            "cached_tokens": "llama.cpp reports no cached-token count",
            "errors": LOCAL_ONLY + "; no HTTP statuses exist in-process",
            "mid_stream": LOCAL_ONLY,
            "timeout": LOCAL_ONLY,
        },
    ),
    Vendor(
        name="bedrock_converse",
        make_fake=lambda: FakeBedrock(credentials={AWS_KEY_ID: KEY}),
        provider=lambda url: {
            "host": "bedrock",
            "base_url": url,
            "settings": {"access_key_id": AWS_KEY_ID, "secret_access_key": KEY},
        },
        model="anthropic.claude-3-haiku-20240307-v1:0",
        asks_json=_bedrock_json,
    ),
    Vendor(
        name="gemini",
        make_fake=FakeGemini,
        provider=lambda url: {"host": "gemini", "base_url": url + "/v1beta", "api_key": KEY},
        model="gemini-2.5-flash",
        asks_json=_gemini_json,
    ),
    Vendor(
        name="cohere_chat",
        make_fake=FakeCohere,
        provider=lambda url: {"host": "cohere", "base_url": url, "api_key": KEY},
        model="command-a-03-2025",
        asks_json=_cohere_json,
    ),
    Vendor(
        name="ollama_chat",
        make_fake=FakeOllama,
        provider=lambda url: {"host": "ollama", "settings": {"endpoint": url}, "api_key": KEY},
        model="llama3.2:3b",
        asks_json=_ollama_json,
        not_applicable={"cached_tokens": "Ollama reports no cached-token count"},
    ),
]
