"""Gateway keys presented while a real ``turnout serve`` process is still migrating its database
at start-up (SQLite and PostgreSQL), without waiting for ``/health/ready``: a lookup waits for
the migration (up to ``MIGRATION_WAIT``) and then answers, or answers 503 with
``Retry-After`` in the route's own shape; never a 401 for a key that is valid, and no pause of
lookups that outlives the migration.

Another replica's migration is played by the test: it holds the migration lock (the
``.migrate.lock`` file's ``flock`` for SQLite, the advisory lock for PostgreSQL), so the
server's own migration waits, and creates the tables when the test says so."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from turnout.accounting.db import MIGRATION_LOCK_ID, MIGRATION_WAIT, Database
from turnout.accounting.keys import KeyRing, KeySpec, new_key
from turnout.errors import DatabaseUnavailableError

from .conftest import MASTER_KEY, UPSTREAM_KEY, pg_schema_url
from .fakes.openai_upstream import FakeOpenAI, Reply
from .fakes.servers import free_port, stop_process

HI = [{"role": "user", "content": "hi"}]
WAITING = "a gateway key lookup waits for the start-up migration"


class OtherReplica:
    """Holds the database's migration lock, as a replica migrating it would; ``migrate``
    creates the tables (without the lock: it is this replica's) and ``release`` lets go."""

    def __init__(self, url: str, lock: Callable[[], Any], scratch: Path) -> None:
        self.db = Database(url)
        self._release = lock()
        # Alembic and the migration scripts loaded now: ``migrate`` must finish well within
        # the server's wait (MIGRATION_WAIT), even on a loaded machine.
        warm = Database(f"sqlite:///{scratch}")
        warm.upgrade()
        warm.dispose()

    def migrate(self) -> None:
        self.db._upgrade("head")

    def release(self) -> None:
        self._release()
        self.db.dispose()


def _sqlite_lock(path: Path) -> Callable[[], Any]:
    def hold() -> Callable[[], None]:
        lock = open(f"{path}.migrate.lock", "a+b")  # noqa: SIM115 - held until release
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock.close

    return hold


def _pg_lock(url: str) -> Callable[[], Any]:
    def hold() -> Callable[[], None]:
        import psycopg

        conn = psycopg.connect(url)
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        return conn.close  # the transaction ends: the lock goes with it

    return hold


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, OtherReplica]]:
    """The server's ``database_url``, and the other replica holding its migration lock."""
    if request.param == "sqlite":
        path = tmp_path / "turnout.db"
        other = OtherReplica(f"sqlite:///{path}", _sqlite_lock(path), tmp_path / "warm.db")
        yield f"sqlite:///{path}", other
    else:
        schema = request.getfixturevalue("pg_schema")
        url = pg_schema_url(schema)
        engine_url = url.replace("postgresql://", "postgresql+psycopg://")
        other = OtherReplica(engine_url, _pg_lock(url), tmp_path / "warm.db")
        yield url, other
    with contextlib.suppress(Exception):
        other.release()  # a test that failed half-way


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def post(self, path: str, key: str, model: str = "chain") -> httpx.Response:
        return httpx.post(
            self.url + path,
            headers={"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"},
            json={"model": model, "messages": HI, "max_tokens": 16},
            timeout=60,
        )


@pytest.fixture
def server(tmp_path: Path, fake_url: str, database: tuple[str, OtherReplica]) -> Iterator[Server]:
    """``turnout serve`` on the locked database: up (``/health/live``), not ready."""
    config = {
        "server": {"master_key": MASTER_KEY, "preload_local": False},
        "providers": {"primary": {"host": "custom", "base_url": fake_url, "api_key": UPSTREAM_KEY}},
        "routes": [{"name": "chain", "deployments": ["primary:model-a"]}],
        "database_url": database[0],
        "key_health": {"enabled": False},
    }
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    port, log = free_port(), tmp_path / "gateway.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "turnout.cli", "-c", str(path), "serve", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TURNOUT_LOG_LEVEL": "debug"},
        )
    gw = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 90  # generous: start-up is slow on a loaded machine
        while True:
            assert proc.poll() is None, gw.text()[-3000:]
            assert time.monotonic() < deadline, "gateway did not start: " + gw.text()[-3000:]
            try:
                if httpx.get(gw.url + "/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        ready = httpx.get(gw.url + "/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] == {
            "status": "migrating"
        }
        yield gw
    finally:
        stop_process(proc)


