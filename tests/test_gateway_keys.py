"""Gateway keys end to end on one server (SQLite): the admin API, authentication by key,
allow-lists, requests- and tokens-per-minute limits, budgets, budget alerts and the request
log, driven by the official openai SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from turnout.gateway import Gateway
from turnout.server import create_app

from .conftest import MASTER_KEY, make_config
from .fakes.openai_upstream import Fail, FakeOpenAI, Reply
from .fakes.servers import AiohttpThread, UvicornThread

HI = [{"role": "user", "content": "hi"}]
# 11 prompt + 7 completion tokens per fake reply at $1 / $2 per million: $0.000025 a request.
PRICED = {"id": "primary:model-a", "input_price": 1.0, "output_price": 2.0}
COST = (11 * 1.0 + 7 * 2.0) / 1_000_000


class Hooks:
    """A webhook receiver for budget alerts."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/hook", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        return web.Response(status=204)


@pytest.fixture
def hooks() -> Iterator[tuple[Hooks, str]]:
    h = Hooks()
    server = AiohttpThread(h.app).start()
    yield h, server.url + "/hook"
    server.stop()


class Gw:
    def __init__(self, url: str, app: Any, db_path: Path) -> None:
        self.url = url
        self.app = app
        self.db_path = db_path
        self._clients: list[openai.OpenAI] = []
        self.admin = httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
        )

    @property
    def accounting(self) -> Any:
        return self.app.state.accounting

    def create(self, **spec: Any) -> dict[str, Any]:
        r = self.admin.post("/api/keys", json=spec)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def sdk(self, key: str) -> openai.OpenAI:
        client = openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)
        self._clients.append(client)
        return client

    def close(self) -> None:
        self.admin.close()
        for client in self._clients:
            client.close()

    def chat(self, key: str, model: str = "chain", **kw: Any) -> httpx.Response:
        return httpx.post(
            self.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": model, "messages": HI, **kw},
            timeout=10,
        )


@pytest.fixture
def gw(tmp_path: Path, fake_url: str, hooks: tuple[Hooks, str]) -> Iterator[Gw]:
    db_path = tmp_path / "gw.db"
    config = make_config(
        fake_url,
        server={"master_key": MASTER_KEY, "preload_local": False},
        database_url=f"sqlite:///{db_path}",
        request_log={"flush_interval": 0.02},
        models=[PRICED],
        alerts={"thresholds": [0.5, 1.0], "webhook_url": hooks[1]},
    )
    app = create_app(Gateway(config))
    server = UvicornThread(app).start()
    gateway = Gw(server.url, app, db_path)
    yield gateway
    gateway.close()
    server.stop()


def _check(schema: str, value: Any) -> None:
    """Validate a response against the served OpenAPI description's schema."""
    from jsonschema import Draft202012Validator

    from turnout.server.openapi import openapi_spec

    components = openapi_spec()["components"]
    Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": components}
    ).validate(value)


