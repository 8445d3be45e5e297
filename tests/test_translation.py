"""Pure translation: deployments, request/response/stream/error mapping, the local model's
arguments, stream assembly and backoff. No sockets anywhere."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from turnout.adapters.local import to_llama_kwargs
from turnout.adapters.openai_chat import from_response, map_error, parse_chunk, to_request
from turnout.catalogue import Catalogue
from turnout.config import Config, RetryConfig
from turnout.deployment import Deployment, resolve_deployment
from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextWindowExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    TurnoutError,
    UnsupportedParameterError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
)
from turnout.hosts import HOSTS
from turnout.routing.executor import backoff_delay
from turnout.streaming import ChatStream
from turnout.types import (
    ChatRequest,
    ChatResult,
    Choice,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
HOST_ENV_VARS = sorted(
    {h.key_env for h in HOSTS.values() if h.key_env}
    | {var for h in HOSTS.values() for var in h.settings_env.values()}
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key or host setting from the developer's shell leaks into a test."""
    for var in HOST_ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def deploy(model_id: str, config: Config | None = None, **params: Any) -> Deployment:
    return resolve_deployment(model_id, config or Config(), Catalogue.default(), params)


def request(**fields: Any) -> ChatRequest:
    body: dict[str, Any] = {"model": "fast", "messages": [{"role": "user", "content": "Hi"}]}
    body.update(fields)
    return ChatRequest.model_validate(body)


def build(
    d: Deployment, req: ChatRequest | None = None, *, stream: bool = False
) -> tuple[str, dict[str, str], dict[str, Any]]:
    url, headers, body = to_request(req or request(), d, stream=stream)
    return url, headers, orjson.loads(body)


WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


# --- OpenAI ------------------------------------------------------------------------------


@pytest.fixture
def openai(monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    return deploy("openai:gpt-4o-mini")


def test_openai_url_auth_and_model(openai: Deployment):
    url, headers, body = build(openai)
    assert url == "https://api.openai.com/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert headers["Content-Type"] == "application/json"
    assert "Accept" not in headers
    # The client asked for the route "fast"; upstream gets its own model name.
    assert body == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    assert openai.id == "openai:gpt-4o-mini"


def test_openai_passes_unknown_fields_through_and_omits_unset_ones(openai: Deployment):
    req = request(
        reasoning_effort="low",
        metadata={"team": "search"},
        temperature=0.2,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
        messages=[{"role": "user", "content": "Hi", "x_custom": 1}],
    )
    _, _, body = build(openai, req)
    assert body["reasoning_effort"] == "low"
    assert body["metadata"] == {"team": "search"}
    assert body["temperature"] == 0.2
    assert body["messages"] == [{"role": "user", "content": "Hi", "x_custom": 1}]
    assert body["response_format"]["json_schema"] == {
        "name": "answer",
        "schema": {"type": "object"},
        "strict": True,
    }
    for unset in ("tools", "max_tokens", "top_p", "stop", "user", "stream", "stream_options"):
        assert unset not in body


def test_openai_stream_asks_for_usage(openai: Deployment):
    req = request(stream_options={"include_usage": False, "x_extra": 1})
    _, headers, body = build(openai, req, stream=True)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "x_extra": 1}
    assert headers["Accept"] == "text/event-stream"


def test_openai_non_stream_removes_stream_fields(openai: Deployment):
    _, headers, body = build(openai, request(stream=True, stream_options={"include_usage": True}))
    assert "stream" not in body
    assert "stream_options" not in body
    assert "Accept" not in headers


