"""Routing through the server, driven by the openai SDK: strategy chosen per request by header
or body field, explained in response headers; the body field never reaches the upstream."""

from __future__ import annotations

import httpx
import openai
import pytest

from .conftest import make_config
from .fakes.openai_upstream import Fail, FakeOpenAI, Reply

HI = [{"role": "user", "content": "hi"}]
MODELS = [
    {"id": "primary:model-a", "input_price": 5.0, "output_price": 15.0, "quality": 0.9},
    {"id": "backup:model-b", "input_price": 0.1, "output_price": 0.3, "quality": 0.6},
]


@pytest.fixture
def client(serve, fake_url: str) -> openai.OpenAI:
    url = serve(make_config(fake_url, models=MODELS))
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_headers_name_strategy_deployment_and_attempts(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="chain", messages=HI)
    assert raw.headers["x-turnout-strategy"] == "priority"
    assert raw.headers["x-turnout-deployment"] == "primary:model-a"
    assert raw.headers["x-turnout-attempts"] == "1"


@pytest.mark.parametrize("stream", [False, True])
def test_strategy_header_overrides_the_route(
    client: openai.OpenAI, fake: FakeOpenAI, stream: bool
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chain", messages=HI, stream=stream, extra_headers={"x-turnout-strategy": "cost"}
    )
    assert raw.headers["x-turnout-strategy"] == "cost"
    assert raw.headers["x-turnout-deployment"] == "backup:model-b"  # the cheaper one
    assert [c["body"]["model"] for c in fake.calls] == ["model-b"]


def test_body_field_selects_strategy_and_is_not_forwarded(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chain",
        messages=HI,
        extra_body={"turnout": {"strategy": "manual", "deployment": "backup:model-b"}},
    )
    assert raw.headers["x-turnout-strategy"] == "manual"
    assert raw.headers["x-turnout-deployment"] == "backup:model-b"
    assert "turnout" not in fake.calls[0]["body"]


def test_body_field_wins_over_the_header(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chain",
        messages=HI,
        extra_headers={"x-turnout-strategy": "cost"},
        extra_body={"turnout": {"strategy": "quality"}},
    )
    assert raw.headers["x-turnout-strategy"] == "quality"
    assert raw.headers["x-turnout-deployment"] == "primary:model-a"


def test_failover_is_explained_in_headers(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.then(Fail(503, "busy"), Reply())
    raw = client.chat.completions.with_raw_response.create(
        model="chain", messages=HI, extra_headers={"x-turnout-strategy": "quality"}
    )
    assert raw.headers["x-turnout-deployment"] == "backup:model-b"
    assert raw.headers["x-turnout-attempts"] == "2"
    assert raw.headers["x-turnout-strategy"] == "quality"


def test_unknown_strategy_is_a_400_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="chain", messages=HI, extra_headers={"x-turnout-strategy": "fastest"}
        )
    assert "unknown strategy 'fastest'" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="chain", messages=HI, extra_body={"turnout": {"colour": "blue"}}
        )
    assert "turnout.colour" in info.value.message


def test_debug_log_lists_candidates_and_reasons(
    serve, fake_url: str, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    models = [{"id": "primary:model-a", "capabilities": ["streaming"]}]
    url = serve(make_config(fake_url, models=models))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with caplog.at_level("DEBUG", logger="turnout.routing"):
        r = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "chain", "messages": HI, "tools": tools},
        )
    assert r.status_code == 200 and r.headers["x-turnout-deployment"] == "backup:model-b"
    line = next(m for m in caplog.messages if m.startswith("route chain"))
    assert "primary:model-a (no tools support)" in line and "backup:model-b" in line


def test_routing_status_shows_strategy_circuits_and_measurements(
    serve, fake_url: str, fake: FakeOpenAI
) -> None:
    config = make_config(fake_url, models=MODELS, health={"allowed_fails": 1, "cooldown": 60})
    url = serve(config)
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    fake.then(Fail(500, "boom"), Reply())
    client.chat.completions.create(model="chain", messages=HI)
    status = httpx.get(url + "/api/routing").json()
    chain = next(r for r in status["routes"] if r["name"] == "chain")
    assert chain == {
        "name": "chain",
        "strategy": "priority",
        "deployments": ["primary:model-a", "backup:model-b"],
    }
    primary = status["deployments"]["primary:model-a"]
    assert primary["circuit"] == "open" and 59 < primary["cooldown_remaining_s"] <= 60
    assert primary["failures"] == 1 and primary["last_error"] == "server"
    backup = status["deployments"]["backup:model-b"]
    assert backup["circuit"] == "closed" and backup["samples"] == 1
    assert backup["latency_ms"] > 0 and backup["in_flight"] == 0


def test_task_header_when_the_caller_names_the_task(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chain", messages=HI, extra_body={"turnout": {"task": "summarisation"}}
    )
    assert raw.headers["x-turnout-task"] == "summarisation"
    plain = client.chat.completions.with_raw_response.create(model="chain", messages=HI)
    assert "x-turnout-task" not in plain.headers
