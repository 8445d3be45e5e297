"""``POST /api/feedback`` on one server (SQLite): a gateway key scores its own requests and
not another key's (404, as an unknown request), the master key scores any, bad bodies are
400s, and feedback on a ``learned`` route's request becomes an outcome that survives a
restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from turnout.gateway import Gateway
from turnout.server import create_app

from .conftest import MASTER_KEY, make_config
from .fakes.openai_upstream import FakeOpenAI
from .fakes.servers import UvicornThread
from .test_learned_routing import CHAT, GO, _cache_in_tmp, needs_model, write_store  # noqa: F401

HI = [{"role": "user", "content": "hi"}]


def _check(schema: str, value: Any) -> None:
    from jsonschema import Draft202012Validator

    from turnout.server.openapi import openapi_spec

    components = openapi_spec()["components"]
    Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": components}
    ).validate(value)


def config(fake_url: str, db: Path | str, **extra: Any) -> Any:
    return make_config(
        fake_url,
        server={"master_key": MASTER_KEY, "preload_local": False},
        database_url=db if isinstance(db, str) else f"sqlite:///{db}",
        request_log={"flush_interval": 0.02},
        **extra,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path, fake_url: str) -> Iterator[Any]:
    """A server with a master key and a request log on SQLite or PostgreSQL: (url, app)."""
    db: Path | str = tmp_path / "gw.db"
    if request.param == "postgresql":
        db = request.getfixturevalue("pg_url")
    app = create_app(Gateway(config(fake_url, db)))
    s = UvicornThread(app).start()
    yield s.url, app
    s.stop()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_a_key_scores_its_own_request_and_not_another_keys(server: Any, fake: FakeOpenAI) -> None:
    url, app = server
    with httpx.Client(base_url=url, timeout=10) as http:
        a = http.post("/api/keys", json={"name": "a"}, headers=bearer(MASTER_KEY)).json()["key"]
        b = http.post("/api/keys", json={"name": "b"}, headers=bearer(MASTER_KEY)).json()["key"]
        served = http.post(
            "/v1/chat/completions", json={"model": "chain", "messages": HI}, headers=bearer(a)
        )
        assert served.status_code == 200
        rid = served.headers["x-request-id"]

        mine = http.post(
            "/api/feedback",
            json={"request_id": rid, "thumbs": "up", "comment": "spot on", "label": "good"},
            headers=bearer(a),
        )
        assert mine.status_code == 200, mine.text
        _check("FeedbackStored", mine.json())
        assert mine.json()["score"] == 1.0 and mine.json()["deployment"] == "primary:model-a"

        theirs = http.post(
            "/api/feedback", json={"request_id": rid, "score": 0.0}, headers=bearer(b)
        )
        assert theirs.status_code == 404
        assert theirs.json()["error"]["code"] == "request_not_found"
        unknown = http.post(
            "/api/feedback", json={"request_id": "no-such-request", "score": 0.5}, headers=bearer(a)
        )
        assert unknown.status_code == 404 and unknown.json() == {
            **unknown.json(),
            "error": {**theirs.json()["error"], "message": unknown.json()["error"]["message"]},
        }
        # The master key may score any request; a second score replaces the first.
        master = http.post(
            "/api/feedback", json={"request_id": rid, "score": 0.25}, headers=bearer(MASTER_KEY)
        )
        assert master.status_code == 200 and master.json()["outcome"] is False
        again = http.post(
            "/api/feedback", json={"request_id": rid, "score": 0.5}, headers=bearer(a)
        )
        assert again.status_code == 200

        for body in (
            {"request_id": rid, "score": 1.5},
            {"request_id": rid, "score": 1, "thumbs": "up"},
            {"request_id": rid},
            {"request_id": rid, "thumbs": "sideways"},
            {"score": 1},
            [1, 2],
        ):
            bad = http.post("/api/feedback", json=body, headers=bearer(a))
            assert bad.status_code == 400, (body, bad.text)
            assert bad.json()["error"]["type"] == "invalid_request_error"
        assert http.post("/api/feedback", content=b"{", headers=bearer(a)).status_code == 400
        assert http.post("/api/feedback", json={"request_id": rid, "score": 1}).status_code == 401

    from sqlalchemy import text

    with app.state.accounting.db.engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT key_id IS NOT NULL AS by_key, score, comment, label FROM request_feedback "
                "WHERE request_id = :rid ORDER BY by_key"
            ),
            {"rid": rid},
        ).fetchall()
    assert [tuple(r) for r in rows] == [(False, 0.25, None, None), (True, 0.5, None, None)]


def test_feedback_is_in_the_openapi_description() -> None:
    from turnout.server.openapi import openapi_spec

    spec = openapi_spec()
    post = spec["paths"]["/api/feedback"]["post"]
    assert set(post["responses"]) >= {"200", "400", "401", "404"}
    assert spec["components"]["schemas"]["Feedback"]["required"] == ["request_id"]


@needs_model
async def test_feedback_on_a_learned_request_becomes_an_outcome_that_survives_a_restart(
    fake: FakeOpenAI, fake_url: str, tmp_path: Path
) -> None:
    store = write_store(
        tmp_path / "o.jsonl",
        [{"prompt": p, "model": m, "score": 1} for p in CHAT for m in ("model-a", "model-b")],
    )
    route = {
        "name": "smart",
        "strategy": "learned",
        "learned": {"outcomes": [str(store)], "min_similarity": -1},
        "deployments": ["primary:model-a", "backup:model-b"],
    }
    cfg = config(fake_url, tmp_path / "gw.db", routes=[route])

    async def started() -> tuple[UvicornThread, Any]:
        app = create_app(Gateway(cfg))
        s = UvicornThread(app).start()
        async with httpx.AsyncClient(base_url=s.url) as http:
            while (await http.get("/health")).json()["task_classifier"] == "loading":
                await asyncio.sleep(0.05)
        return s, app

    s, app = await started()
    try:
        async with httpx.AsyncClient(base_url=s.url, headers=bearer(MASTER_KEY)) as http:
            served = await http.post(
                "/v1/chat/completions",
                json={"model": "smart", "messages": [{"role": "user", "content": GO}]},
            )
            assert "p=" in served.headers["x-turnout-estimates"]
            rid, deployment = served.headers["x-request-id"], served.headers["x-turnout-deployment"]
            r = await http.post("/api/feedback", json={"request_id": rid, "thumbs": "down"})
            assert r.status_code == 200 and r.json()["outcome"] is True, r.text
            assert len(app.state.gateway.planner.feedback) == 1
            # The same prompt again: the thumbs down now counts against that deployment.
            again = await http.post(
                "/v1/chat/completions",
                json={"model": "smart", "messages": [{"role": "user", "content": GO}]},
            )
            assert again.headers["x-turnout-deployment"] != deployment
    finally:
        s.stop()
    s, app = await started()
    try:
        for _ in range(100):  # the stored feedback loads in the background at start-up
            if len(app.state.gateway.planner.feedback) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(app.state.gateway.planner.feedback) == 1
    finally:
        s.stop()


def test_thompson_sampling_moves_traffic_to_the_arm_with_better_feedback(
    fake: FakeOpenAI, fake_url: str, tmp_path: Path
) -> None:
    """A scripted judge: every answer of model-a is good, every answer of model-b bad."""
    route = {
        "name": "exp",
        "strategy": "ab",
        "adaptive": True,
        "min_share": 0.05,
        "deployments": ["primary:model-a", "backup:model-b"],
    }
    app = create_app(Gateway(config(fake_url, tmp_path / "gw.db", routes=[route])))
    s = UvicornThread(app).start()
    served: list[str] = []
    try:
        with httpx.Client(base_url=s.url, headers=bearer(MASTER_KEY), timeout=10) as http:
            for _ in range(120):
                r = http.post("/v1/chat/completions", json={"model": "exp", "messages": HI})
                deployment = r.headers["x-turnout-deployment"]
                served.append(deployment)
                good = deployment == "primary:model-a"
                body = {"request_id": r.headers["x-request-id"], "thumbs": "up" if good else "down"}
                assert http.post("/api/feedback", json=body).status_code == 200
            status = http.get("/api/routing").json()
    finally:
        s.stop()
    late = served[60:]
    assert late.count("primary:model-a") / len(late) >= 0.75, served
    assert "backup:model-b" in served  # the minimum share keeps measuring the other arm
    arms = next(r for r in status["routes"] if r["name"] == "exp")["arms"]
    assert arms["primary:model-a"]["estimate"] > 0.8 > 0.3 > arms["backup:model-b"]["estimate"]
    assert arms["primary:model-a"]["successes"] + arms["backup:model-b"]["failures"] == 120