def test_deployment_params_are_defaults_the_caller_overrides(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    d = deploy("openai:gpt-4o-mini", temperature=0.1, top_p=0.5)
    _, _, body = build(d, request(temperature=0.9))
    assert body["temperature"] == 0.9
    assert body["top_p"] == 0.5


def test_deployment_repr_never_shows_the_key(openai: Deployment):
    assert OPENAI_KEY not in repr(openai)
    assert openai.key_hint == "...cdef"


# --- Azure -------------------------------------------------------------------------------

AZURE_KEY = "azure-key-0123456789"


def azure_config(**settings: str) -> Config:
    return Config(providers={"azure": {"settings": settings}})


def test_azure_url_and_api_key_header(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    d = deploy("azure:my-gpt4o", azure_config(endpoint="https://res.openai.azure.com"))
    url, headers, body = build(d)
    assert url == (
        "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert headers["api-key"] == AZURE_KEY
    assert "Authorization" not in headers
    assert body["model"] == "my-gpt4o"


def test_azure_api_version_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    config = azure_config(endpoint="https://res.openai.azure.com", api_version="2025-01-01-preview")
    url, _, _ = build(deploy("azure:m", config))
    assert url.endswith("/openai/deployments/m/chat/completions?api-version=2025-01-01-preview")


def test_azure_endpoint_and_version_from_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://env.openai.azure.com/")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-06-01")
    url, _, _ = build(deploy("azure:m"))
    assert url == (
        "https://env.openai.azure.com/openai/deployments/m/chat/completions?api-version=2024-06-01"
    )


def test_azure_config_setting_beats_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://env.openai.azure.com")
    url, _, _ = build(deploy("azure:m", azure_config(endpoint="https://cfg.openai.azure.com")))
    assert url.startswith("https://cfg.openai.azure.com/openai/")


def test_azure_without_endpoint_is_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError) as info:
        deploy("azure:m")
    assert "providers.azure.settings.endpoint" in str(info.value)


def test_azure_endpoint_with_trailing_slash_in_config(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    url, _, _ = build(deploy("azure:m", azure_config(endpoint="https://res.openai.azure.com/")))
    assert url.startswith("https://res.openai.azure.com/openai/deployments/m/")


# --- Mistral -----------------------------------------------------------------------------


@pytest.fixture
def mistral(monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-key-0123456789")
    return deploy("mistral:mistral-small-latest")


def test_mistral_renames_and_url(mistral: Deployment):
    url, headers, body = build(mistral, request(seed=7, max_completion_tokens=64))
    assert url == "https://api.mistral.ai/v1/chat/completions"
    assert headers["Authorization"] == "Bearer mistral-key-0123456789"
    assert body["random_seed"] == 7
    assert body["max_tokens"] == 64
    assert "seed" not in body
    assert "max_completion_tokens" not in body


def test_mistral_stream_has_no_stream_options(mistral: Deployment):
    _, _, body = build(mistral, request(stream_options={"include_usage": True}), stream=True)
    assert body["stream"] is True
    assert "stream_options" not in body


@pytest.mark.parametrize(("sent", "upstream"), [("required", "any"), ("auto", "auto")])
def test_mistral_tool_choice(mistral: Deployment, sent: str, upstream: str):
    _, _, body = build(mistral, request(tools=[WEATHER_TOOL], tool_choice=sent))
    assert body["tool_choice"] == upstream
    assert body["tools"] == [WEATHER_TOOL]


@pytest.mark.parametrize("field", ["user", "logprobs", "logit_bias"])
def test_mistral_rejects_unsupported_fields(mistral: Deployment, field: str):
    value: Any = {"user": "u-1", "logprobs": True, "logit_bias": {"42": 1}}[field]
    with pytest.raises(UnsupportedParameterError) as info:
        build(mistral, request(**{field: value}))
    err = info.value
    assert err.param == field
    assert err.status_code == 400
    assert "drop_params" in err.message
    assert err.provider == "mistral"


def test_mistral_drop_params_removes_unsupported_fields(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-key-0123456789")
    d = deploy("mistral:mistral-small-latest", Config(drop_params=True))
    _, _, body = build(d, request(user="u-1", temperature=0.3))
    assert "user" not in body
    assert body["temperature"] == 0.3


# --- Blaxel ------------------------------------------------------------------------------


def test_blaxel_url_and_headers(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BL_API_KEY", "bl-key-0123456789")
    monkeypatch.setenv("BL_WORKSPACE", "acme")
    url, headers, body = build(deploy("blaxel:gpt-4o-mini"))
    assert url == "https://run.blaxel.ai/acme/models/gpt-4o-mini/v1/chat/completions"
    assert headers["X-Blaxel-Authorization"] == "Bearer bl-key-0123456789"
    assert headers["X-Blaxel-Workspace"] == "acme"
    assert "Authorization" not in headers
    assert body["model"] == "gpt-4o-mini"


def test_blaxel_workspace_from_config(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BL_API_KEY", "bl-key-0123456789")
    config = Config(providers={"blaxel": {"settings": {"workspace": "team-b"}}})
    url, headers, _ = build(deploy("blaxel:m", config))
    assert url.startswith("https://run.blaxel.ai/team-b/models/m/")
    assert headers["X-Blaxel-Workspace"] == "team-b"


def test_blaxel_without_workspace_is_a_config_error():
    with pytest.raises(ConfigError, match=r"providers\.blaxel\.settings\.workspace"):
        deploy("blaxel:m")


# --- other OpenAI-compatible hosts -------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "env", "url", "upstream"),
    [
        ("groq:llama-3.1-8b-instant", "GROQ_API_KEY", "https://api.groq.com/openai/v1", None),
        ("together:meta-llama/Llama-3-8b", "TOGETHER_API_KEY", "https://api.together.xyz/v1", None),
        ("deepseek:deepseek-chat", "DEEPSEEK_API_KEY", "https://api.deepseek.com/v1", None),
        ("openrouter:openai/gpt-4o", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1", None),
        (
            "sambanova:Meta-Llama-3.1-8B-Instruct",
            "SAMBANOVA_API_KEY",
            "https://api.sambanova.ai/v1",
            None,
        ),
        (
            "huggingface:meta-llama/Llama-3.1-8B-Instruct",
            "HF_TOKEN",
            "https://router.huggingface.co/v1",
            None,
        ),
        (
            "fireworks:accounts/fireworks/models/llama-v3p1-8b-instruct",
            "FIREWORKS_API_KEY",
            "https://api.fireworks.ai/inference/v1",
            None,
        ),
    ],
)
def test_host_base_urls(
    monkeypatch: pytest.MonkeyPatch, model_id: str, env: str, url: str, upstream: str | None
):
    monkeypatch.setenv(env, "key-0123456789")
    got_url, headers, body = build(deploy(model_id), stream=True)
    assert got_url == url + "/chat/completions"
    assert headers["Authorization"] == "Bearer key-0123456789"
    assert body["model"] == model_id.partition(":")[2]
    assert body["stream_options"] == {"include_usage": True}


def test_ollama_openai_defaults_to_localhost_and_needs_no_key():
    d = deploy("ollama_openai:llama3.2:3b")
    url, headers, body = build(d)
    assert url == "http://localhost:11434/v1/chat/completions"
    assert "Authorization" not in headers
    assert body["model"] == "llama3.2:3b"


def test_ollama_openai_endpoint_from_environment_and_optional_key(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("OLLAMA_HOST", "http://gpu-box:11434/")
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-key-0123456789")
    url, headers, _ = build(deploy("ollama_openai:qwen2.5"))
    assert url == "http://gpu-box:11434/v1/chat/completions"
    assert headers["Authorization"] == "Bearer ollama-key-0123456789"


def test_ollama_openai_host_without_scheme(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11434")
    url, _, _ = build(deploy("ollama_openai:qwen2.5"))
    assert url == "http://127.0.0.1:11434/v1/chat/completions"


def test_custom_provider(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MINE_KEY", "mine-key-0123456789")
    config = Config(
        providers={
            "mine": {
                "host": "custom",
                "base_url": "http://10.0.0.5:8000/v1/",
                "api_key_env": "MINE_KEY",
                "headers": {"X-Team": "search"},
            }
        }
    )
    d = deploy("mine:qwen-72b", config)
    url, headers, body = build(d)
    assert d.id == "mine:qwen-72b"
    assert url == "http://10.0.0.5:8000/v1/chat/completions"
    assert headers["Authorization"] == "Bearer mine-key-0123456789"
    assert headers["X-Team"] == "search"
    assert body["model"] == "qwen-72b"


def test_custom_provider_without_key_sends_no_auth():
    config = Config(providers={"mine": {"host": "custom", "base_url": "http://box/v1"}})
    _, headers, _ = build(deploy("mine:m", config))
    assert "Authorization" not in headers


def test_custom_provider_without_base_url_is_a_config_error():
    config = Config(providers={"mine": {"host": "custom"}})
    with pytest.raises(ConfigError, match=r"providers\.mine\.base_url"):
        deploy("mine:m", config)


def test_provider_account_reusing_a_host(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WORK_OPENAI_KEY", "sk-work-0123456789")
    config = Config(providers={"work": {"host": "openai", "api_key_env": "WORK_OPENAI_KEY"}})
    url, headers, _ = build(deploy("work:gpt-4o", config))
    assert url == "https://api.openai.com/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-work-0123456789"


def test_config_api_key_beats_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    config = Config(providers={"openai": {"api_key": "sk-from-config-0123"}})
    _, headers, _ = build(deploy("openai:gpt-4o", config))
    assert headers["Authorization"] == "Bearer sk-from-config-0123"


def test_unknown_provider_is_not_found():
    with pytest.raises(NotFoundError, match="nosuch"):
        deploy("nosuch:model")


def test_unknown_host_is_a_config_error():
    config = Config(providers={"mine": {"host": "nosuchhost", "base_url": "http://x"}})
    with pytest.raises(ConfigError, match=r"providers\.mine\.host"):
        deploy("mine:m", config)


def test_model_id_without_provider_is_a_bad_request():
    with pytest.raises(BadRequestError, match="provider:model"):
        deploy("gpt-4o")


# --- missing keys ------------------------------------------------------------------------


def test_missing_key_names_the_variable_and_leaks_no_key(monkeypatch: pytest.MonkeyPatch):
    # Other providers' keys are set; none of them may show up in the message.
    monkeypatch.setenv("GROQ_API_KEY", "gsk-secret-groq-0123456789")
    monkeypatch.setenv("MISTRAL_API_KEY", "secret-mistral-0123456789")
    d = deploy("openai:gpt-4o")  # resolving is fine: the key is needed only to send
    with pytest.raises(AuthenticationError) as info:
        build(d)
    err = info.value
    assert "OPENAI_API_KEY" in str(err)
    assert "providers.openai.api_key" in str(err)
    assert err.code == "missing_api_key"
    assert err.status_code == 401
    assert "gsk-secret" not in str(err)
    assert "secret-mistral" not in str(err)


def test_empty_key_variable_counts_as_missing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "")
    with pytest.raises(AuthenticationError):
        build(deploy("openai:gpt-4o"))


def test_missing_key_names_the_configured_variable():
    config = Config(providers={"openai": {"api_key_env": "WORK_OPENAI_KEY"}})
    with pytest.raises(AuthenticationError, match="WORK_OPENAI_KEY"):
        build(deploy("openai:gpt-4o", config))


# --- from_response -----------------------------------------------------------------------


def test_from_response_text_and_usage(openai: Deployment):
    body = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 8,
            "total_tokens": 128,
            "prompt_tokens_details": {"cached_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 3},
        },
    }
    result = from_response(body, openai)
    assert result == ChatResult(
        id="chatcmpl-abc",
        model="gpt-4o-mini",
        provider="openai",
        choices=[Choice(index=0, content="Hello!", finish_reason="stop")],
        usage=Usage(prompt_tokens=120, completion_tokens=8, cached_tokens=100, reasoning_tokens=3),
        created=1700000000,
        deployment="openai:gpt-4o-mini",
        system_fingerprint="fp_1",
    )
    assert result.text == "Hello!"
    assert result.usage.total_tokens == 128


def test_from_response_tool_calls(openai: Deployment):
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    body = {
        "choices": [
            {
                "message": {"role": "assistant", "content": None, "tool_calls": calls},
                "finish_reason": "tool_calls",
            }
        ]
    }
    choice = from_response(body, openai).choices[0]
    assert choice.content is None
    assert choice.tool_calls == calls
    assert choice.finish_reason == "tool_calls"
    assert choice.extra == {}


def test_from_response_keeps_unmodelled_message_fields(openai: Deployment):
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "42",
                    "reasoning_content": "6 times 7",
                    "annotations": [],
                    "audio": None,
                },
                "finish_reason": "stop",
            }
        ]
    }
    choice = from_response(body, openai).choices[0]
    assert choice.extra == {"reasoning_content": "6 times 7", "annotations": []}


@pytest.mark.parametrize(
    "body",
    [None, [], "text", {}, {"choices": None}, {"choices": {"0": {}}}],
    ids=["null", "list", "string", "empty", "choices-null", "choices-dict"],
)
def test_from_response_malformed(openai: Deployment, body: Any):
    with pytest.raises(UpstreamServerError, match="malformed"):
        from_response(body, openai)


def test_from_response_choice_not_an_object(openai: Deployment):
    with pytest.raises(UpstreamServerError):
        from_response({"choices": [None]}, openai)


# --- parse_chunk -------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, index: int = 0) -> Any:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish}],
    }


def test_parse_chunk_text(openai: Deployment):
    assert parse_chunk(chunk({"role": "assistant", "content": ""}), openai) == []
    assert parse_chunk(chunk({"content": "Hel"}), openai) == [TextDelta("Hel", 0)]
    assert parse_chunk(chunk({"content": "lo"}, index=1), openai) == [TextDelta("lo", 1)]


def test_parse_chunk_tool_call_deltas(openai: Deployment):
    first = chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    )
    later = chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"ci'}}]})
    assert parse_chunk(first, openai) == [ToolCallDelta(0, "", "call_a", "get_weather", 0)]
    assert parse_chunk(later, openai) == [ToolCallDelta(1, '{"ci', None, None, 0)]


def test_parse_chunk_finish_reason(openai: Deployment):
    assert parse_chunk(chunk({}, "tool_calls"), openai) == [Finish("tool_calls", 0)]
    assert parse_chunk(chunk({"content": "!"}, "stop"), openai) == [
        TextDelta("!", 0),
        Finish("stop", 0),
    ]


def test_parse_chunk_usage_only_final_chunk(openai: Deployment):
    final = {
        "id": "chatcmpl-1",
        "choices": [],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    }
    assert parse_chunk(final, openai) == [
        UsageUpdate(Usage(prompt_tokens=9, completion_tokens=4, cached_tokens=2))
    ]
    assert parse_chunk({"choices": [], "usage": None}, openai) == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"message": "server had an error", "type": "server_error"}, UpstreamServerError),
        ({"message": "slow down", "code": 429}, RateLimitError),
        ({"message": "overloaded", "code": 503}, OverloadedError),
        ({"message": "maximum context length exceeded", "code": 400}, ContextWindowExceededError),
    ],
)
def test_parse_chunk_in_stream_error_raises(
    openai: Deployment, error: dict[str, Any], expected: type[TurnoutError]
):
    with pytest.raises(expected) as info:
        parse_chunk({"error": error}, openai)
    assert type(info.value) is expected
    assert info.value.message == error["message"]
    assert info.value.provider == "openai"


