"""``/health/live`` and ``/health/ready`` on a real server: what a load balancer or a
Kubernetes probe sees with the database up, off, down (degraded or required) and while
draining; every answer validated against the served OpenAPI description."""

from __future__ import annotations

import fcntl
import time
from typing import Any

import httpx
import pytest

from turnout.gateway import Gateway
from turnout.server import create_app

from .conftest import MASTER_KEY, make_config, pg_schema_url
from .fakes.servers import UvicornThread, free_port


def _spec(url: str) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(url + "/openapi.json").json()
    return doc


def check(url: str, schema: str, value: Any) -> None:
    from jsonschema import Draft202012Validator

    spec = _spec(url)
    root = {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}
    Draft202012Validator(root).validate(value)


def _ready_once_migrated(url: str) -> httpx.Response:
    """``/health/ready`` once the start-up migration (in the background) is done: until then
    it is 503 with the database ``migrating``, and nothing else."""
    deadline = time.monotonic() + 60
    while True:
        r = httpx.get(url + "/health/ready")
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        assert r.json()["checks"]["database"] == {"status": "migrating"}, r.text
        time.sleep(0.05)


def test_live_and_ready_with_sqlite(serve, fake_url: str, tmp_path) -> None:
    db = tmp_path / "turnout.db"
    url = serve(
        make_config(fake_url, database_url=f"sqlite:///{db}", server={"master_key": MASTER_KEY})
    )
    r = httpx.get(url + "/health/live")  # open: no key even with a master key
    assert r.status_code == 200
    check(url, "Liveness", r.json())
    r = _ready_once_migrated(url)
    assert r.status_code == 200, r.text
    check(url, "Readiness", r.json())
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"status": "ok"}
    assert body["checks"]["shutdown"] == {"status": "running"}
    assert r.headers["cache-control"] == "no-store"
    assert httpx.get(url + "/health").json()["status"] == "ok"  # the old route stays


def test_not_ready_while_the_database_is_migrating(serve, fake_url: str, tmp_path) -> None:
    """Another process holds the migration lock of a new SQLite file (it is migrating it):
    this server is not ready until it has migrated too, whatever ready_requires_database says
    (gateway keys would be looked up in tables that do not exist yet)."""
    db = tmp_path / "turnout.db"
    with open(f"{db}.migrate.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        url = serve(make_config(fake_url, database_url=f"sqlite:///{db}"))
        r = httpx.get(url + "/health/ready")
        assert r.status_code == 503, r.text
        check(url, "Readiness", r.json())
        assert r.json()["status"] == "not ready"
        assert r.json()["checks"]["database"] == {"status": "migrating"}
        assert httpx.get(url + "/health/live").status_code == 200
    r = _ready_once_migrated(url)  # the lock is released: this server migrates, then is ready
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["database"] == {"status": "ok"}


def test_ready_without_a_database(serve, fake_url: str) -> None:
    url = serve(make_config(fake_url))  # database_url: none
    r = httpx.get(url + "/health/ready")
    assert r.status_code == 200
    assert r.json()["checks"]["database"] == {"status": "off"}
    assert r.json()["checks"]["config"]["status"] == "loaded"


@pytest.mark.parametrize("required", [False, True])
def test_unreachable_database(serve, fake_url: str, required: bool) -> None:
    """Nothing listens on the database's port: degraded but ready by default, 503 when the
    operator requires the database. No URL, host or driver message in the answer."""
    dead = pg_schema_url("nowhere", port=free_port())
    url = serve(
        make_config(fake_url, database_url=dead, server={"ready_requires_database": required})
    )
    r = httpx.get(url + "/health/ready", timeout=10)
    assert r.status_code == (503 if required else 200), r.text
    check(url, "Readiness", r.json())
    assert r.json()["checks"]["database"] == {"status": "unreachable", "degraded": not required}
    assert "127.0.0.1" not in r.text and "postgres" not in r.text
    # Liveness never depends on the database.
    assert httpx.get(url + "/health/live").status_code == 200
    # The gateway still serves.
    r = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "single", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_draining_is_not_ready(fake_url: str) -> None:
    app = create_app(Gateway(make_config(fake_url)))
    server = UvicornThread(app).start()
    try:
        assert httpx.get(server.url + "/health/ready").status_code == 200
        app.state.readiness.drain()
        r = httpx.get(server.url + "/health/ready")
        assert r.status_code == 503
        assert r.json()["status"] == "not ready"
        assert r.json()["checks"]["shutdown"] == {"status": "draining"}
        assert httpx.get(server.url + "/health/live").status_code == 200
    finally:
        server.stop()
