"""A deployment whose provider has no key configured is left out at planning, with the reason
in the error; with nothing left, the answer is 503 naming the variable to set, never a 401
that a client SDK would blame on the client's own key (issue 10, defect 8)."""

from __future__ import annotations

import httpx
import openai
import pytest

from .conftest import MASTER_KEY, UPSTREAM_KEY, make_config, provider
from .fakes.openai_upstream import Fail, FakeOpenAI, Reply

HI = [{"role": "user", "content": "hi"}]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
OTHER_SECRET = "gsk-another-provider-secret-0123456789"


@pytest.fixture
def gateway_url(serve, fake_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("GROQ_API_KEY", OTHER_SECRET)  # set, and must never be shown
    return serve(
        make_config(
            fake_url,
            providers={
                "primary": provider(fake_url),
                # The OpenAI host's key comes from OPENAI_API_KEY, which is not set.
                "nokey": {"host": "openai", "base_url": fake_url},
            },
            routes=[
                {"name": "mixed", "deployments": ["nokey:model-x", "primary:model-a"]},
                {"name": "keyless", "deployments": ["nokey:model-x"]},
            ],
            server={"master_key": MASTER_KEY, "preload_local": False},
        )
    )


def test_an_unkeyed_deployment_is_skipped_not_tried(gateway_url: str, fake: FakeOpenAI) -> None:
    with openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
        fake.then(Reply(text="served by the keyed one"))
        raw = client.chat.completions.with_raw_response.create(model="mixed", messages=HI)
        assert raw.parse().choices[0].message.content == "served by the keyed one"
        assert raw.headers["x-turnout-deployment"] == "primary:model-a"
        assert raw.headers["x-turnout-attempts"] == "1"
        assert len(fake.calls) == 1


@pytest.mark.parametrize("model", ["keyless", "openai:gpt-4o-mini"])
def test_nothing_keyed_left_is_503_naming_the_variable(
    gateway_url: str, fake: FakeOpenAI, model: str
) -> None:
    with openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model=model, messages=HI)
        assert info.value.status_code == 503
        error = info.value.body
        assert isinstance(error, dict)
        assert error["type"] != "authentication_error" and error["code"] == "missing_api_key"
        assert "OPENAI_API_KEY" in error["message"]
        assert OTHER_SECRET not in info.value.response.text
        assert UPSTREAM_KEY not in info.value.response.text
        assert fake.calls == []


def test_nothing_keyed_left_is_503_on_the_anthropic_route(
    gateway_url: str, fake: FakeOpenAI
) -> None:
    r = httpx.post(
        gateway_url + "/v1/messages",
        json={"model": "keyless", "max_tokens": 5, "messages": HI},
        headers={"x-api-key": MASTER_KEY},
    )
    assert r.status_code == 503
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "OPENAI_API_KEY" in body["error"]["message"]
    assert fake.calls == []


def test_the_aggregate_error_says_why_a_deployment_was_not_tried(
    gateway_url: str, fake: FakeOpenAI
) -> None:
    fake.then(*[Fail(500, "boom")] * 2)
    r = httpx.post(
        gateway_url + "/v1/chat/completions",
        json={"model": "mixed", "messages": HI},
        headers=AUTH,
    )
    assert r.status_code == 502
    error = r.json()["error"]
    assert [a["deployment"] for a in error["attempts"]] == ["primary:model-a"] * 2
    (skipped,) = error["skipped"]
    assert skipped["deployment"] == "nokey:model-x"
    assert "OPENAI_API_KEY" in skipped["reason"] and "OPENAI_API_KEY" in error["message"]