def test_parse_chunk_in_stream_error_as_string(openai: Deployment):
    with pytest.raises(UpstreamServerError, match="boom"):
        parse_chunk({"error": "boom"}, openai)


def test_parse_chunk_not_an_object(openai: Deployment):
    with pytest.raises(UpstreamServerError, match="malformed"):
        parse_chunk(["nope"], openai)


# --- map_error ---------------------------------------------------------------------------


def error_body(message: str, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "x", "param": None, "code": code}})


@pytest.mark.parametrize(
    ("status", "raw", "expected"),
    [
        (400, error_body("Invalid value for 'temperature'"), BadRequestError),
        (
            400,
            error_body(
                "This model's maximum context length is 128000 tokens. However, your messages "
                "resulted in 130000 tokens."
            ),
            ContextWindowExceededError,
        ),
        (400, error_body("Bad request", "context_length_exceeded"), ContextWindowExceededError),
        (401, error_body("Incorrect API key provided", "invalid_api_key"), AuthenticationError),
        (403, error_body("Project does not have access"), PermissionDeniedError),
        (404, error_body("The model does not exist", "model_not_found"), NotFoundError),
        (413, error_body("Payload too large"), RequestTooLargeError),
        (413, error_body("prompt is too long: 210000 tokens"), ContextWindowExceededError),
        (422, orjson.dumps({"detail": "messages: field required"}), BadRequestError),
        (429, error_body("Rate limit reached", "rate_limit_exceeded"), RateLimitError),
        (500, error_body("The server had an error"), UpstreamServerError),
        (502, error_body("Bad gateway"), UpstreamServerError),
        (503, error_body("The engine is currently overloaded"), OverloadedError),
        (504, error_body("Gateway timeout"), UpstreamTimeoutError),
        (529, orjson.dumps({"type": "error", "error": {"message": "Overloaded"}}), OverloadedError),
    ],
)
def test_map_error_classifies(
    openai: Deployment, status: int, raw: bytes, expected: type[TurnoutError]
):
    err = map_error(status, raw, {}, openai)
    assert type(err) is expected
    assert err.provider == "openai"
    assert err.model == "gpt-4o-mini"
    assert str(err).startswith("[openai:gpt-4o-mini] ")
    upstream = orjson.loads(raw)
    inner = upstream.get("error", upstream)
    assert err.message == (inner.get("message") or inner.get("detail"))


