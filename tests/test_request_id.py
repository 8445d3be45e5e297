"""``x-request-id`` on every response (the client's when it sends a sensible one), the same id
in the request log, and ``log_format: json`` carrying it in every line of a real server."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from turnout.gateway import Gateway
from turnout.server import create_app

from .conftest import MASTER_KEY, UPSTREAM_KEY, make_config
from .fakes.servers import UvicornThread, turnout_serve

HI = [{"role": "user", "content": "hi"}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def _logged_ids(db: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    rows: list[tuple[str]] = []
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT request_id FROM request_log ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the table is created in the background
            rows = []
        if len(rows) >= count:
            break
        time.sleep(0.1)
    return [r[0] for r in rows]


def test_request_ids_on_responses_and_in_the_request_log(
    serve, fake_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "turnout.db"
    url = serve(
        make_config(
            fake_url,
            database_url=f"sqlite:///{db}",
            request_log={"flush_interval": 0.05},
            server={"master_key": MASTER_KEY, "preload_local": False},
        )
    )
    chat = url + "/v1/chat/completions"
    r = httpx.post(chat, json={"model": "single", "messages": HI}, headers=AUTH)
    generated = r.headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0

    mine = {**AUTH, "x-request-id": "client-trace:42/a"}
    r = httpx.post(chat, json={"model": "single", "messages": HI, "stream": True}, headers=mine)
    assert r.status_code == 200 and r.headers["x-request-id"] == "client-trace:42/a"

    bad = {**AUTH, "x-request-id": "has spaces and is not an id"}
    r = httpx.post(chat, json={"model": "nope", "messages": HI}, headers=bad)
    assert r.status_code == 404
    replaced = r.headers["x-request-id"]
    assert replaced != bad["x-request-id"] and len(replaced) == 32

    # Every response, errors and open routes included.
    for response in (
        httpx.post(chat, json={"model": "single", "messages": HI}),  # 401: no key
        httpx.get(url + "/health/ready"),
        httpx.get(url + "/no/such/path"),
    ):
        assert len(response.headers["x-request-id"]) == 32, response

    assert _logged_ids(db, 3)[:3] == [generated, "client-trace:42/a", replaced]
    assert generated != replaced


def test_json_logs_carry_the_request_id(fake_url: str, tmp_path: Path) -> None:
    config = {
        "server": {"preload_local": False},
        "providers": {"primary": {"host": "custom", "base_url": fake_url, "api_key": UPSTREAM_KEY}},
        "routes": [{"name": "single", "deployments": ["primary:model-a"]}],
        "database_url": "none",
        "key_health": {"enabled": False},
        "log_format": "json",
    }
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    with turnout_serve(path, log, "--access-log", ready="/health/live") as (_, url):
        headers = {"x-request-id": "json-log-check-7"}
        r = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "nope", "messages": HI},
            headers=headers,
        )
        assert r.status_code == 404
    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    access = [x for x in lines if x["logger"] == "uvicorn.access"]
    assert any(x.get("request_id") == "json-log-check-7" and "404" in x["message"] for x in access)


def test_an_unexpected_error_still_carries_the_request_id(fake_url: str) -> None:
    """A 500 from the ``Exception`` handler (rendered by Starlette's outermost middleware,
    outside the app's own middleware list) carries the id too, and in the route's error
    shape."""
    app = create_app(Gateway(make_config(fake_url)))

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug in a handler")

    app.router.routes.append(Route("/v1/broken", broken))
    server = UvicornThread(app).start()
    try:
        r = httpx.get(server.url + "/v1/broken", headers={"x-request-id": "bug-report-1"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "bug-report-1"
        assert r.json()["error"]["code"] == "internal_error"
        assert "a bug in a handler" not in r.text
        r = httpx.get(server.url + "/v1/broken")
        assert r.status_code == 500 and len(r.headers["x-request-id"]) == 32
    finally:
        server.stop()
