"""The request log against real databases: migrations on empty SQLite and PostgreSQL, records
landing in both, and a database that goes away mid-run (requests keep succeeding, what cannot
wait is dropped and counted, memory stays bounded)."""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc
from pathlib import Path

import httpx
import openai
import pytest

from turnout.accounting import Database, RequestLog, UsageRecord
from turnout.accounting.db import shipped_head
from turnout.accounting.schema import tables
from turnout.config import RequestLogConfig
from turnout.gateway import Gateway
from turnout.server import create_app

from .conftest import make_config, pg_schema_url
from .fakes.openai_upstream import FakeOpenAI, Reply
from .fakes.servers import UvicornThread, free_port
from .fakes.tcp_proxy import TcpProxy

HI = [{"role": "user", "content": "hi"}]


def _record(i: int, key_id: str | None = None, cost: float | None = 0.001) -> UsageRecord:
    return UsageRecord(
        ts=time.time(),
        route="chain",
        status=200,
        key_id=key_id,
        provider="primary",
        model="model-a",
        attempts=1,
        ttft=0.01,
        latency=0.05 + i / 1000,
        input_tokens=11,
        output_tokens=7,
        cost=cost,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'log.db'}")
    schema = request.getfixturevalue("pg_schema")
    return Database(pg_schema_url(schema).replace("postgresql://", "postgresql+psycopg://"))


def test_migrations_create_the_schema_on_an_empty_database(db: Database) -> None:
    from sqlalchemy import inspect

    assert db.current_revision() is None
    db.upgrade()
    assert shipped_head() is not None  # one head: the version files form a single chain
    assert db.current_revision() == shipped_head()
    db.upgrade()  # idempotent: a second replica starting does nothing
    found = inspect(db.engine())
    for name in ("request_log", "request_rollup", "gateway_keys", "key_spend", "conversations",
                 "conversation_messages"):  # fmt: skip
        model = {c.name for c in tables()[name].columns}
        assert {c["name"] for c in found.get_columns(name)} == model, name
    db.dispose()


async def test_records_land_in_batches_with_key_spend(db: Database) -> None:
    db.upgrade()
    log = RequestLog(db, RequestLogConfig(batch_size=4, flush_interval=0.05))
    log.start()
    for i in range(10):
        log.submit(_record(i, key_id="key_a" if i % 2 else None))
    assert await log.flush(10)
    await log.aclose()
    rows = db.records_since(0, ["route", "status", "key_id", "latency", "cost"])
    assert len(rows) == 10 and log.written == 10 and log.dropped == 0
    assert sorted(r[3] for r in rows) == pytest.approx([0.05 + i / 1000 for i in range(10)])
    spend = db.spend(["total"])
    assert spend == {("key_a", "total"): pytest.approx(0.005)}
    db.dispose()


async def test_unreachable_database_memory_stays_bounded_for_10000_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
    log = RequestLog(dead, RequestLogConfig(queue_size=500, batch_size=50, flush_interval=0.01))
    log.start()
    tracemalloc.start()
    try:
        for i in range(1000):
            log.submit(_record(i))
            if i % 100 == 0:
                await asyncio.sleep(0)
        filled, _ = tracemalloc.get_traced_memory()
        for i in range(9000):
            log.submit(_record(i))
            if i % 100 == 0:
                await asyncio.sleep(0)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert log.depth <= 500 + 50
    assert log.dropped + log.depth == 10_000
    # 9,000 more records while the database is down cost no more memory (one record is
    # about 1 KB, so unbounded growth would show as megabytes).
    assert after - filled < 100_000
    assert any("dropped" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    await log.aclose(drain_timeout=0.1)
    assert log.dropped == 10_000 and log.written == 0


def test_database_stopped_mid_run_keeps_serving_and_counts_drops(
    pg_schema: str, fake: FakeOpenAI, fake_url: str
) -> None:
    proxy = TcpProxy(5432).open()
    config = make_config(
        fake_url,
        database_url=pg_schema_url(pg_schema, proxy.port),
        request_log={"queue_size": 5, "batch_size": 2, "flush_interval": 0.02},
    )
    app = create_app(Gateway(config))
    server = UvicornThread(app).start()
    accounting = app.state.accounting
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    try:
        for _ in range(3):
            client.chat.completions.create(model="chain", messages=HI)
        _wait(lambda: accounting.request_log.written == 3)

        proxy.close()  # the database is gone: connections cut, new ones refused
        for _ in range(20):
            fake.then(Reply(text="still here"))
            out = client.chat.completions.create(model="chain", messages=HI)
            assert out.choices[0].message.content == "still here"
        log = accounting.request_log
        _wait(lambda: log.dropped + log.depth == 20)
        assert log.depth <= 5 + 2 and log.dropped >= 13
        dropped = log.dropped

        proxy.open()  # back: what waited is written, nothing more is lost
        _wait(lambda: log.depth == 0, timeout=40)
        assert log.dropped == dropped and log.written == 3 + 20 - dropped
        health = httpx.get(server.url + "/health").json()
        assert health["status"] == "ok"
        metrics = httpx.get(server.url + "/metrics").text
        assert f"turnout_log_records_dropped_total {float(dropped)}" in metrics
        assert f"turnout_log_records_written_total {float(log.written)}" in metrics
        assert "turnout_log_queue_depth 0.0" in metrics
    finally:
        server.stop()
        proxy.stop()


def _wait(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


async def test_retention_prunes_old_records(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    db.upgrade()
    old = _record(0)
    old.ts = time.time() - 10 * 86400
    db.write_records([old.values(), old.values()])
    log = RequestLog(db, RequestLogConfig(retention_days=7, flush_interval=0.01))
    log.start()
    log.submit(_record(1))
    assert await log.flush(10)
    await log.aclose()
    rows = db.records_since(0, ["ts"])
    assert len(rows) == 1 and rows[0][0] > time.time() - 60
    db.dispose()