def test_map_error_status_codes_match_the_class(openai: Deployment):
    assert map_error(400, error_body("x"), {}, openai).status_code == 400
    assert map_error(503, error_body("x"), {}, openai).status_code == 503
    assert map_error(500, error_body("x"), {}, openai).status_code == 502


def test_map_error_keeps_the_upstream_code(openai: Deployment):
    err = map_error(400, error_body("bad", "invalid_value"), {}, openai)
    assert err.code == "invalid_value"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_rate_limit_retry_after(
    openai: Deployment, headers: dict[str, str], expected: float | None
):
    err = map_error(429, error_body("Rate limit reached"), headers, openai)
    assert isinstance(err, RateLimitError)
    assert err.retry_after == expected


def test_rate_limit_retry_after_http_date(openai: Deployment):
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    err = map_error(429, error_body("slow down"), {"Retry-After": when}, openai)
    assert isinstance(err, RateLimitError)
    assert err.retry_after is not None
    assert 110 <= err.retry_after <= 121


@pytest.mark.parametrize(
    ("status", "raw", "expected", "text"),
    [
        (502, b"<html><body>502 Bad Gateway</body></html>", UpstreamServerError, "502 Bad Gateway"),
        (503, b"", OverloadedError, "HTTP 503"),
        (400, b"plain text complaint\n", BadRequestError, "plain text complaint"),
        (429, b"Too Many Requests", RateLimitError, "Too Many Requests"),
    ],
)
def test_map_error_non_json_body(
    openai: Deployment, status: int, raw: bytes, expected: type[TurnoutError], text: str
):
    err = map_error(status, raw, {}, openai)
    assert type(err) is expected
    assert text in err.message


