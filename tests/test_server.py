"""The server end to end, driven by the official openai SDK (sync and async, stream and not)
and by raw HTTP for the inputs an SDK would never send."""

from __future__ import annotations

import httpx
import openai
import pytest

from .conftest import MASTER_KEY, UPSTREAM_KEY, make_config
from .fakes.openai_upstream import Cut, Fail, FakeOpenAI, Reply

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway_url(serve, fake_url: str) -> str:
    return serve(
        make_config(
            fake_url,
            server={"master_key": MASTER_KEY, "preload_local": False, "max_body_bytes": 4096},
        )
    )


def test_sync_sdk_json(gateway_url: str, fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(Reply(text="Hello there.", prompt_tokens=3, completion_tokens=2))
    raw = client.chat.completions.with_raw_response.create(model="chain", messages=HI)
    out = raw.parse()
    assert out.choices[0].message.content == "Hello there."
    assert out.model == "chain"
    assert out.usage.total_tokens == 5
    assert raw.headers["x-turnout-provider"] == "primary"
    assert raw.headers["x-turnout-model"] == "model-a"
    assert raw.headers["x-turnout-attempts"] == "1"


def test_sync_sdk_stream_with_usage(gateway_url: str, fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(Reply(text="one two three", completion_tokens=3))
    chunks = list(
        client.chat.completions.create(
            model="chain", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]


async def test_async_sdk_json_and_stream(gateway_url: str, fake: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(Reply(text="async json"), Reply(text="async stream"))
    out = await client.chat.completions.create(model="chain", messages=HI)
    assert out.choices[0].message.content == "async json"
    stream = await client.chat.completions.create(model="chain", messages=HI, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "async stream"
    await client.close()


def test_tool_calls_through_the_server(gateway_url: str, fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    fake.then(
        Reply(tool_call=("lookup", '{"q": "x"}')), Reply(tool_call=("lookup", '{"q": "streamed"}'))
    )
    out = client.chat.completions.create(model="chain", messages=HI, tools=tools)
    assert out.choices[0].message.tool_calls[0].function.arguments == '{"q": "x"}'
    chunks = list(
        client.chat.completions.create(model="chain", messages=HI, tools=tools, stream=True)
    )
    args = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert args == '{"q": "streamed"}'


def test_stream_failover_through_the_server(gateway_url: str, fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(Fail(503, "busy"), Reply(text="backup speaking"))
    raw = client.chat.completions.with_raw_response.create(model="chain", messages=HI, stream=True)
    assert raw.headers["x-turnout-deployment"] == "backup:model-b"
    assert raw.headers["x-turnout-attempts"] == "2"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "backup speaking"


def test_mid_stream_failure_is_reported_not_truncated(gateway_url: str, fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(Cut(keep=3))
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="single", messages=HI, stream=True):
            pass


def test_all_failed_is_one_openai_error_listing_attempts(
    gateway_url: str, fake: FakeOpenAI
) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(*[Fail(500, "boom")] * 4)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="chain", messages=HI)
    body = info.value.body
    assert [a["deployment"] for a in body["attempts"]] == [
        "primary:model-a",
        "backup:model-b",
        "primary:model-a",
        "backup:model-b",
    ]
    assert UPSTREAM_KEY not in info.value.response.text


def test_rate_limit_is_passed_on_with_retry_after(gateway_url: str, fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(Fail(429, "slow down", headers={"Retry-After": "120"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="single", messages=HI)
    assert info.value.response.headers["retry-after"] == "120"


def test_models_and_health(gateway_url: str) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert ids[:2] == ["chain", "single"]
    assert httpx.get(gateway_url + "/health").json()["status"] == "ok"


# --- bad input: each gets the OpenAI error shape and the right status --------------------------


def _post(
    url: str, content: bytes | str, key: str | None = MASTER_KEY, **headers: str
) -> httpx.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(
        url + "/v1/chat/completions",
        content=content,
        headers={"Content-Type": "application/json", **headers},
    )


def _assert_openai_error(resp: httpx.Response, status: int, kind: str) -> dict:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == kind and error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "status", "kind", "needle"),
    [
        (b"{not json", 400, "invalid_request_error", "not valid JSON"),
        (b"[1, 2]", 400, "invalid_request_error", "JSON object"),
        (b'{"model": "chain"}', 400, "invalid_request_error", "messages"),
        (b'{"model": "chain", "messages": []}', 400, "invalid_request_error", "messages"),
        (
            b'{"model": "chain", "messages": [{"role": "wizard", "content": "x"}]}',
            400,
            "invalid_request_error",
            "role",
        ),
        (
            b'{"model": "chain", "messages": [{"role": "user", "content": "x"}], "temperature": 7}',
            400,
            "invalid_request_error",
            "temperature",
        ),
        (
            b'{"model": "chain", "messages": [{"role": "user", "content": "x"}], '
            b'"max_tokens": "lots"}',
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            b'{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "not_found_error",
            "no-such-model",
        ),
        (
            b'{"model": "nowhere:foo", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "not_found_error",
            "nowhere",
        ),
    ],
)
def test_bad_requests(gateway_url: str, body: bytes, status: int, kind: str, needle: str) -> None:
    error = _assert_openai_error(_post(gateway_url, body), status, kind)
    assert needle in error["message"]


def test_wrong_or_missing_key(gateway_url: str) -> None:
    body = b'{"model": "chain", "messages": [{"role": "user", "content": "x"}]}'
    _assert_openai_error(_post(gateway_url, body, key="sk-wrong"), 401, "authentication_error")
    _assert_openai_error(_post(gateway_url, body, key=None), 401, "authentication_error")
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="chain", messages=HI)


def test_oversized_body(gateway_url: str) -> None:
    big = '{"model": "chain", "messages": [{"role": "user", "content": "' + "x" * 10_000 + '"}]}'
    _assert_openai_error(_post(gateway_url, big), 413, "invalid_request_error")

    def chunked():
        yield big.encode()

    resp = httpx.post(
        gateway_url + "/v1/chat/completions",
        content=chunked(),
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    )
    _assert_openai_error(resp, 413, "invalid_request_error")


def test_unknown_path_and_method(gateway_url: str) -> None:
    assert httpx.get(gateway_url + "/v1/nothing").status_code == 404
    resp = httpx.get(gateway_url + "/v1/chat/completions")
    assert resp.status_code == 405 and "error" in resp.json()


def test_upstream_key_problems_name_the_provider_not_the_key(
    serve, fake_url: str, fake: FakeOpenAI
) -> None:
    url = serve(make_config(fake_url))
    fake.then(Fail(401, f"Incorrect API key provided: {UPSTREAM_KEY}"))
    resp = _post(
        url, b'{"model": "single", "messages": [{"role": "user", "content": "x"}]}', key=None
    )
    error = _assert_openai_error(resp, 401, "authentication_error")
    assert UPSTREAM_KEY not in resp.text and "primary" in error["message"]
