"""Hot reload on a real server: a route's deployments changed under load switch with no
failed request; an invalid file, or one that changes a restart-only setting, is refused and
the old config keeps serving; the status and the metric say so without a secret; SIGHUP on a
real ``turnout serve`` process, and the file watch."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from turnout.config import load_config
from turnout.gateway import Gateway
from turnout.server import create_app

from .conftest import MASTER_KEY, UPSTREAM_KEY
from .fakes.servers import UvicornThread, turnout_serve

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
HI = [{"role": "user", "content": "hi"}]


def _config(fake_url: str, deployment: str, **extra: Any) -> dict[str, Any]:
    provider = {"host": "custom", "base_url": fake_url, "api_key": UPSTREAM_KEY}
    return {
        "server": {"preload_local": False, "master_key": MASTER_KEY},
        "providers": {"primary": provider, "backup": provider},
        "routes": [{"name": "r", "deployments": [deployment]}],
        "database_url": "none",
        "key_health": {"enabled": False},
        **extra,
    }


@pytest.fixture
def config_file(tmp_path: Path, fake_url: str) -> Path:
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(_config(fake_url, "primary:model-a")))
    return path


@pytest.fixture
def server(config_file: Path) -> Iterator[tuple[Any, str]]:
    app = create_app(Gateway(load_config(config_file)))
    running = UvicornThread(app).start()
    yield app, running.url
    running.stop()


def _served_by(url: str, stream: bool = False) -> str:
    body = {"model": "r", "messages": HI, "stream": stream}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=AUTH) as r:
        text = r.read().decode()
        assert r.status_code == 200, text
        if stream:
            assert text.rstrip().endswith("data: [DONE]"), text[-300:]
        return r.headers["x-turnout-deployment"]


def test_route_change_under_load_switches_without_a_failure(
    server: tuple[Any, str], config_file: Path, fake_url: str
) -> None:
    app, url = server
    stop = threading.Event()
    seen: list[str] = []
    failures: list[BaseException] = []

    def load(stream: bool) -> None:
        while not stop.is_set():
            try:
                seen.append(_served_by(url, stream))
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                failures.append(exc)

    workers = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(4)]
    for w in workers:
        w.start()
    try:
        while len(seen) < 20:
            time.sleep(0.02)
        config_file.write_text(yaml.safe_dump(_config(fake_url, "backup:model-b")))
        r = httpx.post(url + "/api/config/reload", headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["changed"] == ["routes"] and r.json()["generation"] == 2
        assert r.json()["workers_signalled"] is False
        mark = len(seen)
        while len(seen) < mark + 20:
            time.sleep(0.02)
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    assert failures == []
    counts = Counter(seen)
    assert counts["primary:model-a"] >= 20 and counts["backup:model-b"] >= 20
    # After the switch, new requests never go to the old deployment.
    assert _served_by(url) == "backup:model-b"
    assert app.state.gateway.config.routes[0].deployments[0].model == "backup:model-b"


def test_invalid_file_is_refused_and_the_old_config_serves(
    server: tuple[Any, str], config_file: Path, fake_url: str
) -> None:
    _, url = server
    bad = _config(fake_url, "backup:model-b")
    bad["retry"] = {"retries": "lots"}
    config_file.write_text(yaml.safe_dump(bad))
    r = httpx.post(url + "/api/config/reload", headers=AUTH)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "config_invalid"
    assert str(config_file) in error["message"] and "retry.retries" in error["message"]
    assert _served_by(url) == "primary:model-a"

    config_file.write_text("routes: [unclosed")
    r = httpx.post(url + "/api/config/reload", headers=AUTH)
    assert r.status_code == 422 and "not valid YAML" in r.json()["error"]["message"]

    status = httpx.get(url + "/api/config/status", headers=AUTH).json()
    assert status["generation"] == 1
    assert status["last_attempt"]["ok"] is False
    assert status["last_attempt"]["trigger"] == "api"
    assert "not valid YAML" in status["last_attempt"]["error"]
    metrics = httpx.get(url + "/metrics", headers=AUTH).text
    assert 'turnout_config_reloads_total{result="failed"} 2.0' in metrics
    assert "turnout_config_generation 1.0" in metrics


def test_restart_only_settings_are_named_never_shown(
    server: tuple[Any, str], config_file: Path, fake_url: str
) -> None:
    _, url = server
    changed = _config(fake_url, "backup:model-b", database_url="sqlite:///elsewhere.db")
    changed["server"] = {**changed["server"], "port": 4999, "master_key": "sk-new-master-0002"}
    config_file.write_text(yaml.safe_dump(changed))
    r = httpx.post(url + "/api/config/reload", headers=AUTH)
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    for name in ("server.port", "server.master_key", "database_url"):
        assert name in message
    assert _served_by(url) == "primary:model-a"  # nothing applied, not even the route
    status = httpx.get(url + "/api/config/status", headers=AUTH)
    for secret in (MASTER_KEY, "sk-new-master-0002", UPSTREAM_KEY, "elsewhere.db", "4999"):
        assert secret not in status.text and secret not in r.text


def test_reload_and_status_need_the_master_key(server: tuple[Any, str]) -> None:
    _, url = server
    assert httpx.post(url + "/api/config/reload").status_code == 401
    other = {"Authorization": "Bearer sk-not-the-master"}
    assert httpx.get(url + "/api/config/status", headers=other).status_code == 403


def test_unchanged_file_is_a_no_op(server: tuple[Any, str]) -> None:
    app, url = server
    before = app.state.gateway
    r = httpx.post(url + "/api/config/reload", headers=AUTH)
    assert r.status_code == 200 and r.json()["result"] == "unchanged"
    assert app.state.gateway is before


def test_file_watch_reloads(config_file: Path, fake_url: str) -> None:
    data = _config(fake_url, "primary:model-a")
    data["server"]["watch_config"] = True
    config_file.write_text(yaml.safe_dump(data))
    app = create_app(Gateway(load_config(config_file)))
    running = UvicornThread(app).start()
    try:
        assert httpx.get(running.url + "/api/config/status", headers=AUTH).json()["watching"]
        data["routes"][0]["deployments"] = ["backup:model-b"]
        config_file.write_text(yaml.safe_dump(data))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _served_by(running.url) != "backup:model-b":
            time.sleep(0.1)
        status = httpx.get(running.url + "/api/config/status", headers=AUTH).json()
        assert status["last_attempt"]["trigger"] == "watch" and status["generation"] == 2
    finally:
        running.stop()


def test_sighup_reloads_a_running_server(config_file: Path, fake_url: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with turnout_serve(config_file, log) as (proc, url):
        assert _served_by(url) == "primary:model-a"
        # --port came from the command line: a reload must not take it for a change.
        config_file.write_text(yaml.safe_dump(_config(fake_url, "backup:model-b")))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _served_by(url) != "backup:model-b":
            time.sleep(0.1)
        status = httpx.get(url + "/api/config/status", headers=AUTH).json()
        assert status["last_attempt"]["trigger"] == "sighup", status
        assert status["last_attempt"]["ok"] is True, status
    assert "config reloaded (sighup): routes changed" in log.read_text()


def test_sighup_to_the_supervisor_reloads_every_worker(
    config_file: Path, fake_url: str, tmp_path: Path
) -> None:
    """With --workers 2, SIGHUP to the parent is passed to each worker (uvicorn would restart
    them): every worker then serves the new route, and none restarted."""
    log = tmp_path / "serve.log"
    fresh = httpx.Limits(max_keepalive_connections=0)  # each request may reach either worker
    with turnout_serve(config_file, log, "--workers", "2", ready=None) as (proc, url):
        deadline = time.monotonic() + 90
        with httpx.Client(limits=fresh, timeout=5) as client:
            while log.read_text().count("Application startup complete") < 2:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            config_file.write_text(yaml.safe_dump(_config(fake_url, "backup:model-b")))
            proc.send_signal(signal.SIGHUP)
            while log.read_text().count("config reloaded (sighup)") < 2:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            for _ in range(10):
                body = {"model": "r", "messages": HI}
                r = client.post(url + "/v1/chat/completions", json=body, headers=AUTH)
                assert r.status_code == 200, r.text
                assert r.headers["x-turnout-deployment"] == "backup:model-b"
            status = client.get(url + "/api/config/status", headers=AUTH).json()
            assert status["generation"] == 2
    text = log.read_text()
    assert text.count("config reloaded (sighup): routes changed") == 2, text[-3000:]
    assert "Started server process" in text and text.count("Started server process") == 2
