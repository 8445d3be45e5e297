"""Two gateway processes (real, separate `turnout serve` processes) sharing PostgreSQL and
Redis enforce one requests-per-minute limit and one budget together, and a key revoked on one
is refused at once on the other."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from .conftest import MASTER_KEY, REDIS_URL, UPSTREAM_KEY, pg_schema_url
from .fakes.openai_upstream import FakeOpenAI
from .fakes.servers import free_port, stop_process, wait_ready

HI = [{"role": "user", "content": "hi"}]
COST = (11 * 1.0 + 7 * 2.0) / 1_000_000


@pytest.fixture
def replicas(
    tmp_path: Path, fake_url: str, pg_schema: str, redis_prefix: str
) -> Iterator[list[str]]:
    config = {
        "server": {"master_key": MASTER_KEY, "preload_local": False},
        "providers": {"primary": {"host": "custom", "base_url": fake_url, "api_key": UPSTREAM_KEY}},
        "routes": [{"name": "chain", "deployments": ["primary:model-a"]}],
        "models": [{"id": "primary:model-a", "input_price": 1.0, "output_price": 2.0}],
        "database_url": pg_schema_url(pg_schema),
        "redis_url": REDIS_URL,
        "redis_prefix": redis_prefix,
        "request_log": {"flush_interval": 0.05},
    }
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    procs, urls, logs = [], [], []
    for i in range(2):
        port = free_port()
        logs.append(tmp_path / f"replica{i}.log")
        with logs[-1].open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "turnout.cli", "-c", str(path), "serve"]
                    + ["--port", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "TURNOUT_LOG_LEVEL": "warning"},
                )
            )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, proc, log_path in zip(urls, procs, logs, strict=True):
            wait_ready(url, proc, log_path, "/health", 90)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()  # both shut down at once; stop_process then waits for each
        for proc in procs:
            stop_process(proc)


def _admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def _chat(url: str, secret: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "chain", "messages": HI},
        timeout=30,
    )


def test_two_processes_enforce_one_rpm_limit_and_one_budget(
    replicas: list[str], fake: FakeOpenAI
) -> None:
    a, b = replicas
    with _admin(a) as admin:
        limited = admin.post("/api/keys", json={"name": "rpm", "rpm": 6}).json()
        budgeted = admin.post("/api/keys", json={"budget": {"total": COST * 4}}).json()
    # The key was made on A; B finds it at once (database lookup on first sight).
    statuses = [_chat(replicas[i % 2], limited["key"]).status_code for i in range(12)]
    assert statuses.count(200) == 6 and statuses.count(429) == 6  # not 12: the limit is shared
    assert statuses[:6] == [200] * 6

    spent = [_chat(replicas[i % 2], budgeted["key"]).status_code for i in range(8)]
    assert spent == [200] * 4 + [402] * 4
    with _admin(b) as admin:
        shown = admin.get(f"/api/keys/{budgeted['id']}").json()
    assert shown["spend"]["total"] == pytest.approx(COST * 4)


def test_key_revoked_on_one_replica_is_refused_at_once_on_the_other(
    replicas: list[str], fake: FakeOpenAI
) -> None:
    a, b = replicas
    with _admin(a) as admin:
        key = admin.post("/api/keys", json={"name": "soon-gone"}).json()
    assert _chat(a, key["key"]).status_code == 200
    assert _chat(b, key["key"]).status_code == 200  # B now holds the key in its cache
    with _admin(b) as admin:
        assert admin.delete(f"/api/keys/{key['id']}").json()["revoked"] is True
    for url in (a, b):
        refused = _chat(url, key["key"])
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "key_revoked"


def test_stats_come_from_the_shared_request_log(replicas: list[str], fake: FakeOpenAI) -> None:
    a, b = replicas
    with _admin(a) as admin:
        key = admin.post("/api/keys", json={"name": "stats"}).json()
    for i in range(4):
        assert _chat(replicas[i % 2], key["key"]).status_code == 200
    deadline = time.monotonic() + 60  # the log is flushed every 50 ms; generous under load
    with _admin(b) as admin:
        while True:
            data = admin.get("/api/models/stats", params={"window": "5m"}).json()["data"]
            row = next((r for r in data if r["model"] == "model-a"), None)
            if row and row["requests"] >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert row is not None and row["requests"] == 4
    assert row["spend_usd"] == pytest.approx(4 * COST)
