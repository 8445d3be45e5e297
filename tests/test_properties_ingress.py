"""Property-based tests of what reads a client's or an operator's bytes: the OpenAI and
Anthropic request parsers of the server (and every adapter's translation of what they
accept), and the config loader. Whatever the input: a value or the documented error
(``BadRequestError`` for a request, ``ConfigError`` for a config), never another exception,
never a hang, and never a secret echoed in the message."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from turnout.adapters import (
    anthropic_messages,
    bedrock_converse,
    cohere_chat,
    gemini,
    ollama_chat,
    openai_chat,
    openai_responses,
)
from turnout.catalogue import Catalogue
from turnout.config import Config, load_config
from turnout.deployment import Deployment, resolve_deployment
from turnout.errors import BadRequestError, ConfigError, TurnoutError
from turnout.gateway import parse_request
from turnout.server.anthropic_request import to_chat_request
from turnout.server.responses_wire import OPENAI_RESPONSES
from turnout.types import ChatRequest

from .properties import FLOATS, INTS, SECRET, json_like, no_hang


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    with no_hang(60):
        yield


MODEL = st.sampled_from(["gpt-x", "up:m", "custom:x", "a\r\nb", "中", ""]) | st.text(max_size=8)
"""Model names are echoed in errors ("unknown model 'x'"): never the secret."""
TEXT = st.sampled_from(["", "hi", "x" * 40, SECRET, "{}", '{"a": 1}', "中文"]) | st.text(max_size=8)
URLS = st.sampled_from(
    [
        "data:image/png;base64,iVBORw0KGgo=",
        "data:application/pdf;base64,JVBERi0=",
        "data:image/png;base64,@@@",
        "data:,",
        "https://example.com/a.png",
        "s3://bucket/a.png",
        "",
    ]
) | st.text(max_size=8)
B64 = st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()) | TEXT


def anything(keys: list[str], secret: bool = True) -> Any:
    return json_like(keys, max_leaves=6, secret=secret)


def fixed(required: dict[str, Any], optional: dict[str, Any] | None = None) -> Any:
    return st.fixed_dictionaries(required, optional=optional or {})


# --- OpenAI requests -----------------------------------------------------------------------

OPENAI_KEYS = [
    *("model", "messages", "role", "content", "type", "text", "image_url", "url", "detail"),
    *("input_audio", "data", "format", "file", "file_data", "filename", "tool_calls", "id"),
    *("function", "name", "arguments", "tool_call_id", "tools", "parameters", "tool_choice"),
    *("response_format", "json_schema", "schema", "strict", "max_tokens", "stop", "stream"),
]
O_ANY = anything(OPENAI_KEYS)
O_TEXT_PART = fixed({"type": st.just("text"), "text": TEXT})
O_PART = (
    O_TEXT_PART
    | fixed(
        {"type": st.just("image_url"), "image_url": fixed({"url": URLS})},
        {"detail": st.sampled_from(["auto", "low", "high"])},
    )
    | fixed(
        {
            "type": st.just("input_audio"),
            "input_audio": fixed({"data": B64, "format": st.sampled_from(["wav", "mp3"]) | TEXT}),
        }
    )
    | fixed({"type": st.just("file"), "file": fixed({}, {"file_data": URLS, "filename": TEXT})})
)
O_CALL = fixed(
    {"id": TEXT, "type": st.just("function"), "function": fixed({"name": TEXT, "arguments": TEXT})}
)


def openai_request(junk: Any) -> Any:
    """OpenAI request bodies; ``junk`` (``st.nothing()`` for well-formed ones) stands in, now
    and then, for any value."""

    def odd(usual: Any) -> Any:
        return st.integers(0, 5).flatmap(lambda n: junk if n == 0 else usual) | usual

    plain = TEXT | st.lists(O_TEXT_PART, min_size=1, max_size=2)
    message = (
        fixed({"role": st.sampled_from(["system", "developer"]), "content": odd(plain)})
        | fixed(
            {"role": st.just("user"), "content": odd(TEXT | st.lists(O_PART, max_size=3))},
            {"name": TEXT},
        )
        | fixed(
            {"role": st.just("assistant")},
            {
                "content": odd(st.none() | plain),
                "tool_calls": st.lists(O_CALL, max_size=2),
                "refusal": TEXT,
            },
        )
        | fixed({"role": st.just("tool"), "content": odd(plain), "tool_call_id": TEXT})
    )
    tool = fixed(
        {
            "type": st.just("function"),
            "function": fixed(
                {"name": TEXT},
                {"description": TEXT, "parameters": odd(st.just({"type": "object"}))},
            ),
        }
    )
    return fixed(
        {"model": MODEL.filter(bool), "messages": odd(st.lists(message, min_size=1, max_size=4))},
        {
            "tools": st.lists(tool, max_size=2),
            "tool_choice": odd(
                st.sampled_from(["none", "auto", "required"])
                | fixed({"type": st.just("function"), "function": fixed({"name": TEXT})})
            ),
            "response_format": odd(
                fixed(
                    {"type": st.sampled_from(["text", "json_object", "json_schema"])},
                    {"json_schema": fixed({"name": TEXT}, {"schema": odd(st.just({}))})},
                )
            ),
            "max_tokens": odd(st.integers(1, 4096)),
            "max_completion_tokens": odd(st.integers(1, 4096)),
            "temperature": odd(st.floats(0, 2)),
            "top_p": odd(st.floats(0, 1)),
            "stop": TEXT | st.lists(TEXT, max_size=4),
            "seed": INTS,
            "n": odd(st.integers(1, 4)),
            "stream": odd(st.booleans()),
            "stream_options": fixed({}, {"include_usage": st.booleans()}),
            "user": TEXT,
            "parallel_tool_calls": st.booleans(),
            "logprobs": odd(st.booleans()),
            "reasoning_effort": odd(st.sampled_from(["low", "medium", "high"])),
            "turnout": odd(fixed({}, {"strategy": st.sampled_from(["priority", "cost"])})),
        },
    )


OPENAI_REQUEST = openai_request(st.nothing()) | openai_request(O_ANY)


def deploy(model_id: str, **provider: Any) -> Deployment:
    name = model_id.partition(":")[0]
    config = Config.model_validate(
        {"providers": {name: {"api_key": SECRET, **provider}}, "drop_params": False}
    )
    return resolve_deployment(model_id, config, Catalogue.default())


TRANSLATORS = [
    (openai_chat.to_request, deploy("openai:gpt-x")),
    (openai_chat.to_request, deploy("mistral:mistral-x")),
    (anthropic_messages.to_request, deploy("anthropic:claude-x")),
    (gemini.to_request, deploy("gemini:gemini-x")),
    (cohere_chat.to_request, deploy("cohere:command-x")),
    (ollama_chat.to_request, deploy("ollama:llama3.2:3b")),
    (bedrock_converse.to_request, deploy("bedrock:anthropic.claude-x")),
    (openai_responses.to_request, deploy("openai_responses:gpt-x")),
]


def translate_everywhere(chat: ChatRequest) -> None:
    """What a request the server accepted meets next: each adapter's translation, which may
    refuse it (a 4xx of the hierarchy) but must not crash on it."""
    for to_request, d in TRANSLATORS:
        for stream in (False, True):
            try:
                url, headers, body = to_request(chat, d, stream=stream)
            except TurnoutError as err:
                assert err.status_code < 500, (d.id, err)
                continue
            assert isinstance(url, str) and isinstance(body, bytes)
            assert all(isinstance(v, str) for v in headers.values())


def accepts(parse: Any, body: Any) -> ChatRequest | None:
    """The parsed request, or None when it was refused the documented way (a 400 that does
    not echo the secret the body carried)."""
    try:
        return parse(body)  # type: ignore[no-any-return]
    except BadRequestError as err:
        assert err.status_code == 400
        assert SECRET not in str(err) and SECRET not in (err.param or ""), err
        return None


@given(OPENAI_REQUEST)
@example({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]})
@example({"model": "m", "messages": [{"role": "assistant", "content": None}]})
def test_openai_request_parser(body: dict[str, Any]) -> None:
    wire = orjson.loads(orjson.dumps(body))  # as the server reads it
    chat = accepts(parse_request, wire)
    if chat is not None:
        translate_everywhere(chat)


@given(json_like(OPENAI_KEYS))
def test_openai_request_parser_on_any_json(body: Any) -> None:
    accepts(parse_request, body)


# --- OpenAI Responses requests --------------------------------------------------------------

RESPONSES_KEYS = [
    *("model", "input", "role", "content", "type", "text", "image_url", "call_id", "name"),
    *("arguments", "output", "instructions", "tools", "parameters", "tool_choice", "format"),
    *("schema", "strict", "max_output_tokens", "stream", "store", "reasoning", "effort"),
    *("metadata", "previous_response_id", "message", "function_call", "function_call_output"),
]
R_PART = fixed(
    {"type": st.sampled_from(["input_text", "output_text", "input_image", "refusal"])},
    {"text": TEXT, "image_url": URLS, "refusal": TEXT},
)


def responses_request(junk: Any) -> Any:
    """Responses bodies; ``junk`` (``st.nothing()`` for well-formed ones) stands in, now and
    then, for any value."""

    def odd(usual: Any) -> Any:
        return st.integers(0, 5).flatmap(lambda n: junk if n == 0 else usual) | usual

    item = odd(
        fixed(
            {"role": st.sampled_from(["user", "assistant", "system", "developer"])},
            {"type": st.just("message"), "content": TEXT | st.lists(R_PART, max_size=2)},
        )
        | fixed(
            {"type": st.just("function_call"), "call_id": TEXT, "name": TEXT},
            {"arguments": TEXT},
        )
        | fixed({"type": st.just("function_call_output"), "call_id": TEXT}, {"output": TEXT})
    )
    return fixed(
        {"model": MODEL.filter(bool), "input": odd(TEXT | st.lists(item, max_size=4))},
        {
            "instructions": TEXT,
            "tools": st.lists(
                fixed({"type": st.just("function"), "name": TEXT}, {"parameters": st.just({})}),
                max_size=2,
            ),
            "tool_choice": odd(st.sampled_from(["auto", "none", "required"])),
            "text": odd(
                fixed(
                    {
                        "format": fixed(
                            {"type": st.sampled_from(["text", "json_object", "json_schema"])},
                            {"name": TEXT, "schema": st.just({})},
                        )
                    }  # fmt: skip
                )
            ),
            "max_output_tokens": odd(st.integers(1, 4096)),
            "temperature": odd(st.floats(0, 2)),
            "reasoning": odd(fixed({}, {"effort": st.sampled_from(["low", "high"])})),
            "stream": odd(st.booleans()),
            "metadata": odd(st.dictionaries(TEXT, TEXT, max_size=2)),
        },
    )


def parse_responses(body: Any) -> ChatRequest:
    return OPENAI_RESPONSES.chat_request(OPENAI_RESPONSES.parse(body))


@given(responses_request(st.nothing()) | responses_request(anything(RESPONSES_KEYS)))
def test_responses_request_parser(body: dict[str, Any]) -> None:
    wire = orjson.loads(orjson.dumps(body))
    chat = accepts(parse_responses, wire)
    if chat is not None:
        translate_everywhere(chat)


@given(json_like(RESPONSES_KEYS))
def test_responses_request_parser_on_any_json(body: Any) -> None:
    accepts(parse_responses, body)


# --- Anthropic requests --------------------------------------------------------------------

ANTHROPIC_KEYS = [
    *("model", "max_tokens", "messages", "role", "content", "type", "text", "source"),
    *("media_type", "data", "url", "id", "name", "input", "tool_use_id", "is_error"),
    *("system", "tools", "input_schema", "tool_choice", "thinking", "budget_tokens"),
]
A_ANY = anything(ANTHROPIC_KEYS)
A_TEXT = fixed({"type": st.just("text"), "text": TEXT})
A_SOURCE = fixed(
    {"type": st.sampled_from(["base64", "url", "text"])},
    {
        "media_type": st.sampled_from(["image/png", "application/pdf", "text/plain"]) | TEXT,
        "data": B64,
        "url": URLS,
    },
)
A_TOOL_USE = fixed({"type": st.just("tool_use"), "id": TEXT, "name": TEXT, "input": st.just({})})


def anthropic_request(junk: Any) -> Any:
    """Anthropic Messages bodies; ``junk`` (``st.nothing()`` for well-formed ones) stands in,
    now and then, for any value."""

    def odd(usual: Any) -> Any:
        return st.integers(0, 5).flatmap(lambda n: junk if n == 0 else usual) | usual

    user_block = odd(
        A_TEXT
        | fixed({"type": st.just("image"), "source": A_SOURCE})
        | fixed({"type": st.just("document"), "source": A_SOURCE}, {"title": TEXT})
        | fixed(
            {"type": st.just("tool_result"), "tool_use_id": TEXT},
            {"content": odd(TEXT | st.lists(A_TEXT, max_size=2)), "is_error": st.booleans()},
        )
    )
    assistant_block = odd(
        A_TEXT
        | A_TOOL_USE
        | fixed(
            {"type": st.sampled_from(["thinking", "redacted_thinking"])},
            {"thinking": TEXT, "signature": TEXT, "data": TEXT},
        )
    )
    message = fixed(
        {"role": st.just("user"), "content": TEXT | st.lists(user_block, min_size=1, max_size=3)}
    ) | fixed(
        {
            "role": odd(st.just("assistant")),
            "content": TEXT | st.lists(assistant_block, min_size=1, max_size=3),
        }
    )
    return fixed(
        {
            "model": MODEL.filter(bool),
            "max_tokens": odd(st.integers(1, 4096)),
            "messages": odd(st.lists(message, min_size=1, max_size=4)),
        },
        {
            "system": TEXT | st.lists(A_TEXT, max_size=2),
            "tools": st.lists(
                fixed(
                    {"name": TEXT.filter(bool)},
                    {"description": TEXT, "input_schema": odd(st.just({}))},
                ),
                max_size=2,
            ),
            "tool_choice": odd(
                fixed(
                    {"type": st.sampled_from(["auto", "any", "tool", "none"])},
                    {"name": TEXT, "disable_parallel_tool_use": st.booleans()},
                )
            ),
            "stream": odd(st.booleans()),
            "temperature": odd(st.floats(0, 1)),
            "top_p": odd(st.floats(0, 1)),
            "top_k": odd(st.integers(0, 100)),
            "stop_sequences": st.lists(TEXT, max_size=3),
            "metadata": fixed({}, {"user_id": odd(TEXT)}),
            "thinking": fixed(
                {"type": st.just("enabled")}, {"budget_tokens": odd(st.integers(1, 9999))}
            ),
            "output_config": fixed(
                {}, {"format": odd(fixed({"type": st.just("json_schema"), "schema": st.just({})}))}
            ),
        },
    )


ANTHROPIC_REQUEST = anthropic_request(st.nothing()) | anthropic_request(A_ANY)


@given(ANTHROPIC_REQUEST)
def test_anthropic_request_parser(body: dict[str, Any]) -> None:
    chat = accepts(to_chat_request, orjson.loads(orjson.dumps(body)))
    if chat is not None:
        translate_everywhere(chat)


@given(json_like(ANTHROPIC_KEYS))
def test_anthropic_request_parser_on_any_json(body: Any) -> None:
    accepts(to_chat_request, body)


# --- the config loader ---------------------------------------------------------------------

ENV_SECRET = "TURNOUT_PROPERTY_SECRET"
CONFIG_KEYS = [
    *("providers", "routes", "server", "timeouts", "retry", "models", "host", "base_url"),
    *("api_key", "settings", "headers", "name", "deployments", "master_key", "port"),
    *("secret_access_key", "access_key_id", "database_url", "redis_url", "strategy"),
]
C_ANY = anything(CONFIG_KEYS, secret=False)
NAME = st.sampled_from(["openai", "up", "x", ""]) | st.text(max_size=8)
"""Names (of providers, routes, headers) are shown in errors: never the secret."""
SECRET_VALUE = st.sampled_from([SECRET, f"${{{ENV_SECRET}}}", f"prefix-${{{ENV_SECRET}}}"])
PROVIDER = fixed(
    {},
    {
        "host": st.sampled_from(["openai", "custom", "bedrock", "ollama", "nope"]) | C_ANY,
        "base_url": URLS | C_ANY,
        "api_key": SECRET_VALUE | C_ANY,
        "settings": fixed({}, {"secret_access_key": SECRET_VALUE | C_ANY}) | C_ANY,
        "headers": st.dictionaries(NAME, SECRET_VALUE | C_ANY, max_size=2),
        "token": SECRET_VALUE,
    },
)
CONFIG = fixed(
    {},
    {
        "providers": st.dictionaries(NAME, PROVIDER, max_size=3),
        "routes": st.lists(
            fixed({"name": NAME}, {"deployments": st.lists(NAME, max_size=2) | C_ANY}),
            max_size=2,
        )
        | C_ANY,
        "server": fixed({}, {"master_key": SECRET_VALUE | C_ANY, "port": INTS | C_ANY}) | C_ANY,
        "timeouts": fixed({}, {"connect": FLOATS | C_ANY, "total": C_ANY}),
        "database_url": st.sampled_from(
            [f"postgresql://u:{SECRET}@db/x", "none", f"postgresql://u:${{{ENV_SECRET}}}@h/x"]
        )
        | C_ANY,
        "redis_url": st.just(f"redis://:{SECRET}@h:6379/0") | C_ANY,
        "password": SECRET_VALUE,
    },
)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for the config files, with the secret in the environment for ``${...}``."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_SECRET, SECRET)
        yield tmp_path_factory.mktemp("configs")


def load(config_dir: Path, raw: bytes) -> Config | None:
    path = config_dir / "turnout.yaml"
    path.write_bytes(raw)
    try:
        return load_config(path)
    except ConfigError as err:
        assert SECRET not in str(err), str(err)
        return None


@given(CONFIG)
def test_config_loader_never_echoes_a_secret(config_dir: Path, data: dict[str, Any]) -> None:
    load(config_dir, yaml.safe_dump(data, allow_unicode=True).encode())


@given(st.binary(max_size=200) | C_ANY.map(lambda v: yaml.safe_dump(v).encode()))
@example(b"providers:\n  x: {api_key: \xff\xfe}\n")  # not UTF-8
@example(b"a: &a [*a]\n")  # a list that contains itself
@example(b"a: &a {b: *a}\n")
@example(  # "billion laughs": nine aliases deep, 9**9 strings once expanded
    b"l0: &l0 [x, x, x, x, x, x, x, x, x]\n"
    + b"".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n".encode() for i in range(1, 10))
)
def test_config_loader_on_any_bytes(config_dir: Path, raw: bytes) -> None:
    load(config_dir, raw)
