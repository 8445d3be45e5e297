"""The ``cascade`` strategy on scripted fake upstreams: the cheapest deployment first, its answer
verified (valid JSON, a schema, a regular expression, a length, a judge route's yes or no), the
next one when it fails, the last one returned unchecked; streams held until verified; every
step's cost and latency in the request log, billed to the key and in ``x-turnout-cost-usd``;
judges that go round in a loop refused at load."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from turnout.config import CascadeConfig
from turnout.errors import BadRequestError, ConfigError, VerificationFailedError
from turnout.gateway import Gateway
from turnout.routing import Verifier

from .conftest import MASTER_KEY, make_config
from .fakes.openai_upstream import Cut, Fail, FakeOpenAI, Reply

ASK = [{"role": "user", "content": "Give me a JSON object with a field ok."}]
PRICES = [
    {"id": "primary:model-a", "input_price": 10.0, "output_price": 40.0},  # cheap
    {"id": "backup:model-b", "input_price": 200.0, "output_price": 800.0},  # dear
    {"id": "backup:model-c", "input_price": 400.0, "output_price": 1600.0},  # dearest
    {"id": "backup:model-j", "input_price": 100.0, "output_price": 100.0},  # the judge
]
# Every fake reply: 11 prompt and 7 completion tokens. (Key spend is shown to 6 decimals.)
CHEAP = (11 * 10.0 + 7 * 40.0) / 1e6
DEAR = (11 * 200.0 + 7 * 800.0) / 1e6
JUDGE = (11 * 100.0 + 7 * 100.0) / 1e6
DEAREST = (11 * 400.0 + 7 * 1600.0) / 1e6
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def cascade_route(name: str = "json", *, steps: int = 3, **settings: Any) -> dict[str, Any]:
    # Listed out of price order: the cascade orders by price (a, b, c), not by the route's.
    deployments = ["backup:model-b", "primary:model-a", "backup:model-c"][:steps]
    return {
        "name": name,
        "strategy": "cascade",
        "deployments": deployments,
        "cascade": settings or {"json": True},
    }


def config(fake_url: str, *routes: dict[str, Any], **extra: Any) -> Any:
    return make_config(
        fake_url,
        models=PRICES,
        routes=[
            *(routes or [cascade_route()]),
            {"name": "judge", "deployments": ["backup:model-j"]},
        ],
        **extra,
    )


async def ask(gw: Gateway, stream: bool, model: str = "json") -> Any:
    """The answer and what the walk says of it (a stream collected whole)."""
    if not stream:
        return await gw.chat(model=model, messages=ASK)
    s = await gw.stream(model=model, messages=ASK)
    try:
        result = await s.collect()
    finally:
        await s.aclose()
    return result


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_escalates_on_invalid_json_and_stops_on_valid_json(
    fake: FakeOpenAI, fake_url: str, stream: bool
) -> None:
    fake.then(Reply(text="Sure! Here it is: ok"), Reply(text='{"ok": true}'))
    async with Gateway(config(fake_url)) as gw:
        result = await ask(gw, stream)
        assert [c["body"]["model"] for c in fake.calls] == ["model-a", "model-b"]
        assert result.text == '{"ok": true}' and result.deployment == "backup:model-b"
        assert result.cascade == "verified; step=2/3" and result.attempts == 2
        (rejected,) = result.failed_attempts
        assert rejected.deployment == "primary:model-a"
        assert isinstance(rejected.error, VerificationFailedError)
        assert rejected.error.message.startswith("not valid JSON")
        assert rejected.error.cost == pytest.approx(CHEAP)  # an answer: it is billed
        assert rejected.error.usage.completion_tokens == 7

        fake.reset()
        fake.then(Reply(text=' {"ok": true}\n'))
        result = await ask(gw, stream)
        assert [c["body"]["model"] for c in fake.calls] == ["model-a"]  # no escalation
        assert result.deployment == "primary:model-a" and result.text == ' {"ok": true}\n'
        assert result.cascade == "verified; step=1/3"
        assert result.failed_attempts == [] and result.cost == pytest.approx(CHEAP)
        assert result.request_cost == pytest.approx(CHEAP)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_the_last_step_is_returned_unchecked(
    fake: FakeOpenAI, fake_url: str, stream: bool
) -> None:
    fake.then(Reply(text="no json here"), Reply(text="nor here"), Reply(text="still none"))
    async with Gateway(config(fake_url)) as gw:
        result = await ask(gw, stream)
    assert result.text == "still none" and result.deployment == "backup:model-c"
    assert result.cascade == "unverified; step=3/3; last step, not checked"
    rejected = result.failed_attempts  # the returned answer is not a failed attempt
    assert [a.deployment for a in rejected] == ["primary:model-a", "backup:model-b"]
    assert all(isinstance(a.error, VerificationFailedError) for a in rejected)
    assert result.request_cost == pytest.approx(CHEAP + DEAR + DEAREST)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_no_judge_is_asked_about_the_last_step(
    fake: FakeOpenAI, fake_url: str, stream: bool
) -> None:
    """The last answer is returned whatever a judge says: asking would only cost a call."""
    route = cascade_route("judged", steps=2, judge={"route": "judge"})
    fake.then(Reply(text="Paris."), Reply(text="No"), Reply(text="Lyon."), Reply(text="yes"))
    async with Gateway(config(fake_url, route)) as gw:
        result = await ask(gw, stream, "judged")
    assert [c["body"]["model"] for c in fake.calls] == ["model-a", "model-j", "model-b"]
    assert result.text == "Lyon." and result.deployment == "backup:model-b"
    assert result.cascade == "unverified; step=2/2; last step, not checked"
    assert [j.deployment for j in result.judged] == ["backup:model-j"]  # the first step's
    assert result.request_cost == pytest.approx(CHEAP + JUDGE + DEAR)

    # A cascade that is down to one deployment checks nothing.
    fake.reset()
    fake.then(Reply(text="Lyon."))
    alone = cascade_route("judged", steps=1, judge={"route": "judge"})
    async with Gateway(config(fake_url, alone)) as gw:
        result = await ask(gw, stream, "judged")
    assert [c["body"]["model"] for c in fake.calls] == ["model-b"]
    assert result.cascade == "unverified; step=1/1; last step, not checked"


async def test_a_retry_round_to_come_is_a_step_after(fake: FakeOpenAI, fake_url: str) -> None:
    """The last deployment is not the last step while one before it waits to be retried:
    its answer is checked, and the retried one, now last, is not."""
    fake.then(Fail(503), Reply(text="nope"), Reply(text="retried"))
    async with Gateway(config(fake_url, cascade_route(steps=2), retry={"retries": 1})) as gw:
        result = await gw.chat(model="json", messages=ASK)
    assert [c["body"]["model"] for c in fake.calls] == ["model-a", "model-b", "model-a"]
    assert result.text == "retried" and result.deployment == "primary:model-a"
    assert result.cascade == "unverified; step=1/2; last step, not checked"
    assert [type(a.error).__name__ for a in result.failed_attempts] == [
        "OverloadedError",
        "VerificationFailedError",
    ]


async def test_an_upstream_failure_after_a_rejected_answer_returns_that_answer(
    fake: FakeOpenAI, fake_url: str
) -> None:
    fake.then(Reply(text="almost json"), Fail(500, "boom"), Fail(500, "boom"))
    async with Gateway(config(fake_url, retry={"retries": 0})) as gw:
        result = await gw.chat(model="json", messages=ASK)
    assert result.text == "almost json" and result.deployment == "primary:model-a"
    assert result.cascade is not None
    assert result.cascade.startswith("unverified; step=1/3; not valid JSON")
    failed = result.failed_attempts
    assert [a.deployment for a in failed] == ["backup:model-b", "backup:model-c"]
    assert {a.error.status_code for a in failed} == {502}
    assert result.request_cost == pytest.approx(CHEAP)  # failed calls answered nothing


async def test_a_held_stream_that_breaks_mid_way_fails_over(
    fake: FakeOpenAI, fake_url: str
) -> None:
    # An ordinary stream cannot fail over once it has started; a held one has sent nothing.
    fake.then(Cut(keep=2), Reply(text='{"ok": 1}'))
    async with Gateway(config(fake_url)) as gw:
        result = await ask(gw, True)
    assert result.text == '{"ok": 1}' and result.cascade == "verified; step=2/3"
    (broken,) = result.failed_attempts
    assert broken.deployment == "primary:model-a"
    assert type(broken.error).__name__ == "UpstreamConnectionError"


async def test_judge_route_says_no_then_yes(fake: FakeOpenAI, fake_url: str) -> None:
    route = cascade_route("judged", min_length=3, judge={"route": "judge"})
    fake.then(Reply(text="Paris."), Reply(text="No"), Reply(text="Lyon."), Reply(text="Yes."))
    async with Gateway(config(fake_url, route)) as gw:
        result = await gw.chat(model="judged", messages=ASK)
    assert [c["body"]["model"] for c in fake.calls] == ["model-a", "model-j", "model-b", "model-j"]
    question = fake.calls[1]["body"]["messages"][0]["content"]
    assert "Paris." in question and "a JSON object with a field ok" in question
    assert result.text == "Lyon." and result.cascade == "verified; step=2/3"
    assert result.failed_attempts[0].error.message == "judge judge said: No"
    assert [j.deployment for j in result.judged] == ["backup:model-j"] * 2
    assert sum(j.cost for j in result.judged) == pytest.approx(2 * JUDGE)
    assert result.request_cost == pytest.approx(CHEAP + DEAR + 2 * JUDGE)


async def test_a_judge_that_fails_is_no_pass(fake: FakeOpenAI, fake_url: str) -> None:
    route = cascade_route("judged", judge={"route": "judge"})
    fake.then(Reply(text="Paris."), Fail(400, "bad"), Reply(text="Lyon."), Reply(text="yes"))
    async with Gateway(config(fake_url, route)) as gw:
        result = await gw.chat(model="judged", messages=ASK)
    assert result.text == "Lyon."
    assert result.failed_attempts[0].error.message == "judge judge failed: BadRequestError"


def test_local_checks() -> None:
    def why(text: str, **settings: Any) -> str | None:
        return Verifier(CascadeConfig.model_validate(settings)).local_failure(text)

    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    assert why('{"ok": true}', schema=schema) is None
    assert why('{"ok": "yes"}', schema=schema) == (
        "not valid against the schema at ok: 'yes' is not of type 'boolean'"
    )
    assert why("{}", schema=schema) == (
        "not valid against the schema at the answer: 'ok' is a required property"
    )
    assert (why("ok", schema=schema) or "").startswith("not valid JSON")
    assert why("Order #12345 shipped", regex=r"#\d{5}\b") is None
    assert why("Order shipped", regex=r"#\d{5}\b") == r"does not match #\d{5}\b"
    assert why("  short  ", min_length=6) == "5 characters, fewer than 6"
    assert why("long enough", min_length=6) is None
    # every check configured must pass, in order
    assert why('"x"', json=True, min_length=5) == "3 characters, fewer than 5"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"cascade": None}, "routes[json].cascade: the cascade strategy needs a verifier"),
        ({"cascade": {"judge": {"route": "nowhere"}}}, "'nowhere' is not another route"),
        ({"cascade": {"judge": {"route": "json"}}}, "'json' is not another route"),
        ({"cascade": {"schema": {"type": "nonsense"}}}, "not a valid JSON Schema"),
    ],
)
def test_config_errors_name_the_route_and_key(
    fake_url: str, route: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Gateway(config(fake_url, {**cascade_route(), **route}))
    assert message in info.value.message


def test_verifier_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="at least one check"):
        CascadeConfig.model_validate({})
    with pytest.raises(ValueError, match="not a regular expression"):
        CascadeConfig.model_validate({"regex": "(unclosed"})
    with pytest.raises(ValueError, match=r"must contain \{answer\}"):
        CascadeConfig.model_validate({"judge": {"route": "j", "prompt": "Is it good?"}})


async def test_asking_for_cascade_on_a_route_without_verifier_is_a_400(
    fake_url: str,
) -> None:
    async with Gateway(config(fake_url)) as gw:
        with pytest.raises(BadRequestError, match="needs a verifier on route 'judge'"):
            await gw.chat(model="judge", messages=ASK, turnout={"strategy": "cascade"})


# --- over HTTP: header, request log, key spend -------------------------------------------------


@pytest.fixture
def url(serve: Any, fake_url: str, tmp_path: Path) -> str:
    judged = cascade_route("judged", json=True, judge={"route": "judge"})
    return serve(
        config(
            fake_url,
            cascade_route(),
            judged,
            server={"master_key": MASTER_KEY, "preload_local": False},
            database_url=f"sqlite:///{tmp_path / 'log.db'}",
            request_log={"flush_interval": 0.02},
        )
    )


def _logged(http: httpx.Client, request_id: str, records: int) -> dict[str, Any]:
    """The request's record with its other calls, once all have been written."""
    deadline = time.monotonic() + 15
    while True:
        listed = http.get("/api/requests", params={"limit": 50}).json()["data"]
        mine = [r for r in listed if r["request_id"] == request_id]
        if mine:
            detail: dict[str, Any] = http.get(f"/api/requests/{mine[0]['id']}").json()
            if len(detail["failed_attempts"]) + 1 >= records:
                return detail
        assert time.monotonic() < deadline, f"request {request_id} not logged in full"
        time.sleep(0.05)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_every_step_and_judge_call_is_logged_and_billed(
    url: str, fake: FakeOpenAI, stream: bool
) -> None:
    fake.then(
        Reply(text='{"ok": false'),  # cheap: not JSON, no judge asked
        Reply(text='{"ok": true}'),  # dear: JSON...
        Reply(text="yes"),  # ...and the judge agrees
    )
    with httpx.Client(base_url=url, headers=AUTH, timeout=15) as http:
        key = http.post("/api/keys", json={"name": "cascade"}).json()
        sdk = openai.OpenAI(base_url=url + "/v1", api_key=key["key"], max_retries=0)
        if stream:
            with sdk.chat.completions.with_streaming_response.create(
                model="judged", messages=ASK, stream=True, stream_options={"include_usage": True}
            ) as raw:
                headers = raw.headers
                chunks = list(raw.parse())
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = chunks[-1].usage
            assert usage is not None and usage.model_extra is not None
            cost = usage.model_extra["cost_usd"]  # a stream's cost is known at its end
        else:
            raw = sdk.chat.completions.with_raw_response.create(model="judged", messages=ASK)
            headers, text = raw.headers, raw.parse().choices[0].message.content
            cost = float(headers["x-turnout-cost-usd"])
        assert text == '{"ok": true}'
        assert headers["x-turnout-cascade"] == "verified; step=2/3"
        assert headers["x-turnout-strategy"] == "cascade"
        assert headers["x-turnout-deployment"] == "backup:model-b"
        # The whole request's cost: the rejected step, the judge call and the answer.
        assert cost == pytest.approx(CHEAP + DEAR + JUDGE)

        detail = _logged(http, headers["x-request-id"], 3)
        logged = detail["cost"] + sum(a["cost"] for a in detail["failed_attempts"])
        assert logged == pytest.approx(cost)  # what the request log sums
        assert detail["deployment"] == "backup:model-b" and detail["cost"] == pytest.approx(DEAR)
        assert detail["stream"] is stream
        step, judge = detail["failed_attempts"]
        assert step["deployment"] == "primary:model-a" and step["status"] == 422
        assert step["error"] == "VerificationFailedError"
        assert step["error_message"].startswith("not valid JSON")
        assert step["cost"] == pytest.approx(CHEAP) and step["output_tokens"] == 7
        assert step["latency"] > 0
        assert judge["deployment"] == "backup:model-j" and judge["strategy"] == "judge"
        assert judge["status"] == 200 and judge["cost"] == pytest.approx(JUDGE)
        assert judge["latency"] > 0

        def spent() -> float:
            total: float = http.get(f"/api/keys/{key['id']}").json()["spend"]["total"]
            return total

        deadline = time.monotonic() + 15
        while spent() < CHEAP + DEAR + JUDGE - 1e-12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spent() == pytest.approx(CHEAP + DEAR + JUDGE)  # every call, rejected or not

        metrics = http.get("/metrics").text
        for (provider, model), usd in {
            ("primary", "model-a"): CHEAP,
            ("backup", "model-b"): DEAR,
            ("backup", "model-j"): JUDGE,
        }.items():
            line = f'turnout_spend_usd_total{{model="{model}",provider="{provider}"}} '
            (value,) = [ln[len(line) :] for ln in metrics.splitlines() if ln.startswith(line)]
            assert float(value) == pytest.approx(usd)


