"""``/v1/responses`` end to end, driven by the official ``openai`` SDK: whole and streamed
responses over a Chat Completions upstream (the fake), tools and ``function_call_output``
round trips, JSON schema output, ``previous_response_id`` continuation, the stored-response
operations and a gateway key's isolation, the ``openai_responses`` upstream adapter, the
embedded model, and bad input answered in OpenAI's error shape. Bodies and events are checked
against the official OpenAI spec (``../shared/specs/openai-openapi.yaml``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from turnout.config import Config
from turnout.gateway import Gateway
from turnout.server import create_app

from .conftest import MASTER_KEY, make_config, needs_local, openai_validator
from .fakes.openai_responses_upstream import FakeOpenAIResponses
from .fakes.openai_upstream import FakeOpenAI, Raw, Reply, StreamError
from .fakes.servers import AiohttpThread, UvicornThread

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
ARGS = '{"city": "Paris"}'
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
PRICED = {
    "id": "primary:model-a",
    "input_price": 1.0,
    "output_price": 2.0,
    "capabilities": ["streaming", "tools", "json", "vision"],
}
COST = (11 * 1.0 + 7 * 2.0) / 1_000_000


EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    "error": "ResponseErrorEvent",
}


def _valid_event(event: dict[str, Any]) -> None:
    _valid(EVENT_SCHEMAS[event["type"]], event)
    _valid("ResponseStreamEvent", event)


def _valid(schema: str, instance: Any) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in openai_validator(schema).iter_errors(instance)
    ]
    assert not errors, errors


@pytest.fixture(scope="module")
def responses_server() -> Iterator[tuple[FakeOpenAIResponses, str]]:
    fake = FakeOpenAIResponses()
    server = AiohttpThread(fake.app).start()
    yield fake, server.url
    server.stop()


@pytest.fixture
def oai(responses_server: tuple[FakeOpenAIResponses, str]) -> FakeOpenAIResponses:
    responses_server[0].reset()
    return responses_server[0]


class Gw:
    def __init__(self, url: str, app: Any) -> None:
        self.url = url
        self.app = app
        self.sdk = openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0)
        self.admin = httpx.Client(base_url=url, headers=AUTH, timeout=30)
        self._clients = [self.sdk]

    def key(self) -> openai.OpenAI:
        created = self.admin.post("/api/keys", json={"name": "app"})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        client = openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)
        self._clients.append(client)
        return client

    def close(self) -> None:
        self.admin.close()
        for client in self._clients:
            client.close()

    def post(self, body: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.admin.post("/v1/responses", json=body, **kw)


def _config(fake_url: str, responses_url: str, db: Path | None) -> Config:
    return make_config(
        fake_url,
        providers={
            "primary": {"host": "custom", "base_url": fake_url, "api_key": "sk-up-1234567890"},
            "oair": {"host": "openai_responses", "base_url": responses_url + "/v1", "api_key": "k"},
        },
        routes=[
            {"name": "chain", "deployments": ["primary:model-a"]},
            {"name": "via-responses", "deployments": ["oair:gpt-fake"]},
            {"name": "thinker", "deployments": ["primary:model-r"]},
        ],
        models=[PRICED, {"id": "primary:model-r", "capabilities": ["streaming", "reasoning"]}],
        server={"master_key": MASTER_KEY, "preload_local": False},
        database_url=f"sqlite:///{db}" if db is not None else "none",
    )


@pytest.fixture
def gw(tmp_path: Path, fake_url: str, responses_server: Any) -> Iterator[Gw]:
    app = create_app(Gateway(_config(fake_url, responses_server[1], tmp_path / "r.db")))
    server = UvicornThread(app).start()
    gateway = Gw(server.url, app)
    yield gateway
    gateway.close()
    server.stop()


# --- whole responses ---------------------------------------------------------------------------


def test_string_input_answers_a_spec_valid_response_with_usage_and_cost(
    gw: Gw, fake: FakeOpenAI
) -> None:
    fake.then(Reply(text="Paris."), Reply(text="Paris."))
    created = gw.sdk.responses.create(model="chain", input="Capital of France?")
    assert created.output_text == "Paris."
    assert created.status == "completed" and created.model == "chain"
    assert created.id.startswith("resp_")
    assert created.usage is not None
    assert (created.usage.input_tokens, created.usage.output_tokens) == (11, 7)
    assert created.usage.total_tokens == 18
    assert fake.calls[-1]["body"]["messages"] == [{"role": "user", "content": "Capital of France?"}]

    raw = gw.post({"model": "chain", "input": "Capital of France?", "metadata": {"a": "b"}})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    _valid("Response", body)
    assert body["metadata"] == {"a": "b"}
    assert body["usage"]["cost_usd"] == pytest.approx(COST)
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(COST)
    assert raw.headers["x-turnout-deployment"] == "primary:model-a"


def test_items_instructions_and_settings_reach_the_upstream(gw: Gw, fake: FakeOpenAI) -> None:
    gw.sdk.responses.create(
        model="chain",
        instructions="Answer like a pirate.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
            {"role": "assistant", "content": "Ahoy."},
            {"type": "message", "role": "user", "content": "Where is Paris?"},
        ],
        max_output_tokens=50,
        temperature=0.2,
        top_p=0.9,
        reasoning={"effort": "low"},
    )
    sent = fake.calls[-1]["body"]
    assert sent["messages"] == [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Ahoy."},
        {"role": "user", "content": "Where is Paris?"},
    ]
    assert (sent["max_completion_tokens"], sent["temperature"], sent["top_p"]) == (50, 0.2, 0.9)
    # The catalogue's entry for model-a lacks the reasoning capability: the effort is left
    # out; a model that reasons gets it.
    assert "reasoning_effort" not in sent
    gw.sdk.responses.create(model="thinker", input="hi", reasoning={"effort": "low"})
    assert fake.calls[-1]["body"]["reasoning_effort"] == "low"


def test_tool_call_and_function_call_output_round_trip(gw: Gw, fake: FakeOpenAI) -> None:
    fake.then(Reply(tool_call=("get_weather", ARGS)), Reply(text="It is sunny."))
    first = gw.sdk.responses.create(
        model="chain", input="Weather in Paris?", tools=TOOLS, tool_choice="auto"
    )
    call = first.output[0]
    assert call.type == "function_call"
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    sent_tools = fake.calls[-1]["body"]["tools"]
    assert sent_tools[0]["function"]["name"] == "get_weather"

    # Stateless: the caller sends the whole conversation back (store off).
    second = gw.sdk.responses.create(
        model="chain",
        store=False,
        tools=TOOLS,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"},
        ],
    )
    assert second.output_text == "It is sunny."
    assert second.store is False
    messages = fake.calls[-1]["body"]["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 24 C"}
    with pytest.raises(openai.NotFoundError):
        gw.sdk.responses.retrieve(second.id)


def test_tool_output_continues_a_stored_response(gw: Gw, fake: FakeOpenAI) -> None:
    fake.then(Reply(tool_call=("get_weather", ARGS)), Reply(text="It is sunny."))
    first = gw.sdk.responses.create(model="chain", input="Weather in Paris?", tools=TOOLS)
    call = first.output[0]
    assert call.type == "function_call"
    second = gw.sdk.responses.create(
        model="chain",
        previous_response_id=first.id,
        tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert second.output_text == "It is sunny."
    assert second.previous_response_id == first.id
    roles = [m["role"] for m in fake.calls[-1]["body"]["messages"]]
    assert roles == ["user", "assistant", "tool"]


def test_json_schema_and_json_object_formats(gw: Gw, fake: FakeOpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string"}},
        "required": ["capital"],
        "additionalProperties": False,
    }
    fake.then(Reply(text='{"capital": "Paris"}'), Reply(text="{}"))
    created = gw.sdk.responses.create(
        model="chain",
        input="Capital of France, as JSON.",
        text={
            "format": {"type": "json_schema", "name": "capital", "schema": schema, "strict": True}
        },
    )
    assert json.loads(created.output_text) == {"capital": "Paris"}
    assert created.text is not None and created.text.format.type == "json_schema"
    assert fake.calls[-1]["body"]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "capital", "schema": schema, "strict": True},
    }
    gw.sdk.responses.create(model="chain", input="JSON", text={"format": {"type": "json_object"}})
    assert fake.calls[-1]["body"]["response_format"] == {"type": "json_object"}


# --- streams -----------------------------------------------------------------------------------

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def _collapse(kinds: list[str]) -> list[str]:
    """Runs of the same event as one (the deltas)."""
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]


def test_stream_sends_the_typed_events_in_order(gw: Gw, fake: FakeOpenAI) -> None:
    fake.then(Reply(text="Paris is the capital."))
    with gw.sdk.responses.stream(model="chain", input="Capital of France?") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert _collapse(kinds) == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "Paris is the capital."
    assert final.output_text == "Paris is the capital."
    assert final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens == 7
    # The finished response is stored by the time the client has it.
    assert gw.sdk.responses.retrieve(final.id).output_text == "Paris is the capital."


def test_stream_events_follow_the_spec_and_carry_the_cost(gw: Gw, fake: FakeOpenAI) -> None:
    fake.then(Reply(text="Paris is the capital."))
    with gw.admin.stream(
        "POST", "/v1/responses", json={"model": "chain", "input": "Hi", "stream": True}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    assert ": x-turnout-cost-usd=" in text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    for event in events:
        _valid_event(event)
    final = events[-1]["response"]
    _valid("Response", final)
    assert final["usage"]["cost_usd"] == pytest.approx(COST)


def test_stream_of_a_tool_call(gw: Gw, fake: FakeOpenAI) -> None:
    fake.then(Reply(tool_call=("get_weather", ARGS)))
    with gw.sdk.responses.stream(model="chain", input="Weather?", tools=TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert _collapse([e.type for e in events]) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert "".join(deltas) == ARGS
    call = final.output[0]
    assert call.type == "function_call" and call.arguments == ARGS


def test_a_failure_mid_stream_ends_with_error_and_response_failed(gw: Gw, fake: FakeOpenAI) -> None:
    fake.then(StreamError(after=2, message="upstream broke mid-stream"))
    with gw.admin.stream(
        "POST", "/v1/responses", json={"model": "chain", "input": "Hi", "stream": True}
    ) as r:
        text = r.read().decode()
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["error", "response.failed"]
    assert "response.output_text.delta" in kinds
    for event in events:
        _valid_event(event)
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and "mid-stream" in failed["error"]["message"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    # A failed response is not kept.
    assert gw.admin.get(f"/v1/responses/{failed['id']}").status_code == 404


# --- stored responses --------------------------------------------------------------------------


def test_previous_response_id_continues_the_conversation(gw: Gw, fake: FakeOpenAI) -> None:
    fake.then(Reply(text="Nice to meet you, Ada."), Reply(text="Your name is Ada."))
    first = gw.sdk.responses.create(
        model="chain", input="My name is Ada.", instructions="Be brief."
    )
    second = gw.sdk.responses.create(
        model="chain", input="What is my name?", previous_response_id=first.id
    )
    assert second.output_text == "Your name is Ada."
    # Earlier input and output come first; instructions are not carried over.
    assert fake.calls[-1]["body"]["messages"] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
    ]


def test_retrieve_input_items_and_delete(gw: Gw, fake: FakeOpenAI) -> None:
    fake.then(Reply(text="One."), Reply(text="Two."))
    first = gw.sdk.responses.create(model="chain", input="a")
    second = gw.sdk.responses.create(model="chain", input="b", previous_response_id=first.id)
    got = gw.admin.get(f"/v1/responses/{second.id}")
    assert got.status_code == 200
    _valid("Response", got.json())
    assert gw.sdk.responses.retrieve(second.id).output_text == "Two."

    items = gw.sdk.responses.input_items.list(second.id, order="asc")
    assert [i.type for i in items.data] == ["message", "message", "message"]
    assert [i.role for i in items.data] == ["user", "assistant", "user"]  # type: ignore[union-attr]
    raw = gw.admin.get(f"/v1/responses/{second.id}/input_items", params={"limit": 1}).json()
    _valid("ResponseItemList", raw)
    assert raw["has_more"] is True and raw["data"][0]["content"][0]["text"] == "b"
    after = gw.admin.get(
        f"/v1/responses/{second.id}/input_items", params={"limit": 5, "after": raw["last_id"]}
    ).json()
    assert [i["id"] for i in after["data"]][-1] == items.data[0].id
    assert after["has_more"] is False
    paged = list(gw.sdk.responses.input_items.list(second.id, limit=1))  # the SDK follows pages
    assert len(paged) == 3

    deleted = gw.admin.delete(f"/v1/responses/{second.id}")
    assert deleted.json() == {"id": second.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError) as info:
        gw.sdk.responses.retrieve(second.id)
    assert info.value.body["message"] == f"Response with id '{second.id}' not found."  # type: ignore[index]
    assert gw.admin.delete(f"/v1/responses/{second.id}").status_code == 404


def test_a_gateway_key_sees_only_its_own_responses(gw: Gw, fake: FakeOpenAI) -> None:
    alice, bob = gw.key(), gw.key()
    mine = alice.responses.create(model="chain", input="secret plans")
    assert alice.responses.retrieve(mine.id).id == mine.id
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError) as info:
        bob.responses.create(model="chain", input="more", previous_response_id=mine.id)
    assert info.value.code == "previous_response_not_found"
    assert gw.sdk.responses.retrieve(mine.id).id == mine.id  # the master key sees all


def test_unknown_previous_response_is_a_400_in_openai_shape(gw: Gw) -> None:
    r = gw.post({"model": "chain", "input": "x", "previous_response_id": "resp_nope"})
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "message": "Previous response with id 'resp_nope' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
    }


def test_without_a_database_nothing_is_stored(
    fake_url: str, responses_server: Any, fake: FakeOpenAI
) -> None:
    app = create_app(Gateway(_config(fake_url, responses_server[1], None)))
    server = UvicornThread(app).start()
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    try:
        created = sdk.responses.create(model="chain", input="hi")
        assert created.store is False
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(created.id)
        with pytest.raises(openai.BadRequestError):
            sdk.responses.create(model="chain", input="x", previous_response_id=created.id)
    finally:
        sdk.close()
        server.stop()


def test_stored_responses_follow_the_request_log_retention(tmp_path: Path) -> None:
    from turnout.accounting.db import Database
    from turnout.accounting.responses import ResponseStore

    db = Database(f"sqlite:///{tmp_path / 'ret.db'}")
    db.upgrade()
    ready = asyncio.Event()
    ready.set()
    store = ResponseStore(db, ready)
    now = time.time()

    def response(id: str, created: float) -> dict[str, Any]:
        return {"id": id, "created_at": created, "model": "m", "status": "completed"}

    async def run() -> tuple[bool, bool]:
        await store.save(response("resp_old", now - 40 * 86400), [], None)
        await store.save(response("resp_new", now), [], None)
        db.prune(now - 30 * 86400)
        old = await store.get("resp_old", None, True)
        new = await store.get("resp_new", None, True)
        return old is None, new is not None

    assert asyncio.run(run()) == (True, True)
    db.dispose()


def test_stored_responses_on_postgresql(pg_url: str) -> None:
    from turnout.accounting.db import Database, database_url
    from turnout.accounting.responses import ResponseStore

    db = Database(database_url(Config.model_validate({"database_url": pg_url})) or "")
    db.upgrade()
    ready = asyncio.Event()
    ready.set()
    store = ResponseStore(db, ready)
    body = {"id": "resp_pg", "created_at": time.time(), "model": "m", "status": "completed"}
    items = [{"id": "msg_1", "type": "message", "role": "user", "content": []}]

    async def run() -> None:
        await store.save(body, items, "key_a")
        assert await store.get("resp_pg", "key_b", False) is None
        found = await store.get("resp_pg", "key_a", False)
        assert found is not None and found.input_items == items
        assert not await store.delete("resp_pg", "key_b", False)
        assert await store.delete("resp_pg", "key_a", False)

    asyncio.run(run())
    db.dispose()


# --- bad input ---------------------------------------------------------------------------------

BAD = [
    ({"input": "x"}, "model"),
    ({"model": "chain"}, "input"),
    ({"model": "chain", "input": 5}, "input"),
    ({"model": "chain", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "chain", "input": "x", "max_output_tokens": "9"}, "max_output_tokens"),
    ({"model": "chain", "input": "x", "temperature": 3}, "temperature"),
    ({"model": "chain", "input": "x", "stream": "yes"}, "stream"),
    ({"model": "chain", "input": "x", "nonsense": 1}, "nonsense"),
    ({"model": "chain", "input": [{"role": "robot", "content": "x"}]}, "input.0.role"),
    ({"model": "chain", "input": [{"type": "web_search_call"}]}, "input.0.type"),
    ({"model": "chain", "input": [{"role": "user", "content": 3}]}, "input.0.content"),
    ({"model": "chain", "input": [{"role": "user", "content": [{"type": "x"}]}]}, None),
    (
        {
            "model": "chain",
            "input": [{"type": "function_call_output", "call_id": "c", "output": ""}],
        },
        "input.0.call_id",
    ),
    ({"model": "chain", "input": [{"type": "function_call", "name": "f"}]}, "input.0.call_id"),
    ({"model": "chain", "input": "x", "tools": [{"type": "web_search"}]}, "tools.0.type"),
    ({"model": "chain", "input": "x", "tools": [{"type": "function"}]}, "tools.0.name"),
    ({"model": "chain", "input": "x", "tool_choice": {"type": "mcp"}}, "tool_choice"),
    ({"model": "chain", "input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format"),
    ({"model": "chain", "input": "x", "text": {"format": {"type": "xml"}}}, None),
    ({"model": "chain", "input": "x", "metadata": {"k": 1}}, None),
    ({"model": "chain", "input": "x", "reasoning": {"effort": "extreme"}}, None),
    ({"model": "chain", "input": [], "instructions": "only this"}, "input"),
    ({"model": "no such model here", "input": "x"}, "model"),
    ({"model": "chain", "input": "x", "background": True}, "background"),
    ({"model": "chain", "input": "x", "conversation": "conv_1"}, "conversation"),
]


@pytest.mark.parametrize(("body", "param"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_is_a_4xx_in_openai_shape(
    gw: Gw, body: dict[str, Any], param: str | None
) -> None:
    r = gw.post(body)
    assert 400 <= r.status_code < 500, r.text
    error = r.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    if param is not None:
        assert error["param"] == param or (error["param"] or "").startswith(param), error


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/responses/resp_x/input_items", {"limit": "0"}),
        ("/v1/responses/resp_x/input_items", {"limit": "many"}),
        ("/v1/responses/resp_x/input_items", {"order": "up"}),
    ],
)
def test_bad_paging_is_a_400(gw: Gw, path: str, params: dict[str, str]) -> None:
    r = gw.admin.get(path, params=params)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_not_json_and_wrong_methods_answer_in_openai_shape(gw: Gw) -> None:
    r = gw.admin.post("/v1/responses", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    put = gw.admin.put("/v1/responses/resp_x")
    assert put.status_code == 405 and "error" in put.json()


# --- the openai_responses upstream adapter ----------------------------------------------------


def test_a_route_served_through_the_responses_api(gw: Gw, oai: FakeOpenAIResponses) -> None:
    oai.then(Reply(text="From the Responses API."), Reply(text="Streamed back."))
    created = gw.sdk.responses.create(
        model="via-responses", input="hi", max_output_tokens=20, reasoning={"effort": "high"}
    )
    assert created.output_text == "From the Responses API."
    sent = oai.calls[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["headers"]["Authorization"] == "Bearer k"
    assert sent["body"]["store"] is False
    assert sent["body"]["max_output_tokens"] == 20
    assert sent["body"]["reasoning"] == {"effort": "high"}
    _valid("CreateResponse", sent["body"])

    chat = gw.sdk.chat.completions.create(
        model="via-responses", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chat if c.choices) == "Streamed back."
    assert oai.calls[-1]["body"]["stream"] is True


# --- the embedded model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("local")
    config = Config.model_validate(
        {
            "server": {"preload_local": False},
            "database_url": f"sqlite:///{folder / 'local.db'}",
            "timeouts": {"connect": 60, "first_token": 120, "total": 240},
        }
    )
    server = UvicornThread(create_app(Gateway(config))).start()
    yield server.url
    server.stop()


@needs_local
def test_the_embedded_model_answers_and_continues(local_url: str) -> None:
    with openai.OpenAI(
        base_url=local_url + "/v1", api_key="unused", max_retries=0, timeout=300
    ) as sdk:
        _embedded(sdk)


def _embedded(sdk: openai.OpenAI) -> None:
    model = "local:smollm2-135m-instruct"
    # reasoning: the embedded model has none, so it is left out rather than refused.
    first = sdk.responses.create(
        model=model,
        input="Say hello.",
        max_output_tokens=8,
        temperature=0,
        reasoning={"effort": "low"},
    )
    assert first.output_text.strip() and first.status in ("completed", "incomplete")
    assert first.usage is not None and first.usage.input_tokens > 0
    with sdk.responses.stream(
        model=model, input="And again.", max_output_tokens=8, previous_response_id=first.id
    ) as stream:
        events = list(stream)
    # A cap of 8 tokens usually cuts the answer: the stream then ends with
    # response.incomplete, which the SDK's get_final_response does not take (as with OpenAI).
    assert events[0].type == "response.created"
    last = events[-1]
    assert last.type in ("response.completed", "response.incomplete")
    final = last.response  # type: ignore[union-attr]
    assert final.output_text.strip()
    items = sdk.responses.input_items.list(final.id, order="asc")
    assert [i.type for i in items.data] == ["message", "message", "message"]


# --- the fake, proven by the SDK; the description ----------------------------------------------


def test_the_responses_fake_is_read_by_the_official_sdk(
    responses_server: tuple[FakeOpenAIResponses, str], oai: FakeOpenAIResponses
) -> None:
    with openai.OpenAI(base_url=responses_server[1] + "/v1", api_key="k", max_retries=0) as sdk:
        _read_by_the_sdk(sdk, responses_server[1], oai)


def _read_by_the_sdk(sdk: openai.OpenAI, url: str, oai: FakeOpenAIResponses) -> None:
    oai.then(Reply(text="Hello there."), Reply(), Reply(tool_call=("get_weather", ARGS)))
    whole = sdk.responses.create(model="gpt-fake", input="hi")
    assert whole.output_text == "Hello there."
    raw = httpx.post(url + "/v1/responses", json={"model": "m", "input": "x"})
    _valid("Response", raw.json())
    with sdk.responses.stream(model="gpt-fake", input="hi", tools=TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.output[0].type == "function_call"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    for event in events:
        _valid_event(event.model_dump(mode="json", exclude_unset=True))


def test_openapi_lists_the_routes(gw: Gw) -> None:
    doc = httpx.get(gw.url + "/openapi.json").json()
    assert "post" in doc["paths"]["/v1/responses"]
    assert {"get", "delete"} <= set(doc["paths"]["/v1/responses/{response_id}"])
    assert "get" in doc["paths"]["/v1/responses/{response_id}/input_items"]


def test_a_codex_shaped_request_is_served(gw: Gw, fake: FakeOpenAI) -> None:
    """What Codex sends: its own settings for OpenAI's service (ignored), an earlier turn's
    reasoning item (left out), instructions and a function tool."""
    fake.then(Reply(text="Done."))
    r = gw.post(
        {
            "model": "chain",
            "instructions": "You are a coding agent.",
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "ls"}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "ok"}],
                },
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "go"}],
                },
            ],
            "tools": TOOLS,
            "tool_choice": "auto",
            "parallel_tool_calls": False,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "store": False,
            "stream": False,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "session-1",
            "text": {"verbosity": "low"},
        }
    )
    assert r.status_code == 200, r.text
    _valid("Response", r.json())
    sent = fake.calls[-1]["body"]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["parallel_tool_calls"] is False
    assert not {"include", "prompt_cache_key", "text", "store"} & set(sent)


def test_a_backends_reasoning_is_a_reasoning_item(gw: Gw, fake: FakeOpenAI) -> None:
    message = {"role": "assistant", "content": "42.", "reasoning_content": "Six times seven."}
    completion = {
        "id": "chatcmpl-r",
        "object": "chat.completion",
        "created": 1,
        "model": "model-a",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    fake.then(Raw(json.dumps(completion).encode()))
    r = gw.post({"model": "chain", "input": "6 x 7?"})
    body = r.json()
    _valid("Response", body)
    assert [item["type"] for item in body["output"]] == ["reasoning", "message"]
    assert body["output"][0]["content"] == [{"type": "reasoning_text", "text": "Six times seven."}]
    # Continuing the conversation leaves the reasoning out of what the backend gets.
    gw.post({"model": "chain", "input": "And 6 x 8?", "previous_response_id": body["id"]})
    assert [m["role"] for m in fake.calls[-1]["body"]["messages"]] == ["user", "assistant", "user"]