@pytest.mark.parametrize(
    "raw",
    [
        error_body(f"Incorrect API key provided: {OPENAI_KEY}.", "invalid_api_key"),
        f"bad key {OPENAI_KEY}".encode(),
    ],
    ids=["json", "text"],
)
def test_map_error_redacts_an_echoed_key(openai: Deployment, raw: bytes):
    err = map_error(401, raw, {}, openai)
    assert OPENAI_KEY not in str(err)
    assert OPENAI_KEY not in err.message
    assert "...cdef" in err.message


# --- error flags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "retryable", "failover"),
    [
        (BadRequestError, False, False),
        (ContextWindowExceededError, False, False),
        (UnsupportedParameterError, False, True),
        (AuthenticationError, False, True),
        (PermissionDeniedError, False, True),
        (NotFoundError, False, True),
        (RequestTooLargeError, False, False),
        (RateLimitError, True, True),
        (UpstreamTimeoutError, True, True),
        (UpstreamConnectionError, True, True),
        (UpstreamServerError, True, True),
        (OverloadedError, True, True),
        (ConfigError, False, False),
    ],
)
def test_error_flags(cls: type[TurnoutError], retryable: bool, failover: bool):
    err = cls("x")
    assert (err.retryable, err.failover) == (retryable, failover)