def _in_thread(call: Callable[[], httpx.Response]) -> Callable[[], httpx.Response]:
    """Start ``call`` now; the returned function waits for its response."""
    out: list[httpx.Response | BaseException] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # noqa: BLE001 - re-raised by the waiter
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()

    def result() -> httpx.Response:
        thread.join(120)
        assert out, "no response in 120 s"
        if isinstance(out[0], BaseException):
            raise out[0]
        return out[0]

    return result


def _until(predicate: Callable[[], bool], what: str, server: Server) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: " + server.text()[-3000:]
        time.sleep(0.02)


def test_a_key_sent_during_the_start_up_migration_is_never_refused(
    server: Server, database: tuple[str, OtherReplica], fake: FakeOpenAI
) -> None:
    other = database[1]
    fake.then(Reply(text="served"))
    unknown = "sk-tn-" + "A" * 43

    # 1. The migration does not end within the wait: 503, Retry-After, each in its API's shape.
    started = time.monotonic()
    openai_call = _in_thread(lambda: server.post("/v1/chat/completions", unknown))
    anthropic_call = _in_thread(lambda: server.post("/v1/messages", unknown))
    openai, anthropic = openai_call(), anthropic_call()
    assert time.monotonic() - started >= MIGRATION_WAIT  # it waited for the migration first
    message = (
        "gateway keys cannot be checked now: the key database is being migrated at start-up; "
        "retry shortly"
    )  # as docs/accounting.md shows it
    assert openai.status_code == 503, openai.text
    assert openai.json() == {
        "error": {
            "message": message,
            "type": "api_error",
            "param": None,
            "code": "database_unavailable",
        }
    }
    assert anthropic.status_code == 503, anthropic.text
    assert anthropic.json() == {"type": "error", "error": {"type": "api_error", "message": message}}
    assert openai.headers["retry-after"] == anthropic.headers["retry-after"] == "1"

    # 2. A key sent while the tables do not exist yet waits for the migration and is served,
    # although the lookups above failed (no pause outlives the migration).
    row, secret = new_key(KeySpec(name="early"))
    waiting = server.text().count(WAITING)
    call = _in_thread(lambda: server.post("/v1/chat/completions", secret))
    _until(lambda: server.text().count(WAITING) > waiting, "the lookup did not wait", server)
    other.migrate()  # tens of milliseconds (warmed up): well within the server's wait
    other.db.insert_key(row)
    other.release()  # the server's migration now finds the database migrated
    r = call()
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "served"
    # An unknown key is still refused: it is unknown, no longer merely unverifiable.
    r = server.post("/v1/chat/completions", unknown)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(server.url + "/health/ready").status_code == 200
    assert "Traceback" not in server.text()


async def test_a_database_that_is_down_answers_503_and_is_left_alone_for_a_while() -> None:
    """Not a 401 (the key may be valid), no URL in the message, one query per pause."""
    db = Database(pg_schema_url("nowhere", port=free_port()).replace("://", "+psycopg://", 1))
    queries: list[str] = []
    keys = db.keys

    def counted(**kw: Any) -> list[dict[str, Any]]:
        queries.append(kw.get("secret_hash") or "")
        return keys(**kw)

    db.keys = counted  # type: ignore[method-assign]
    migrated = asyncio.Event()
    migrated.set()
    ring = KeyRing(db, migrated)
    try:
        for _ in range(3):
            with pytest.raises(DatabaseUnavailableError) as info:
                await ring.find("sk-tn-" + "B" * 43)
            assert info.value.status_code == 503
            assert info.value.message == (
                "gateway keys cannot be checked now: the key database is unavailable; retry shortly"
            )
            assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 5
        assert len(queries) == 1  # the next two were answered without asking
        assert await ring.find("sk-not-a-gateway-key") is None  # no gateway key: no query
        assert len(queries) == 1
    finally:
        db.dispose()
