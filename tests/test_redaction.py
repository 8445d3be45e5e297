"""The one redaction of secrets (``turnout.redaction``) and the logging filter that applies it
to every log record (``turnout.logs``): pure tests, no server."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from turnout.config import Config
from turnout.gateway import Gateway
from turnout.logs import RedactingFilter, redact_logs_with, setup_logging
from turnout.redaction import Redactor, config_secrets, excerpt, is_secret_name

PROVIDER = "sk-provider-SECRET-0123456789abcd"
MASTER = "sk-master-SECRET-fedcba9876543210"


def test_a_known_secret_becomes_its_hint_wherever_it_appears() -> None:
    redact = Redactor([PROVIDER, MASTER])
    text = f"Incorrect API key provided: {PROVIDER}. (master was {MASTER}){PROVIDER}"
    out = redact(text)
    assert PROVIDER not in out and MASTER not in out
    assert out == "Incorrect API key provided: ...abcd. (master was ...3210)...abcd"


def test_the_longest_secret_wins_when_one_contains_another() -> None:
    short, long = "abcdefgh1234", "abcdefgh1234-and-more-9999"
    assert Redactor([short, long])(f"k={long}") == "k=...9999"


def test_generic_shapes_are_cut_without_being_configured() -> None:
    redact = Redactor()
    gateway_key = "sk-tn-" + "Ab3_x-" * 7
    cases = {
        f"key {gateway_key} revoked": f"key sk-tn-...{gateway_key[-4:]} revoked",
        "header Authorization: Bearer abc.def-123456789012345": "header Authorization: ***",
        "{'authorization': 'Bearer tok-1234567890abcdef'}": "{'authorization': '***'}",
        '{"x-api-key":"abc123def456"}': '{"x-api-key":"***"}',
        "sent bearer abcdefghijklmnop0123 to it": "sent bearer *** to it",
        "GET /v1beta/models?key=AIzaSyD-123456&alt=sse": "GET /v1beta/models?key=***&alt=sse",
        "x-goog-api-key = AIzaSy0123456789": "x-goog-api-key = ***",
    }
    for text, expected in cases.items():
        assert redact(text) == expected, text


def test_ordinary_text_is_left_alone() -> None:
    redact = Redactor([PROVIDER])
    for text in (
        "",
        "Rate limit reached for gpt-4o in organization org-abc on tokens per min.",
        "Invalid bearer token",
        "the api_key field is missing",
        "model 'up:中' not found",
    ):
        assert redact(text) == text


def test_short_values_are_not_treated_as_secrets() -> None:
    """A value shorter than 8 characters cannot be told from a word (``x``, ``unused``)."""
    assert Redactor(["x", "unused", None, ""]).count == 0
    assert Redactor(["x"])("max_tokens exceeds the maximum") == "max_tokens exceeds the maximum"


def test_value_redacts_every_string_of_a_json_value() -> None:
    redact = Redactor([PROVIDER])
    body = {"error": {"message": f"bad {PROVIDER}", "attempts": [{"m": PROVIDER, "n": 3}]}}
    out = redact.value(body)
    assert out == {"error": {"message": "bad ...abcd", "attempts": [{"m": "...abcd", "n": 3}]}}


def test_config_secrets_collects_every_secret_the_config_hands_over() -> None:
    config = Config.model_validate(
        {
            "server": {"master_key": MASTER},
            "providers": {
                "a": {"host": "custom", "base_url": "http://x", "api_key": PROVIDER},
                "b": {"host": "custom", "base_url": "http://x", "api_key_env": "B_KEY"},
                "aws": {
                    "host": "bedrock",
                    "settings": {"secret_access_key": "aws-SECRET-key", "region": "eu-west-1"},
                },
                "c": {
                    "host": "custom",
                    "base_url": "http://x",
                    "headers": {"X-Custom-Auth": "hdr-SECRET-1", "X-Title": "my app"},
                },
            },
            "database_url": "postgresql://turnout:db-SECRET-pw@db:5432/turnout",
            "redis_url": "redis://:redis-SECRET-pw@cache:6379/0",
            "alerts": {"webhook_url": "https://hooks.example/T000/B000/hook-SECRET"},
        }
    )
    environ = {
        "B_KEY": "env-SECRET-b",
        "OPENAI_API_KEY": "env-SECRET-openai",
        "AWS_SESSION_TOKEN": "env-SECRET-session",
        "AWS_REGION": "us-east-1",
    }
    found = {s for s in config_secrets(config, environ) if s}
    assert found == {
        MASTER,
        PROVIDER,
        "env-SECRET-b",
        "aws-SECRET-key",
        "hdr-SECRET-1",
        "env-SECRET-openai",
        "env-SECRET-session",
        "db-SECRET-pw",
        "redis-SECRET-pw",
        "https://hooks.example/T000/B000/hook-SECRET",
    }


def test_secret_names() -> None:
    assert all(map(is_secret_name, ["secret_access_key", "session_token", "X-Custom-Auth"]))
    assert not any(map(is_secret_name, ["region", "endpoint", "api_version", "workspace"]))


def test_the_gateway_builds_its_redactor_from_its_config() -> None:
    gateway = Gateway(Config.model_validate({"server": {"master_key": MASTER}}))
    assert gateway.redactor(f"master {MASTER}") == "master ...3210"


def test_a_reloaded_gateway_still_redacts_the_secrets_it_replaced() -> None:
    """A rotated-out key is still a secret: requests on the old gateway may fail with it."""
    new_key = "sk-provider-SECRET-rotated-00009999"

    def config(key: str) -> Config:
        provider = {"host": "custom", "base_url": "http://x", "api_key": key}
        return Config.model_validate({"providers": {"a": provider}})

    old = Gateway(config(PROVIDER))
    new = old.reconfigured(config(new_key))
    assert new.redactor(f"{PROVIDER} {new_key}") == "...abcd ...9999"
    assert old.redactor(new_key) == new_key  # the old one is left as it was


def test_an_excerpt_never_ends_inside_a_word() -> None:
    """A cut through a secret would leave its head, which redaction cannot recognise later."""
    text = f'{{"error": "bad key {PROVIDER} given"}}'
    cut_at = text.index(PROVIDER) + 12
    out = excerpt(text, cut_at)
    assert out == '{"error": "bad key ...'
    assert excerpt(b"  short body \n", 100) == "short body"
    assert excerpt("two words", 4) == "two ..."


# --- logging ---------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def collected() -> Any:
    handler = _Collect()
    handler.addFilter(RedactingFilter(Redactor([PROVIDER, MASTER])))
    log = logging.getLogger("turnout.test_redaction")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield log, handler.lines
    log.removeHandler(handler)


def test_the_filter_redacts_messages_arguments_and_tracebacks(collected: Any) -> None:
    log, lines = collected
    from turnout.errors import UpstreamServerError

    err = UpstreamServerError(f"upstream said: key {PROVIDER} is bad", provider="p", model="m")
    log.warning("stream from %s failed mid-way: %s", "p:m", err)
    log.info(f"master {MASTER} in the format string itself")
    log.info("mapping %(k)s", {"k": MASTER})
    try:
        raise RuntimeError(f"boom {PROVIDER}")
    except RuntimeError:
        log.exception("unexpected error")
    text = "\n".join(lines)
    assert PROVIDER not in text and MASTER not in text and "SECRET" not in text
    assert "failed mid-way: [p:m] upstream said: key ...abcd is bad" in text
    assert "master ...3210 in the format string itself" in text
    assert "mapping ...3210" in text
    assert "RuntimeError: boom ...abcd" in text


def test_the_filter_keeps_arguments_a_formatter_reads_itself(collected: Any) -> None:
    """uvicorn's access formatter unpacks ``record.args``: five values, the status an int."""
    log, _ = collected
    seen: list[tuple[Any, ...]] = []

    class Access(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            assert isinstance(record.args, tuple)
            seen.append(record.args)

    handler = Access()
    handler.addFilter(RedactingFilter(Redactor([PROVIDER])))
    log.addHandler(handler)
    try:
        path = f"/v1/models?key={PROVIDER}"
        log.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    finally:
        log.removeHandler(handler)
    assert seen == [("127.0.0.1:5000", "GET", "/v1/models?key=***", "1.1", 200)]


def test_setup_logging_puts_one_filter_on_every_root_handler() -> None:
    """(And a reload points it at the new gateway's redactor: ``redact_logs_with``.)"""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    root.addHandler(handler)
    level = logging.getLogger("turnout").level
    try:
        setup_logging("warning", redactor=Redactor([PROVIDER]))
        setup_logging("warning", redactor=Redactor([MASTER]))  # replaces, never stacks
        filters = [f for f in handler.filters if isinstance(f, RedactingFilter)]
        assert len(filters) == 1 and filters[0].redactor(MASTER) == "...3210"
        redact_logs_with(Redactor([PROVIDER]))
        assert filters[0].redactor(PROVIDER) == "...abcd"
    finally:
        logging.getLogger("turnout").setLevel(level)
        root.removeHandler(handler)
        for h in root.handlers:
            for f in [f for f in h.filters if isinstance(f, RedactingFilter)]:
                h.removeFilter(f)