# --- to_llama_kwargs ---------------------------------------------------------------------


@pytest.fixture
def local() -> Deployment:
    return deploy("smollm2")


def test_local_deployment_from_alias(local: Deployment):
    assert local.id == "local:smollm2-135m-instruct"
    assert local.host.wire_api == "local"
    assert local.entry is not None
    assert local.entry.max_output == 2048


def test_llama_messages_converted(local: Deployment):
    req = request(
        messages=[
            {"role": "developer", "content": "Be terse."},
            {"role": "system", "content": [{"type": "text", "text": "No emoji."}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
            },
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Bye"},
        ],
        temperature=0.5,
        top_p=0.9,
        seed=3,
        stop="\n\n",
        user="u-1",
    )
    kwargs = to_llama_kwargs(req, local)
    assert kwargs["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "system", "content": "No emoji."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ]
    assert kwargs["temperature"] == 0.5
    assert kwargs["top_p"] == 0.9
    assert kwargs["seed"] == 3
    assert kwargs["stop"] == ["\n\n", "<|im_end|>"]  # the caller's, then the end of turn
    assert kwargs["repeat_penalty"] == 1.1
    assert "user" not in kwargs


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 256),  # the catalogue's default_max_tokens, not max_output
        ({"max_tokens": 100}, 100),
        ({"max_tokens": 1000}, 1000),
        ({"max_completion_tokens": 50}, 50),
        ({"max_tokens": 100_000}, 2048),
    ],
)
def test_llama_max_tokens_capped_by_catalogue(
    local: Deployment, fields: dict[str, int], expected: int
):
    assert to_llama_kwargs(request(**fields), local)["max_tokens"] == expected


