"""What the server refuses, and how (issue 10, defect 9): a 405 says which methods are
allowed; ``/v1/messages`` refuses what Anthropic's API refuses, in Anthropic's error shape,
before anything reaches an upstream."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx
import pytest

from .conftest import MASTER_KEY, make_config
from .fakes.openai_upstream import FakeOpenAI, Reply

HI = [{"role": "user", "content": "hi"}]
ANTHROPIC = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


@pytest.fixture
def gateway_url(serve, fake_url: str) -> str:
    return serve(make_config(fake_url, server={"master_key": MASTER_KEY, "preload_local": False}))


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/chat/completions", {"POST"}),
        ("DELETE", "/v1/models", {"GET", "HEAD"}),
        ("GET", "/v1/messages", {"POST"}),
        ("PUT", "/api/keys", {"GET", "HEAD", "POST"}),
        ("POST", "/api/keys/key_x", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("GET", "/v1/responses", {"POST"}),
        ("PUT", "/v1/responses/resp_x", {"GET", "HEAD", "DELETE"}),
        ("POST", "/v1/responses/resp_x/input_items", {"GET", "HEAD"}),
    ],
)
def test_405_names_every_allowed_method(
    gateway_url: str, method: str, path: str, allowed: set[str]
) -> None:
    r = httpx.request(method, gateway_url + path, headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed
    body = r.json()
    assert "error" in body  # the route's own shape (OpenAI's, or Anthropic's on /v1/messages)


def _messages(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/v1/messages", json=body, headers=ANTHROPIC)


def _image(data: str, media_type: str = "image/png") -> dict[str, Any]:
    source = {"type": "base64", "media_type": media_type, "data": data}
    return {"role": "user", "content": [{"type": "image", "source": source}]}


TOOL_USE = {
    "role": "assistant",
    "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}],
}


def _result(tool_use_id: str) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": "sunny"}
    return {"role": "user", "content": [block]}


REFUSED = {
    "image data not base64": {"max_tokens": 5, "messages": [_image("not base64 at all!")]},
    "image data badly padded": {"max_tokens": 5, "messages": [_image(PNG[:-1])]},
    "image media type": {"max_tokens": 5, "messages": [_image(PNG, "image/bmp")]},
    "tool_result without tool_use": {"max_tokens": 5, "messages": [*HI, _result("toolu_1")]},
    "tool_result for another id": {
        "max_tokens": 5,
        "messages": [*HI, TOOL_USE, _result("toolu_2")],
    },
    "max_tokens as a string": {"max_tokens": "10", "messages": HI},
    "stream as a string": {"max_tokens": 5, "messages": HI, "stream": "yes"},
    "temperature as a string": {"max_tokens": 5, "messages": HI, "temperature": "0.5"},
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_messages_refuses_what_anthropic_refuses(
    gateway_url: str, fake: FakeOpenAI, case: str
) -> None:
    r = _messages(gateway_url, {"model": "single", **REFUSED[case]})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]
    assert fake.calls == []


def test_the_sdk_sees_a_bad_request(gateway_url: str, fake: FakeOpenAI) -> None:
    with anthropic.Anthropic(base_url=gateway_url, api_key=MASTER_KEY, max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            client.messages.create(
                model="single",
                max_tokens=5,
                messages=[*HI, _result("toolu_9")],  # type: ignore[list-item]
            )
        assert "toolu_9" in str(info.value)


def test_what_anthropic_accepts_still_passes(gateway_url: str, fake: FakeOpenAI) -> None:
    fake.then(Reply(text="a picture"), Reply(text="sunny it is"), Reply(text="int temperature"))
    pictured = _messages(
        gateway_url, {"model": "single", "max_tokens": 5, "messages": [_image(PNG)]}
    )
    assert pictured.status_code == 200, pictured.text
    answered = _messages(
        gateway_url,
        {"model": "single", "max_tokens": 5, "messages": [*HI, TOOL_USE, _result("toolu_1")]},
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["content"][0]["text"] == "sunny it is"
    whole = _messages(
        gateway_url, {"model": "single", "max_tokens": 5, "messages": HI, "temperature": 1}
    )
    assert whole.status_code == 200, whole.text
    assert len(fake.calls) == 3
