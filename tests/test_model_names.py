"""A model name is the client's choice: whatever it holds, both ingresses answer with a 4xx in
their own error shape before any upstream is called, and no response header carries raw
client or upstream text (issue 10, defects 2 and 3)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from turnout.config import Config

from .conftest import MASTER_KEY, make_config
from .fakes.openai_upstream import FakeOpenAI, Reply

HI = [{"role": "user", "content": "hi"}]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}

# Hosts that need something no zero-config gateway has: a base URL (custom, modal), an
# endpoint (azure), a workspace (blaxel).
UNCONFIGURED = ["custom:x", "modal:x", "azure:x", "blaxel:x"]
ODD_NAMES = [
    "primary:中",
    "primary:a\r\nx-injected: 1",
    "primary:a b",
    "primary:a\x00b",
    "primary:" + "m" * 300,
]


@pytest.fixture
def gateway_url(serve, fake_url: str, tmp_path: Path) -> str:
    return serve(
        make_config(
            fake_url,
            server={"master_key": MASTER_KEY, "preload_local": False},
            database_url=f"sqlite:///{tmp_path / 'log.db'}",
            request_log={"flush_interval": 0.02},
        )
    )


@pytest.fixture
def zero_config_url(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``turnout serve`` with no config file (the embedded model is not preloaded)."""
    monkeypatch.chdir(tmp_path)
    for var in ("AZURE_OPENAI_ENDPOINT", "BL_WORKSPACE", "MODAL_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return serve(Config.model_validate({"server": {"preload_local": False}}))


@pytest.mark.parametrize("model", UNCONFIGURED)
def test_unconfigured_provider_is_404_on_the_openai_route(zero_config_url: str, model: str) -> None:
    with openai.OpenAI(base_url=zero_config_url + "/v1", api_key="any", max_retries=0) as client:
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model=model, messages=HI)
        error = info.value.body
        assert isinstance(error, dict)
        assert error["code"] == "model_not_found" and error["param"] == "model"
        provider = model.partition(":")[0]
        # It says what is missing, so an operator knows what to configure.
        assert f"providers.{provider}" in error["message"]


def test_unconfigured_provider_names_the_missing_setting(zero_config_url: str) -> None:
    r = httpx.post(
        zero_config_url + "/v1/chat/completions", json={"model": "azure:x", "messages": HI}
    )
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert "AZURE_OPENAI_ENDPOINT" in message and "providers.azure.settings.endpoint" in message


@pytest.mark.parametrize("model", UNCONFIGURED)
def test_unconfigured_provider_is_404_on_the_anthropic_route(
    zero_config_url: str, model: str
) -> None:
    with anthropic.Anthropic(base_url=zero_config_url, api_key="any", max_retries=0) as client:
        with pytest.raises(anthropic.NotFoundError) as info:
            client.messages.create(model=model, max_tokens=5, messages=HI)
        body = info.value.body
        assert isinstance(body, dict)
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("model", ODD_NAMES)
def test_odd_model_names_are_400_before_any_upstream_call(
    gateway_url: str, fake: FakeOpenAI, model: str
) -> None:
    fake.then(Reply(text="should not be asked"))
    for stream in (False, True):
        r = httpx.post(
            gateway_url + "/v1/chat/completions",
            json={"model": model, "messages": HI, "stream": stream},
            headers=AUTH,
        )
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == "model"
        assert "x-injected" not in r.headers
    r = httpx.post(
        gateway_url + "/v1/messages",
        json={"model": model, "max_tokens": 5, "messages": HI},
        headers={"x-api-key": MASTER_KEY},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert fake.calls == []


def test_the_request_log_records_the_refusal(
    gateway_url: str, fake: FakeOpenAI, tmp_path: Path
) -> None:
    for model in ODD_NAMES[:2]:
        r = httpx.post(
            gateway_url + "/v1/chat/completions",
            json={"model": model, "messages": HI},
            headers=AUTH,
        )
        assert r.status_code == 400
    rows: list[tuple[int]] = []
    deadline = time.monotonic() + 10
    while len(rows) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        with sqlite3.connect(tmp_path / "log.db") as conn:
            rows = conn.execute("SELECT status FROM request_log").fetchall()
    assert rows == [(400,), (400,)]


def test_usual_model_names_still_pass(gateway_url: str, fake: FakeOpenAI) -> None:
    names = ["primary:llama3.2:3b", "primary:org/Model-7B_v0.1@2024", "primary:a+b=c~d"]
    fake.then(*[Reply(text="ok")] * len(names))
    for name in names:
        r = httpx.post(
            gateway_url + "/v1/chat/completions",
            json={"model": name, "messages": HI},
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        assert r.headers["x-turnout-model"] == name.partition(":")[2]


@pytest.mark.parametrize("stream", [False, True])
def test_client_text_in_served_headers_is_encoded(
    gateway_url: str, fake: FakeOpenAI, stream: bool
) -> None:
    """``turnout.task`` is echoed in ``x-turnout-task``: non-Latin-1 text and CR/LF are
    percent-encoded, never a crash after the upstream answered, never a second header."""
    fake.then(Reply(text="served"), Reply(text="served"))
    cases = (("中文", "%E4%B8%AD%E6%96%87"), ("a\r\nx-injected: 1", "a%0D%0Ax-injected: 1"))
    for task, shown in cases:
        r = httpx.post(
            gateway_url + "/v1/chat/completions",
            json={"model": "single", "messages": HI, "stream": stream, "turnout": {"task": task}},
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        assert r.headers["x-turnout-task"] == shown
        assert "x-injected" not in r.headers
        assert "served" in r.text