def test_llama_defaults_come_from_settings_and_the_catalogue() -> None:
    config = Config.model_validate(
        {"providers": {"local": {"settings": {"repeat_penalty": "1.0", "end_of_turn": "</s>"}}}}
    )
    d = deploy("smollm2", config)
    assert d.entry is not None and d.entry.default_max_tokens == 256
    kwargs = to_llama_kwargs(request(), d)
    assert (kwargs["repeat_penalty"], kwargs["stop"], kwargs["max_tokens"]) == (1.0, ["</s>"], 256)
    bad = Config.model_validate({"providers": {"local": {"settings": {"repeat_penalty": "x"}}}})
    with pytest.raises(ConfigError, match="repeat_penalty"):
        to_llama_kwargs(request(), deploy("smollm2", bad))


IMAGE_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ],
}
TOOL_EXCHANGE = [
    {"role": "user", "content": "Weather?"},
    {
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    {"role": "user", "content": "Thanks"},
]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [WEATHER_TOOL]}, "tools"),
        ({"logprobs": True}, "logprobs"),
        ({"x_unknown_field": 1}, "x_unknown_field"),
        ({"n": 2}, "n"),
        ({"messages": [IMAGE_MESSAGE]}, "messages[0] (image_url content)"),
        ({"messages": TOOL_EXCHANGE}, "messages[1] (tool calls)"),
    ],
)
def test_llama_rejects_what_it_cannot_honour(local: Deployment, fields: dict[str, Any], param: str):
    with pytest.raises(UnsupportedParameterError) as info:
        to_llama_kwargs(request(**fields), local)
    assert info.value.param == param
    assert info.value.provider == "local"
    assert "drop_params" in info.value.message


@pytest.fixture
def local_dropping() -> Deployment:
    return deploy("smollm2", Config(drop_params=True))


def test_llama_drop_params_drops_fields(local_dropping: Deployment):
    req = request(tools=[WEATHER_TOOL], tool_choice="auto", logprobs=True, x_unknown=1, n=3)
    kwargs = to_llama_kwargs(req, local_dropping)
    for name in ("tools", "tool_choice", "logprobs", "x_unknown", "n"):
        assert name not in kwargs
    assert kwargs["messages"] == [{"role": "user", "content": "Hi"}]


def test_llama_drop_params_drops_images_and_tool_messages(local_dropping: Deployment):
    kwargs = to_llama_kwargs(request(messages=[IMAGE_MESSAGE]), local_dropping)
    assert kwargs["messages"] == [{"role": "user", "content": "What is this?"}]
    kwargs = to_llama_kwargs(request(messages=TOOL_EXCHANGE), local_dropping)
    assert kwargs["messages"] == [
        {"role": "user", "content": "Weather?"},
        {"role": "user", "content": "Thanks"},
    ]


def test_llama_response_format(local: Deployment):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    as_object = to_llama_kwargs(request(response_format={"type": "json_object"}), local)
    assert as_object["response_format"] == {"type": "json_object"}
    as_schema = to_llama_kwargs(
        request(
            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
        ),
        local,
    )
    assert as_schema["response_format"] == {"type": "json_object", "schema": schema}
    as_text = to_llama_kwargs(request(response_format={"type": "text"}), local)
    assert "response_format" not in as_text


# --- ChatStream --------------------------------------------------------------------------


async def events(*items: StreamEvent | Exception) -> AsyncIterator[StreamEvent]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


def make_stream(*items: StreamEvent | Exception, started: float | None = None) -> ChatStream:
    return ChatStream(
        events(*items),
        id="chatcmpl-1",
        provider="openai",
        model="gpt-4o-mini",
        deployment="openai:gpt-4o-mini",
        started=started,
        created=1700000000,
    )


async def test_stream_text_joined_and_usage_kept():
    usage = Usage(prompt_tokens=5, completion_tokens=3, cached_tokens=1)
    items: list[StreamEvent] = [
        TextDelta("Hel"),
        TextDelta("lo, "),
        TextDelta("world"),
        Finish("stop"),
        UsageUpdate(usage),
    ]
    stream = make_stream(*items)
    seen = [event async for event in stream]
    assert seen == items
    result = stream.final()
    assert result.choices == [Choice(index=0, content="Hello, world", finish_reason="stop")]
    assert result.usage == usage
    assert (result.id, result.model, result.provider, result.deployment, result.created) == (
        "chatcmpl-1",
        "gpt-4o-mini",
        "openai",
        "openai:gpt-4o-mini",
        1700000000,
    )
    assert result.text == "Hello, world"
    assert result.latency is not None
    assert result.time_to_first_token is not None
    assert 0 <= result.time_to_first_token <= result.latency


