"""`turnout keys` and `turnout db` as an operator runs them (real subprocesses), against the
SQLite file beside the config, and a running server that sees their changes."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx

from turnout.accounting.db import shipped_head
from turnout.config import load_config
from turnout.gateway import Gateway
from turnout.server import create_app

from .conftest import MASTER_KEY, UPSTREAM_KEY
from .fakes.openai_upstream import FakeOpenAI
from .fakes.servers import UvicornThread
from .test_cli import turnout


def _config(tmp_path: Path, fake_url: str) -> Path:
    path = tmp_path / "turnout.yaml"
    path.write_text(
        "server: {master_key: '" + MASTER_KEY + "', preload_local: false}\n"
        "providers:\n"
        f"  acme: {{host: custom, base_url: '{fake_url}', api_key: '{UPSTREAM_KEY}'}}\n"
        "routes:\n"
        "  - {name: acme-route, deployments: [acme:acme-large]}\n"
    )
    return path


def test_db_upgrade_then_keys_create_list_update_revoke(
    tmp_path: Path, fake: FakeOpenAI, fake_url: str
) -> None:
    config = _config(tmp_path, fake_url)
    up = turnout("-c", str(config), "db", "upgrade", cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert f"revision {shipped_head()} (created now)" in up.stdout
    assert (tmp_path / "turnout.db").is_file()

    made = turnout(
        "gateway-keys", "-c", str(config), "create", "--name", "ci", "--rpm", "10",
        "--budget-monthly", "25", "--model", "acme-route", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    secret = created["key"]
    assert created["rpm"] == 10 and created["budget"]["monthly"] == 25
    assert created["models"] == ["acme-route"]
    with sqlite3.connect(tmp_path / "turnout.db") as conn:
        (stored,) = conn.execute("SELECT secret_hash FROM gateway_keys").fetchone()
    assert secret not in stored

    # A server already running picks up keys made by the CLI, and refuses them once revoked.
    app = create_app(Gateway(load_config(config)))
    app.state.accounting.poll_interval = 0.05
    server = UvicornThread(app).start()
    try:
        chat = {"model": "acme-route", "messages": [{"role": "user", "content": "hi"}]}
        auth = {"authorization": f"Bearer {secret}"}
        r = httpx.post(server.url + "/v1/chat/completions", json=chat, headers=auth)
        assert r.status_code == 200 and r.headers["x-ratelimit-limit-requests"] == "10"

        listed = turnout("gateway-keys", "-c", str(config), "list", cwd=tmp_path)
        assert listed.returncode == 0 and created["id"] in listed.stdout
        assert "active" in listed.stdout and secret not in listed.stdout

        changed = turnout(
            "gateway-keys", "-c", str(config), "update", created["id"], "--rpm", "0", cwd=tmp_path
        )
        assert changed.returncode == 0 and json.loads(changed.stdout)["rpm"] is None

        gone = turnout("gateway-keys", "-c", str(config), "revoke", created["id"], cwd=tmp_path)
        assert gone.returncode == 0 and "revoked" in gone.stdout
        # Without Redis the server learns of a CLI revocation by polling the database (every
        # 5 s by default, 0.05 s here); the admin API, or Redis, makes it immediate.
        deadline = time.monotonic() + 10
        while r.status_code != 401 and time.monotonic() < deadline:
            time.sleep(0.05)
            r = httpx.post(server.url + "/v1/chat/completions", json=chat, headers=auth)
        assert r.status_code == 401 and r.json()["error"]["code"] == "key_revoked"
    finally:
        server.stop()

    missing = turnout("gateway-keys", "-c", str(config), "revoke", "key_nope", cwd=tmp_path)
    assert missing.returncode == 1 and "no gateway key" in missing.stderr


def test_out_of_range_limits_are_a_one_line_error(tmp_path: Path, fake_url: str) -> None:
    config = _config(tmp_path, fake_url)
    for flag, value in (("--rpm", "9223372036854775808"), ("--budget-daily", "1e300")):
        made = turnout("gateway-keys", "-c", str(config), "create", flag, value, cwd=tmp_path)
        assert made.returncode == 1
        assert "Traceback" not in made.stderr
        (error,) = [line for line in made.stderr.splitlines() if line.startswith("turnout:")]
        assert error.startswith(f"turnout: invalid key settings: {flag}: ")
        assert made.stdout == ""
    with sqlite3.connect(tmp_path / "turnout.db") as conn:
        assert conn.execute("SELECT count(*) FROM gateway_keys").fetchone() == (0,)


def test_keys_commands_say_which_database_they_use(tmp_path: Path, fake_url: str) -> None:
    config = _config(tmp_path, fake_url)
    made = turnout("gateway-keys", "-c", str(config), "create", "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert f"database sqlite:///{(tmp_path / 'turnout.db').resolve()}" in made.stderr
    json.loads(made.stdout)  # stdout stays machine-readable
    # Without a config, the default database is the one in the working directory: saying so
    # is what tells an operator the key went to another directory's turnout.db.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = turnout("gateway-keys", "list", cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    assert f"database sqlite:///{(elsewhere / 'turnout.db').resolve()}" in listed.stderr