def test_admin_api_creates_lists_updates_and_revokes(gw: Gw, fake: FakeOpenAI) -> None:
    created = gw.create(name="team-a", rpm=100, budget={"daily": 5}, models=["chain"])
    _check("GatewayKey", created)
    secret = created["key"]
    assert secret.startswith("sk-tn-") and len(secret) > 40
    assert created["key_hint"].endswith(secret[-4:]) and secret not in created["key_hint"]
    assert created["budget"] == {"daily": 5.0, "monthly": None, "total": None}

    _check("GatewayKeyList", gw.admin.get("/api/keys").json())
    listed = gw.admin.get("/api/keys").json()["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and secret not in str(listed)
    # Only the hash is stored: the secret appears nowhere in the database file.
    assert secret.encode() not in gw.db_path.read_bytes()
    with sqlite3.connect(gw.db_path) as conn:
        (stored,) = conn.execute("SELECT secret_hash FROM gateway_keys").fetchone()
    assert len(stored) == 64 and stored != secret

    out = gw.sdk(secret).chat.completions.create(model="chain", messages=HI)
    assert out.choices[0].message.content

    patched = gw.admin.patch(f"/api/keys/{created['id']}", json={"rpm": None, "tpm": 500})
    assert patched.status_code == 200
    assert patched.json()["rpm"] is None and patched.json()["tpm"] == 500
    assert patched.json()["budget"]["daily"] == 5.0  # untouched fields stay
    _check("GatewayKey", patched.json())

    assert gw.admin.delete(f"/api/keys/{created['id']}").json()["revoked"] is True
    with pytest.raises(openai.AuthenticationError) as info:
        gw.sdk(secret).chat.completions.create(model="chain", messages=HI)
    assert info.value.body["code"] == "key_revoked"  # type: ignore[index]
    assert gw.admin.get("/api/keys/key_nope").status_code == 404


def test_admin_api_needs_the_master_key(gw: Gw) -> None:
    secret = gw.create(name="user")["key"]
    assert httpx.get(gw.url + "/api/keys").status_code == 401
    r = httpx.get(gw.url + "/api/keys", headers={"authorization": f"Bearer {secret}"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    bad = gw.admin.post("/api/keys", json={"rpm": 0})
    assert bad.status_code == 400 and "rpm" in bad.json()["error"]["message"]
    assert gw.admin.post("/api/keys", json={"nope": 1}).status_code == 400


def test_unknown_key_refused_and_allow_list_enforced(gw: Gw, fake: FakeOpenAI) -> None:
    assert gw.chat("sk-tn-not-a-real-key").status_code == 401
    secret = gw.create(models=["single", "primary:*"])["key"]
    assert gw.chat(secret, "single").status_code == 200
    assert gw.chat(secret, "primary:model-z").status_code == 200
    denied = gw.chat(secret, "chain")
    assert denied.status_code == 403
    assert "may not use 'chain'" in denied.json()["error"]["message"]


def test_requests_per_minute_limit_answers_429_with_reset_headers(gw: Gw, fake: FakeOpenAI) -> None:
    secret = gw.create(rpm=2)["key"]
    first = gw.chat(secret)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert gw.chat(secret).headers["x-ratelimit-remaining-requests"] == "0"
    refused = gw.chat(secret)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(openai.RateLimitError):
        gw.sdk(secret).chat.completions.create(model="chain", messages=HI)
    assert len(fake.calls) == 2  # refused requests never reached the upstream
    metrics = gw.admin.get("/metrics").text
    assert 'turnout_key_rejections_total{reason="rpm"} 2.0' in metrics


def test_tokens_per_minute_limit_counts_real_usage(gw: Gw, fake: FakeOpenAI) -> None:
    secret = gw.create(tpm=30)["key"]
    assert gw.chat(secret).headers["x-ratelimit-remaining-tokens"] == "30"
    second = gw.chat(secret)  # 18 tokens used so far: still under 30
    assert second.status_code == 200 and second.headers["x-ratelimit-remaining-tokens"] == "12"
    refused = gw.chat(secret)  # 36 used
    assert refused.status_code == 429
    assert "30 tokens per minute" in refused.json()["error"]["message"]


def test_budget_refuses_with_402_and_alerts_once_per_threshold(
    gw: Gw, fake: FakeOpenAI, hooks: tuple[Hooks, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="turnout.alerts")
    key = gw.create(name="small", budget={"total": COST * 3})
    for _ in range(3):
        assert gw.chat(key["key"]).status_code == 200
    refused = gw.chat(key["key"])
    assert refused.status_code == 402
    body = refused.json()["error"]
    assert body["type"] == "insufficient_quota" and body["code"] == "budget_exceeded"
    assert refused.headers["x-turnout-budget-period"] == "total"
    assert float(refused.headers["x-turnout-budget-spent"]) == pytest.approx(COST * 3)
    with pytest.raises(openai.APIStatusError) as info:
        gw.sdk(key["key"]).chat.completions.create(model="chain", messages=HI)
    assert info.value.status_code == 402

    shown = gw.admin.get(f"/api/keys/{key['id']}").json()
    assert shown["spend"]["total"] == pytest.approx(COST * 3)
    h = hooks[0]
    _wait(lambda: len(h.posts) == 2)
    assert [p["threshold"] for p in h.posts] == [0.5, 1.0]
    assert {p["key_id"] for p in h.posts} == {key["id"]}
    events = [r for r in caplog.records if r.name == "turnout.alerts"]
    assert [r.alert["threshold"] for r in events] == [0.5, 1.0]  # type: ignore[attr-defined]


async def test_fifty_concurrent_requests_overspend_only_by_what_was_in_flight(
    gw: Gw, fake: FakeOpenAI
) -> None:
    budget_requests = 20
    key = gw.create(budget={"daily": COST * budget_requests})
    for _ in range(400):
        fake.then(Reply(delay=0.02))
    outcomes: list[int] = []
    async with httpx.AsyncClient(
        base_url=gw.url, headers={"authorization": f"Bearer {key['key']}"}, timeout=30
    ) as client:

        async def worker() -> None:
            for _ in range(8):
                r = await client.post(
                    "/v1/chat/completions", json={"model": "chain", "messages": HI}
                )
                outcomes.append(r.status_code)
                if r.status_code != 200:
                    return

        await asyncio.gather(*(worker() for _ in range(50)))
    ok = outcomes.count(200)
    assert set(outcomes) == {200, 402}
    assert outcomes.count(402) == 50  # every worker was eventually refused
    # Admitted while spend was under budget: at least the budget's worth, and at most that
    # plus one request per concurrent worker (those in flight when it was crossed).
    assert budget_requests <= ok < budget_requests + 50
    assert await _flushed(gw)
    records = gw.accounting.db.records_since(0, ["ts", "latency", "status", "cost"])
    done = sorted((r[0] + r[1], r[3]) for r in records if r[2] == 200)
    spent, crossed_at = 0.0, None
    for finished, cost in done:
        spent += cost
        if spent >= COST * budget_requests - 1e-12:
            crossed_at = finished
            break
    assert crossed_at is not None
    late = [r for r in records if r[2] == 200 and r[0] > crossed_at + 0.25]
    assert late == []  # nothing was admitted after the budget was crossed


async def _flushed(gw: Gw) -> bool:
    log = gw.accounting.request_log
    deadline = time.monotonic() + 10
    while log.depth and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not log.depth


def test_every_request_is_logged_with_key_cost_and_timings(gw: Gw, fake: FakeOpenAI) -> None:
    secret = gw.create(name="logged")["key"]
    client = gw.sdk(secret)
    client.chat.completions.create(model="chain", messages=HI)
    list(
        client.chat.completions.create(
            model="chain", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert gw.chat(secret, "nope:missing-model").status_code in (404, 502)
    _wait(lambda: gw.accounting.request_log.written >= 3)
    with sqlite3.connect(gw.db_path) as conn:
        rows = conn.execute(
            "SELECT key_id, route, provider, model, status, error, stream, attempts, ttft, "
            "latency, input_tokens, output_tokens, cost FROM request_log ORDER BY id"
        ).fetchall()
    key_id = gw.admin.get("/api/keys").json()["data"][0]["id"]
    (k1, r1, p1, m1, s1, e1, st1, a1, t1, l1, i1, o1, c1) = rows[0]
    assert (k1, r1, p1, m1, s1, e1, st1, a1) == (
        key_id,
        "chain",
        "primary",
        "model-a",
        200,
        None,
        0,
        1,
    )
    assert l1 > 0 and (i1, o1) == (11, 7) and c1 == pytest.approx(COST)
    with sqlite3.connect(gw.db_path) as conn:
        (strategy,) = conn.execute("SELECT strategy FROM request_log ORDER BY id").fetchone()
    assert strategy == "priority"  # the route's strategy, as x-turnout-strategy says
    streamed = rows[1]
    assert streamed[6] == 1 and streamed[8] is not None and streamed[8] <= streamed[9]
    assert streamed[12] == pytest.approx(COST)
    failed = rows[2]
    assert failed[4] >= 400 and failed[5] and failed[12] is None

    stats = gw.admin.get("/api/models/stats", params={"window": "1h"}).json()
    _check("ModelStats", stats)
    row = next(s for s in stats["data"] if s["model"] == "model-a")
    assert row["requests"] == 2 and row["success_rate"] == 1.0
    assert row["spend_usd"] == pytest.approx(2 * COST)
    assert row["latency_p50"] > 0 and row["ttft_p50"] is not None
    assert gw.admin.get("/api/models/stats", params={"window": "soon"}).status_code == 400


def _wait(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


# --- issue 10: bounded settings, unknown keys, what a restricted key sees ------------------

TOO_BIG = 9223372036854775808  # 2**63: past every database's integer


@pytest.mark.parametrize(
    "spec",
    [
        {"rpm": TOO_BIG},
        {"tpm": TOO_BIG},
        {"rpm": 2**31},  # PostgreSQL's INTEGER ends at 2**31 - 1
        {"budget": {"daily": 1e300}},
        {"budget": {"monthly": True}},
        {"rpm": "10"},
        {"rpm": True},
        {"models": ["x" * 300]},
    ],
)
def test_out_of_range_or_mistyped_settings_are_400(gw: Gw, spec: dict[str, Any]) -> None:
    created = gw.admin.post("/api/keys", json=spec)
    assert created.status_code == 400, created.text
    error = created.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"]
    assert error["param"].split(".")[0] in spec
    key_id = gw.create(name="patched")["id"]
    patched = gw.admin.patch(f"/api/keys/{key_id}", json=spec)
    assert patched.status_code == 400, patched.text
    assert gw.admin.get("/api/keys").status_code == 200  # nothing half-written


def test_the_largest_allowed_limits_are_stored(gw: Gw) -> None:
    made = gw.create(rpm=2**31 - 1, tpm=2**31 - 1, budget={"total": 1e12, "daily": 5})
    shown = gw.admin.get(f"/api/keys/{made['id']}").json()
    assert shown["rpm"] == 2**31 - 1 and shown["budget"]["total"] == 1e12


def test_patch_needs_a_body_and_unknown_ids_say_key_not_found(gw: Gw) -> None:
    key_id = gw.create(name="kept", rpm=5)["id"]
    empty = gw.admin.patch(f"/api/keys/{key_id}")
    assert empty.status_code == 400 and empty.json()["error"]["type"] == "invalid_request_error"
    assert gw.admin.get(f"/api/keys/{key_id}").json()["rpm"] == 5
    for method in ("GET", "PATCH", "DELETE"):
        r = gw.admin.request(method, "/api/keys/key_nope", json={"rpm": 1})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "key_not_found"


def test_a_restricted_key_sees_only_its_models_and_routes(gw: Gw, fake: FakeOpenAI) -> None:
    secret = gw.create(models=["single"])["key"]
    fake.then(Fail(500, "boom"), Reply(text="a"), Reply(text="b"))
    assert gw.chat(MASTER_KEY, "chain").status_code == 200  # stats for both deployments
    assert gw.chat(secret, "single").status_code == 200
    sees = {m.id for m in gw.sdk(secret).models.list()}
    assert sees == {"single"}
    everything = {m.id for m in gw.sdk(MASTER_KEY).models.list()}
    assert {"single", "chain"} <= everything and len(everything) > 2
    auth = {"authorization": f"Bearer {secret}"}
    routing = httpx.get(gw.url + "/api/routing", headers=auth).json()
    assert [r["name"] for r in routing["routes"]] == ["single"]
    assert set(routing["deployments"]) == {"primary:model-a"}
    full = gw.admin.get("/api/routing").json()
    assert {r["name"] for r in full["routes"]} == {"chain", "single"}
    assert "backup:model-b" in full["deployments"]


def test_a_revoked_key_lists_nothing(gw: Gw) -> None:
    made = gw.create(name="gone")
    gw.admin.delete(f"/api/keys/{made['id']}")
    auth = {"authorization": f"Bearer {made['key']}"}
    for path in ("/v1/models", "/api/routing"):
        r = httpx.get(gw.url + path, headers=auth)
        assert r.status_code == 401 and r.json()["error"]["code"] == "key_revoked"
    metrics = gw.admin.get("/metrics").text
    assert 'turnout_key_rejections_total{reason="revoked"} 2.0' in metrics


@pytest.fixture
def open_gw(tmp_path: Path, fake_url: str) -> Iterator[Gw]:
    """A server without a master key, with a key database."""
    db_path = tmp_path / "open.db"
    config = make_config(
        fake_url,
        server={"preload_local": False},
        database_url=f"sqlite:///{db_path}",
    )
    app = create_app(Gateway(config))
    app.state.accounting.poll_interval = 0.05  # see keys changed by another process soon
    # Not waiting for /health/ready: a key looked up before the start-up migration is done
    # waits for it (tests/test_keys_at_startup.py), so clients may begin at once.
    server = UvicornThread(app).start()
    gateway = Gw(server.url, app, db_path)
    yield gateway
    gateway.close()
    server.stop()


def test_an_open_server_refuses_unknown_and_revoked_gateway_keys(
    open_gw: Gw, fake: FakeOpenAI
) -> None:
    fake.then(Reply(text="open"), Reply(text="open"), Reply(text="keyed"))
    # Open: no key, or a key that is no gateway key (an SDK needs some string), is served.
    assert (
        httpx.post(
            open_gw.url + "/v1/chat/completions", json={"model": "single", "messages": HI}
        ).status_code
        == 200
    )
    assert open_gw.chat("sk-anything", "single").status_code == 200
    # A gateway key it does not know (made against another database) is not.
    unknown = open_gw.chat("sk-tn-" + "A" * 43, "single")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        open_gw.sdk("sk-tn-made-elsewhere").models.list()
    # Keys are still made and revoked through the database (the CLI, here the service).
    made, secret = asyncio.run(_make_key(open_gw.db_path))
    assert open_gw.chat(secret, "single").status_code == 200
    asyncio.run(_revoke_key(open_gw.db_path, made))
    # Until the server's key cache sees the revocation a poll is still served (and reaches
    # the upstream); once refused, nothing more does.
    served = []
    _wait(lambda: served.append(open_gw.chat(secret, "single").status_code) or served[-1] == 401)
    assert set(served[:-1]) <= {200}
    # The refused keys never reached the upstream: two open calls, the key's, and its polls
    # served before the revocation was seen.
    assert len(fake.calls) == 3 + len(served) - 1


def _accounting_for(db_path: Path) -> Any:
    from turnout.accounting import Accounting
    from turnout.config import Config

    return Accounting(Config.model_validate({"database_url": f"sqlite:///{db_path}"}))


async def _make_key(db_path: Path) -> tuple[str, str]:
    from turnout.accounting import KeySpec

    accounting = _accounting_for(db_path)
    try:
        await asyncio.to_thread(accounting.db.upgrade)
        accounting.migrated.set()
        key, secret = await accounting.create_key(KeySpec(name="elsewhere"))
        return key.id, secret
    finally:
        await accounting.aclose()


async def _revoke_key(db_path: Path, key_id: str) -> None:
    accounting = _accounting_for(db_path)
    try:
        await accounting.revoke_key(key_id)
    finally:
        await accounting.aclose()


def test_management_model_calls_are_metered_like_the_ingresses(gw: Gw, fake: FakeOpenAI) -> None:
    """``/api/models/generate``, ``/stream`` and ``/test`` go through the same meter as
    ``/v1``: each lands in the request log (a failed test too) with its cost."""
    from .fakes.openai_upstream import Fail

    body = {"model": "single", "prompt": "hi"}
    r = gw.admin.post("/api/models/generate", json=body)
    assert r.status_code == 200 and float(r.headers["x-turnout-cost-usd"]) == pytest.approx(COST)
    assert r.headers["x-turnout-deployment"] == "primary:model-a"
    r = gw.admin.post("/api/models/stream", json=body)
    assert r.status_code == 200 and "event: done" in r.text
    assert gw.admin.post("/api/models/test", json={"model": "single"}).json()["ok"] is True
    fake.then(Fail(500, "boom"), Fail(500, "boom"))  # both tries of the one deployment
    assert gw.admin.post("/api/models/test", json={"model": "single"}).json()["ok"] is False
    # the failed test: one record per attempt (the first, failed over from, and the last)
    _wait(lambda: gw.accounting.request_log.written >= 5)
    with sqlite3.connect(gw.db_path) as conn:
        rows = conn.execute(
            "SELECT key_id, route, model, status, stream, cost FROM request_log ORDER BY id"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(None, "single", "model-a")] * 5
    assert [r[3] for r in rows[:3]] == [200, 200, 200] and all(r[3] >= 500 for r in rows[3:])
    assert [r[4] for r in rows[:3]] == [0, 1, 0]
    assert all(r[5] == pytest.approx(COST) for r in rows[:3])