def test_routing_status_shows_the_cascade(url: str) -> None:
    routes = httpx.get(url + "/api/routing", headers=AUTH).json()["routes"]
    by = {r["name"]: r for r in routes}
    assert by["json"]["strategy"] == "cascade" and by["json"]["cascade"] == ["json"]
    assert by["judged"]["cascade"] == ["json", "judge judge"]
    assert "cascade" not in by["judge"]


def test_the_strategy_can_be_chosen_per_request_where_a_verifier_is_set(
    url: str, fake: FakeOpenAI
) -> None:
    fake.then(Reply(text='{"ok": true}'))
    r = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "json", "messages": ASK},
        headers={**AUTH, "x-turnout-strategy": "priority"},
    )
    assert r.status_code == 200 and "x-turnout-cascade" not in r.headers  # no verifying
    assert fake.calls[-1]["body"]["model"] == "model-b"  # the route's order
    refused = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "judge", "messages": ASK},
        headers={**AUTH, "x-turnout-strategy": "cascade"},
    )
    assert refused.status_code == 400
    assert "needs a verifier" in refused.json()["error"]["message"]


def test_an_anthropic_stream_is_held_and_replayed_too(url: str, fake: FakeOpenAI) -> None:
    import anthropic

    fake.then(Reply(text="nope"), Reply(text='{"ok": true}'))
    sdk = anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0)
    with sdk.messages.stream(model="json", max_tokens=32, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        headers = stream.response.headers
    assert text == '{"ok": true}'
    assert headers["x-turnout-cascade"] == "verified; step=2/3"


# --- judges in turn ----------------------------------------------------------------------------


def test_judges_that_go_round_in_a_loop_are_refused_at_load(fake_url: str) -> None:
    loop = [
        cascade_route("a", judge={"route": "b"}),
        cascade_route("b", judge={"route": "c"}),
        cascade_route("c", judge={"route": "a"}),
        cascade_route("d", judge={"route": "a"}),  # leads into the loop, is not in it
    ]
    with pytest.raises(ConfigError) as info:
        Gateway(config(fake_url, *loop))
    message = info.value.message
    assert "routes[a].cascade.judge.route: the judges go round in a loop" in message
    assert "a -> judge b -> judge c -> judge a" in message
    with pytest.raises(ConfigError) as info:  # found from a route that leads into it
        Gateway(config(fake_url, *loop[::-1]))
    assert "routes[d].cascade.judge.route" in info.value.message
    assert "a -> judge b -> judge c -> judge a" in info.value.message


def test_a_judge_may_be_a_cascade_judged_in_turn(
    serve: Any, fake: FakeOpenAI, fake_url: str, tmp_path: Path
) -> None:
    """A chain without a loop is allowed: the judge route is a cascade whose first step is
    judged by a third route. Every call of the chain is a record of the request, billed to
    the key, and in its ``x-turnout-cost-usd``."""
    judged = cascade_route("judged", steps=2, json=True, judge={"route": "strict"})
    strict = {
        "name": "strict",
        "strategy": "cascade",
        "deployments": ["backup:model-c", "backup:model-j"],
        "cascade": {"regex": "^(yes|no)", "judge": {"route": "judge"}},
    }
    url = serve(
        config(
            fake_url,
            judged,
            strict,
            server={"master_key": MASTER_KEY, "preload_local": False},
            database_url=f"sqlite:///{tmp_path / 'log.db'}",
            request_log={"flush_interval": 0.02},
        )
    )
    fake.then(
        Reply(text='{"ok": 1}'),  # judged, step 1 (model-a): JSON, so strict is asked
        Reply(text="yes"),  # strict, step 1 (model-j): matches, so judge is asked
        Reply(text="no"),  # judge: strict's step 1 is rejected
        Reply(text="no"),  # strict, step 2 (model-c), its last: unchecked; judged's step 1 fails
        Reply(text='{"ok": 2}'),  # judged, step 2 (model-b), its last: unchecked
    )
    whole = CHEAP + JUDGE + JUDGE + DEAREST + DEAR
    with httpx.Client(base_url=url, headers=AUTH, timeout=15) as http:
        key = http.post("/api/keys", json={"name": "chain"}).json()
        sdk = openai.OpenAI(base_url=url + "/v1", api_key=key["key"], max_retries=0)
        raw = sdk.chat.completions.with_raw_response.create(model="judged", messages=ASK)
        assert raw.parse().choices[0].message.content == '{"ok": 2}'
        calls = [c["body"]["model"] for c in fake.calls]
        assert calls == ["model-a", "model-j", "model-j", "model-c", "model-b"]
        assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(whole)

        detail = _logged(http, raw.headers["x-request-id"], 5)
        others = detail["failed_attempts"]
        assert [(a["deployment"], a["strategy"], a["status"]) for a in others] == [
            ("primary:model-a", "cascade", 422),  # judged's step 1, rejected by strict
            ("backup:model-j", "judge", 422),  # strict's step 1, rejected by judge
            ("backup:model-j", "judge", 200),  # judge's verdict on it
            ("backup:model-c", "judge", 200),  # strict's verdict
        ]
        assert [a["attempt"] for a in others] == [1, 2, 3, 4]
        assert detail["cost"] + sum(a["cost"] for a in others) == pytest.approx(whole)

        deadline = time.monotonic() + 15
        spent = 0.0
        while time.monotonic() < deadline:
            spent = http.get(f"/api/keys/{key['id']}").json()["spend"]["total"]
            if spent >= whole - 1e-9:
                break
            time.sleep(0.05)
        assert spent == pytest.approx(whole)