async def test_stream_tool_call_fragments_reassembled():
    stream = make_stream(
        ToolCallDelta(0, "", id="call_a", name="get_weather"),
        ToolCallDelta(0, '{"city": '),
        ToolCallDelta(1, "", id="call_b", name="get_time"),
        ToolCallDelta(0, '"Paris, FR"'),
        ToolCallDelta(1, '{"tz": "CET"}'),
        ToolCallDelta(0, "}"),
        Finish("tool_calls"),
    )
    result = await stream.collect()
    assert result.choices == [
        Choice(
            index=0,
            content=None,
            tool_calls=[
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris, FR"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
                },
            ],
            finish_reason="tool_calls",
        )
    ]
    calls = result.choices[0].tool_calls
    assert calls is not None
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"city": "Paris, FR"}


async def test_stream_several_choices_kept_apart():
    stream = make_stream(
        TextDelta("a", 0), TextDelta("b", 1), TextDelta("c", 0), Finish("stop", 1), Finish("stop")
    )
    result = await stream.collect()
    assert [(c.index, c.content) for c in result.choices] == [(0, "ac"), (1, "b")]


async def test_stream_time_to_first_token_measured_from_request_start():
    started = time.perf_counter() - 5.0  # the request began 5 s before the stream existed
    stream = make_stream(UsageUpdate(Usage()), TextDelta("x"), Finish("stop"), started=started)
    assert await stream.__anext__() == UsageUpdate(Usage())
    assert stream.time_to_first_token is None  # usage is not a token
    await stream.__anext__()
    assert stream.time_to_first_token is not None
    assert stream.time_to_first_token >= 5.0
    result = await stream.collect()
    assert result.time_to_first_token == stream.time_to_first_token


async def test_stream_peek_does_not_consume():
    stream = make_stream(TextDelta("first"), Finish("stop"))
    assert await stream.peek() == TextDelta("first")
    assert await stream.peek() == TextDelta("first")
    assert [e async for e in stream] == [TextDelta("first"), Finish("stop")]


@pytest.mark.parametrize(
    "items",
    [
        [TextDelta("The answer is")],
        [],
        [UsageUpdate(Usage(prompt_tokens=3))],
        [TextDelta("a", 0), TextDelta("b", 1), Finish("stop", 0)],
    ],
    ids=["text-only", "empty", "usage-only", "one-choice-unfinished"],
)
async def test_stream_without_finish_raises_instead_of_truncating(items: list[StreamEvent]):
    stream = make_stream(*items)
    with pytest.raises(UpstreamServerError) as info:
        await stream.collect()
    assert info.value.code == "stream_truncated"
    assert info.value.retryable and info.value.failover


async def test_stream_upstream_error_propagates():
    stream = make_stream(TextDelta("x"), RateLimitError("slow down", retry_after=1.0))
    with pytest.raises(RateLimitError):
        await stream.collect()


# --- backoff -----------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(8))
def test_backoff_delay_bounds(round_: int):
    policy = RetryConfig()
    ceiling = min(policy.backoff_max, policy.backoff_base * 2**round_)
    delays = [
        backoff_delay(round_, policy.backoff_base, policy.backoff_max, r / 10) for r in range(11)
    ]
    assert delays[0] == pytest.approx(ceiling / 2)
    assert delays[-1] == pytest.approx(ceiling)
    assert delays == sorted(delays)
    assert all(ceiling / 2 <= d <= ceiling <= policy.backoff_max for d in delays)


def test_backoff_delay_grows_then_caps():
    assert backoff_delay(0, 0.25, 8.0, 1.0) == 0.25
    assert backoff_delay(1, 0.25, 8.0, 1.0) == 0.5
    assert backoff_delay(3, 0.25, 8.0, 1.0) == 2.0
    assert backoff_delay(10, 0.25, 8.0, 1.0) == 8.0
    assert backoff_delay(10, 0.25, 8.0, 0.0) == 4.0
    assert backoff_delay(4, 0.0, 8.0, 0.7) == 0.0
