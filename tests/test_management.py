"""The management API, cost reporting and /metrics end to end: a real server on loopback in
front of the fake OpenAI upstream, driven by raw HTTP and the official openai SDK. Every JSON
answer is validated against the OpenAPI description the server itself serves."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import MASTER_KEY, make_config
from .fakes.openai_upstream import Cut, Fail, FakeOpenAI, Reply

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
HI = [{"role": "user", "content": "hi"}]
# model-a: $2 in, $8 out, $0.5 cached per million; model-b has no price.
PRICED = [
    {"id": "primary:model-a", "input_price": 2.0, "output_price": 8.0, "cached_input_price": 0.5,
     "capabilities": ["tools", "streaming"], "tags": ["test"]},
]  # fmt: skip


def expected_cost(prompt: int, completion: int, cached: int = 0) -> float:
    return ((prompt - cached) * 2.0 + cached * 0.5 + completion * 8.0) / 1e6


@pytest.fixture
def url(serve, fake_url: str) -> str:
    return serve(
        make_config(
            fake_url, server={"master_key": MASTER_KEY, "preload_local": False}, models=PRICED
        )
    )


@pytest.fixture
def spec(url: str) -> dict[str, Any]:
    r = httpx.get(url + "/openapi.json")  # public: no key
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    assert doc["openapi"].startswith("3.1")
    from openapi_spec_validator import validate

    validate(doc)  # a valid OpenAPI 3.1 document, not just JSON
    return doc


def check(spec: dict[str, Any], schema: str, value: Any) -> None:
    """Validate a response against a schema of the served OpenAPI description."""
    from jsonschema import Draft202012Validator

    root = {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}
    Draft202012Validator(root).validate(value)


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(url + "/metrics", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# --- catalogue ------------------------------------------------------------------------------


def test_catalogue_filters(url: str, spec: dict[str, Any]) -> None:
    r = httpx.get(url + "/api/models", headers=AUTH)
    assert r.status_code == 200
    check(spec, "ModelList", r.json())
    ids = {m["id"] for m in r.json()["data"]}
    assert {"primary:model-a", "openai:gpt-5-mini", "local:smollm2-135m-instruct"} <= ids

    r = httpx.get(
        url + "/api/models",
        params={"capability": "vision,tools", "max_input_price": "0.3", "min_context": "300000"},
        headers=AUTH,
    )
    check(spec, "ModelList", r.json())
    models = r.json()["data"]
    assert models and all(
        {"vision", "tools"} <= set(m["capabilities"])
        and m["input_price"] <= 0.3
        and m["context_window"] >= 300000
        for m in models
    )
    assert "openai:gpt-5-nano" in {m["id"] for m in models}

    r = httpx.get(url + "/api/models", params=[("tag", "test")], headers=AUTH)
    assert [m["id"] for m in r.json()["data"]] == ["primary:model-a"]
    r = httpx.get(url + "/api/models", params={"provider": "anthropic"}, headers=AUTH)
    assert r.json()["data"] and {m["provider"] for m in r.json()["data"]} == {"anthropic"}
    r = httpx.get(url + "/api/models", params={"max_output_price": "0"}, headers=AUTH)
    free_output = [m["id"] for m in r.json()["data"]]
    # The embedded chat model, and the embedding models (which have no output tokens).
    assert free_output[0] == "local:smollm2-135m-instruct"
    assert all(m["capabilities"] == ["embeddings"] for m in r.json()["data"][1:])
    assert "local:all-minilm-l6-v2" in free_output


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"max_input_price": "cheap"}, "max_input_price"),
        ({"min_context": "1.5"}, "min_context"),
        ({"min_context": "-3"}, "min_context"),
        ({"capability": "telepathy"}, "capability"),
    ],
)
def test_catalogue_bad_filters(url: str, spec: dict[str, Any], params: dict, param: str) -> None:
    r = httpx.get(url + "/api/models", params=params, headers=AUTH)
    assert r.status_code == 400
    check(spec, "Error", r.json())
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/models"),
        ("POST", "/api/models/generate"),
        ("POST", "/api/models/stream"),
        ("POST", "/api/models/test"),
        ("GET", "/metrics"),
    ],
)
def test_master_key_required(url: str, spec: dict[str, Any], method: str, path: str) -> None:
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong-key"}, 403)):
        r = httpx.request(method, url + path, headers=headers, json={"model": "single"})
        assert r.status_code == status, path
        check(spec, "Error", r.json())
        assert MASTER_KEY not in r.text


# --- cost on the OpenAI routes ---------------------------------------------------------------


def test_cost_header_on_json_responses(url: str, fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(Reply(prompt_tokens=1000, completion_tokens=500, cached_tokens=400))
    raw = client.chat.completions.with_raw_response.create(model="single", messages=HI)
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(expected_cost(1000, 500, 400))
    assert raw.parse().usage.prompt_tokens_details.cached_tokens == 400
    # A model without a price: no header rather than a made-up zero.
    fake.then(Reply())
    raw = client.chat.completions.with_raw_response.create(model="backup:model-b", messages=HI)
    assert "x-turnout-cost-usd" not in raw.headers


def test_cost_of_a_stream(url: str, fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(Reply(text="one two", prompt_tokens=300, completion_tokens=20, cached_tokens=100))
    chunks = list(
        client.chat.completions.create(
            model="single", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage.completion_tokens == 20
    assert usage.model_extra["cost_usd"] == pytest.approx(expected_cost(300, 20, 100))

    # Without include_usage the cost still travels, as an SSE comment before [DONE].
    fake.then(Reply(text="one two", prompt_tokens=300, completion_tokens=20))
    body = {"model": "single", "messages": HI, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=AUTH) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert lines[-2].startswith(": x-turnout-cost-usd=")
    assert float(lines[-2].split("=", 1)[1]) == pytest.approx(expected_cost(300, 20))


# --- generate, stream, test -------------------------------------------------------------------


def test_generate(url: str, spec: dict[str, Any], fake: FakeOpenAI) -> None:
    fake.then(Reply(text="Paris.", prompt_tokens=12, completion_tokens=3, cached_tokens=4))
    body = {"model": "single", "prompt": "Capital of France?", "system": "Be brief.",
            "max_tokens": 16}  # fmt: skip
    r = httpx.post(url + "/api/models/generate", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    check(spec, "GenerateResult", out)
    assert out["text"] == "Paris." and out["deployment"] == "primary:model-a"
    assert out["cost_usd"] == pytest.approx(expected_cost(12, 3, 4))
    assert out["timings"]["ttft_s"] > 0 and out["timings"]["total_s"] >= out["timings"]["ttft_s"]
    assert out["timings"]["tokens_per_s"] > 0
    sent = fake.calls[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 16 and sent["stream"] is True


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"prompt": "hi"}, 400, "model"),
        ({"model": "single"}, 400, "prompt"),
        ({"model": "single", "prompt": "hi", "system": 3}, 400, "system"),
        ({"model": "single", "prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "no-such-model", "prompt": "hi"}, 404, "model"),
    ],
)
def test_generate_bad_input(
    url: str, spec: dict[str, Any], body: dict, status: int, param: str
) -> None:
    r = httpx.post(url + "/api/models/generate", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    check(spec, "Error", r.json())
    assert r.json()["error"]["param"] == param
    r = httpx.post(url + "/api/models/generate", content=b"{nope", headers=AUTH)
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_generate_upstream_failure_is_an_openai_error(
    url: str, spec: dict[str, Any], fake: FakeOpenAI
) -> None:
    fake.then(Fail(429, "slow down"), Fail(429, "slow down"))
    r = httpx.post(url + "/api/models/generate", json={"model": "single", "prompt": "hi"},
                   headers=AUTH)  # fmt: skip
    assert r.status_code == 429
    check(spec, "Error", r.json())


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, orjson.loads(line[6:])))
    return events


def test_stream(url: str, spec: dict[str, Any], fake: FakeOpenAI) -> None:
    fake.then(Reply(text="one two three", prompt_tokens=5, completion_tokens=3))
    body = {"model": "single", "prompt": "count"}
    with httpx.stream("POST", url + "/api/models/stream", json=body, headers=AUTH) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    deltas = [d["text"] for name, d in events if name == "delta"]
    assert "".join(deltas) == "one two three"
    (done,) = [d for name, d in events if name == "done"]
    assert events[-1][0] == "done"
    check(spec, "GenerateResult", done)
    assert done["text"] == "one two three"
    assert done["cost_usd"] == pytest.approx(expected_cost(5, 3))


def test_stream_cut_mid_way_ends_with_an_error_event(
    url: str, spec: dict[str, Any], fake: FakeOpenAI
) -> None:
    fake.then(Cut(keep=2))
    body = {"model": "single", "prompt": "count"}
    with httpx.stream("POST", url + "/api/models/stream", json=body, headers=AUTH) as r:
        events = sse_events(r)
    assert [n for n, _ in events][-1] == "error"
    check(spec, "Error", events[-1][1])
    assert "done" not in [n for n, _ in events]


def test_stream_refused_before_the_first_byte_is_a_status(url: str, fake: FakeOpenAI) -> None:
    r = httpx.post(url + "/api/models/stream", json={"model": "nope", "prompt": "x"},
                   headers=AUTH)  # fmt: skip
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"


def test_model_test_round_trip(url: str, spec: dict[str, Any], fake: FakeOpenAI) -> None:
    fake.then(Reply(text="pong", prompt_tokens=9, completion_tokens=1))
    r = httpx.post(url + "/api/models/test", json={"model": "primary:model-a"}, headers=AUTH)
    assert r.status_code == 200
    out = r.json()
    check(spec, "TestResult", out)
    assert out["ok"] is True and out["text"] == "pong"
    assert out["timings"]["ttft_s"] > 0 and out["cost_usd"] == pytest.approx(expected_cost(9, 1))
    sent = fake.calls[-1]["body"]
    assert sent["max_tokens"] == 8 and "pong" in sent["messages"][-1]["content"]


def test_model_test_reports_a_dead_upstream(url: str, spec: dict[str, Any]) -> None:
    r = httpx.post(url + "/api/models/test", json={"model": "down:anything"}, headers=AUTH)
    assert r.status_code == 200
    out = r.json()
    check(spec, "TestResult", out)
    assert out["ok"] is False and out["error"]["type"] and out["timings"]["total_s"] >= 0
    r = httpx.post(url + "/api/models/test", json={"model": "no-such-model"}, headers=AUTH)
    assert r.status_code == 404


# --- metrics -------------------------------------------------------------------------------


def test_metrics(url: str, fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.then(
        Reply(prompt_tokens=100, completion_tokens=10, cached_tokens=50),
        Reply(text="a b", prompt_tokens=20, completion_tokens=2),
        Fail(401, "bad key"),
    )
    client.chat.completions.create(model="single", messages=HI)
    list(client.chat.completions.create(model="single", messages=HI, stream=True))
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="single", messages=HI)
    s = metric_samples(url)
    a = (("model", "model-a"), ("provider", "primary"))
    assert s[("turnout_requests_total", (*a, ("status", "ok")))] == 2
    assert s[("turnout_requests_total", (*a, ("status", "error")))] == 1
    errors = {k: v for k, v in s.items() if k[0] == "turnout_errors_total"}
    assert any(dict(k[1])["error_class"] == "AuthenticationError" for k in errors)
    assert s[("turnout_tokens_total", (("kind", "input"), *a))] == 120
    assert s[("turnout_tokens_total", (("kind", "output"), *a))] == 12
    assert s[("turnout_tokens_total", (("kind", "cached_input"), *a))] == 50
    spent = expected_cost(100, 10, 50) + expected_cost(20, 2)
    assert s[("turnout_spend_usd_total", a)] == pytest.approx(spent)
    assert s[("turnout_time_to_first_token_seconds_count", a)] == 1  # streams only
    assert s[("turnout_request_latency_seconds_count", a)] == 2


def test_spec_and_route_table_agree(fake_url: str) -> None:
    """Every route the server answers is in the OpenAPI description and every documented
    operation is a route (a new route must be added to ``server/openapi.py``)."""
    from starlette.routing import Route

    from turnout.gateway import Gateway
    from turnout.server import create_app
    from turnout.server.openapi import openapi_spec

    app = create_app(Gateway(make_config(fake_url)))
    served = {
        (r.path, m.lower())
        for r in app.routes
        if isinstance(r, Route)
        for m in (r.methods or ())
        if m != "HEAD"
    }
    documented = {
        (path, method)
        for path, ops in openapi_spec()["paths"].items()
        for method in ops
        if method != "parameters"
    }
    assert served - documented == set(), "document these routes in server/openapi.py"
    assert documented - served == set(), "documented but not served"


# --- the embedded model, for real -----------------------------------------------------------


@pytest.mark.local_model
def test_generate_and_test_on_the_local_model(serve, fake_url: str) -> None:
    config = make_config(
        fake_url,
        server={"master_key": MASTER_KEY, "preload_local": False},
        timeouts={"connect": 5, "first_token": 120, "total": 180},  # includes loading the model
    )
    url = serve(config)
    r = httpx.post(url + "/api/models/generate", json={"model": "smollm2", "prompt": "Hi",
                   "max_tokens": 4}, headers=AUTH, timeout=120)  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provider"] == "local" and out["cost_usd"] == 0.0
    assert out["usage"]["completion_tokens"] >= 1 and out["timings"]["ttft_s"] > 0
    r = httpx.post(url + "/api/models/test", json={"model": "local"}, headers=AUTH, timeout=120)
    assert r.json()["ok"] is True and r.json()["usage"]["completion_tokens"] <= 8
