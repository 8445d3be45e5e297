"""No secret leaves the gateway (issue 10).

An upstream may echo a key back in an error: in its status body, as the first event of a
stream, or mid-stream. Whatever it echoes (its own key, another provider's, the master key, a
gateway key, a bearer token), no response body, header or log line may carry it: on both
ingresses, on the management API, for every adapter. Then a scripted session over every
adapter's fake, against a real ``turnout serve`` process, looks for the known secrets in every
response, header, log line, the ``/metrics`` output and every request-log row."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from turnout.config import Config
from turnout.gateway import Gateway
from turnout.logs import RedactingFilter
from turnout.server import create_app

from .conformance.vendors import AWS_KEY_ID, VENDORS, Vendor
from .fakes.bedrock_upstream import FakeBedrock
from .fakes.script import Fail, FakeUpstream, StreamError
from .fakes.servers import AiohttpThread, UvicornThread, free_port, wait_ready
from .leaks import MARK, assert_no_secret, read_console, secrets_of

FAKED = [v for v in VENDORS if v.make_fake is not None]
MASTER = f"sk-master-{MARK}-5e1f0c9a7b3d2e48"
KEYS = {v.name: f"sk-{v.name}-{MARK}-a7c3e9f1b5d2{i:02d}" for i, v in enumerate(FAKED)}
"""One provider key per adapter."""
BEARER = f"tok-{MARK}-client-bearer-0b9a8c7d"
"""Configured nowhere: only its ``Bearer`` shape gives it away."""
ENV_VAR = "TURNOUT_TEST_SECRET_KEY"
PHRASE = "invalid credentials"


def leak_message(gateway_key: str) -> str:
    """What a careless upstream says: every secret the gateway holds, in every shape."""
    others = " ".join(KEYS.values())
    return (
        f"{PHRASE}: keys {others} master={MASTER} gateway={gateway_key} "
        f"sent with Authorization: Bearer {BEARER} (and bearer {BEARER})"
    )


def _make_fake(vendor: Vendor) -> FakeUpstream:
    if vendor.name == "bedrock_converse":
        return FakeBedrock(credentials={AWS_KEY_ID: KEYS[vendor.name]})
    assert vendor.make_fake is not None
    return vendor.make_fake()


def _provider(vendor: Vendor, url: str, **override: Any) -> dict[str, Any]:
    conf = vendor.provider(url)
    key = KEYS[vendor.name]
    if "api_key" in conf:
        conf["api_key"] = key
    if vendor.name == "bedrock_converse":
        conf["settings"] = {**conf["settings"], "secret_access_key": key}
    conf.update(override)
    return conf


def model_id(vendor: Vendor) -> str:
    return f"{vendor.name}:{vendor.model}"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, tuple[FakeUpstream, str]]]:
    started = {v.name: (_make_fake(v), v) for v in FAKED}
    threads = {name: AiohttpThread(fake.app).start() for name, (fake, _) in started.items()}
    yield {name: (started[name][0], threads[name].url) for name in started}
    for thread in threads.values():
        thread.stop()


def _config(fakes: dict[str, tuple[FakeUpstream, str]], db: Path, **extra: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER, "preload_local": False},
        "providers": {v.name: _provider(v, fakes[v.name][1]) for v in FAKED},
        "retry": {"retries": 0},
        "health": {"enabled": False},  # every failure must reach the fake, none the breaker
        "timeouts": {"connect": 2, "first_token": 5, "total": 10},
        "database_url": f"sqlite:///{db}",
        "request_log": {"flush_interval": 0.05},
        **extra,
    }


# --- every adapter, every path, every way an upstream can echo a key -------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class Stack:
    def __init__(self, url: str, gateway_key: str, lines: list[str], secrets: list[str]):
        self.url = url
        self.gateway_key = gateway_key
        self.lines = lines
        self.secrets = secrets


@pytest.fixture(scope="module")
def stack(
    fakes: dict[str, tuple[FakeUpstream, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    db = tmp_path_factory.mktemp("secrets") / "turnout.db"
    config = Config.model_validate(_config(fakes, db, key_health={"enabled": False}))
    gateway = Gateway(config)
    # What ``setup_logging`` does for ``turnout serve``: the gateway's redactor on a handler
    # of the root logger, which every turnout logger reaches.
    handler = _Lines()
    handler.addFilter(RedactingFilter(gateway.redactor))
    root, turnout_log = logging.getLogger(), logging.getLogger("turnout")
    level = turnout_log.level
    root.addHandler(handler)
    turnout_log.setLevel(logging.DEBUG)
    server = UvicornThread(create_app(gateway)).start()
    try:
        made = httpx.post(
            server.url + "/api/keys",
            json={"name": "secrets"},
            headers={"authorization": f"Bearer {MASTER}"},
        )
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        yield Stack(server.url, key, handler.lines, secrets_of(config, {}, key, BEARER))
    finally:
        server.stop()
        root.removeHandler(handler)
        turnout_log.setLevel(level)


Request = Callable[[str, Stack], httpx.Response]


def _send(stack: Stack, path: str, body: dict[str, Any], key: str) -> httpx.Response:
    return httpx.post(
        stack.url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=15
    )


PATHS: dict[str, Callable[[str, Stack], httpx.Response]] = {
    "openai": lambda m, s: _send(
        s,
        "/v1/chat/completions",
        {"model": m, "messages": [{"role": "user", "content": "hi"}]},
        s.gateway_key,
    ),
    "openai-stream": lambda m, s: _send(
        s,
        "/v1/chat/completions",
        {"model": m, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        s.gateway_key,
    ),
    "anthropic": lambda m, s: _send(
        s,
        "/v1/messages",
        {"model": m, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]},
        s.gateway_key,
    ),
    "anthropic-stream": lambda m, s: _send(
        s,
        "/v1/messages",
        {
            "model": m,
            "max_tokens": 32,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        s.gateway_key,
    ),
    "generate": lambda m, s: _send(s, "/api/models/generate", {"model": m, "prompt": "hi"}, MASTER),
    "stream": lambda m, s: _send(s, "/api/models/stream", {"model": m, "prompt": "hi"}, MASTER),
    "test": lambda m, s: _send(s, "/api/models/test", {"model": m}, MASTER),
}
STREAMED_UPSTREAM = ["openai-stream", "anthropic-stream", "generate", "stream", "test"]
"""Paths whose upstream call is a stream (the management API always streams upstream)."""
STREAMED_TO_CLIENT = ["openai-stream", "anthropic-stream", "stream"]

FAILURES: dict[str, Callable[[str], Any]] = {
    "status": lambda message: Fail(401, message, type="authentication_error"),
    "first-event": lambda message: StreamError(after=0, message=message),
    "mid-stream": lambda message: StreamError(after=2, message=message),
}
CASES = [
    pytest.param(v, failure, path, id=f"{v.name}-{failure}-{path}")
    for v in FAKED
    for failure in FAILURES
    for path in (PATHS if failure == "status" else STREAMED_UPSTREAM)
]


def _everything(resp: httpx.Response) -> str:
    head = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
    return f"{resp.status_code}\n{head}\n\n{resp.text}"


@pytest.mark.parametrize(("vendor", "failure", "path"), CASES)
def test_an_echoed_secret_reaches_neither_client_nor_log(
    stack: Stack,
    fakes: dict[str, tuple[FakeUpstream, str]],
    vendor: Vendor,
    failure: str,
    path: str,
) -> None:
    fake = fakes[vendor.name][0]
    fake.reset()
    fake.then(FAILURES[failure](leak_message(stack.gateway_key)))
    seen = len(stack.lines)
    resp = PATHS[path](model_id(vendor), stack)
    assert len(fake.calls) == 1, "the scripted failure reached the upstream"
    text = _everything(resp)
    # The upstream's words reach the client (else this test would prove nothing) ...
    assert PHRASE in resp.text, text
    in_band = path == "test" or (failure == "mid-stream" and path in STREAMED_TO_CLIENT)
    assert (resp.status_code == 200) == in_band, text
    assert resp.status_code >= 400 or "error" in resp.text, text
    # ... and its own key is shown as the hint every other place shows.
    assert "..." + KEYS[vendor.name][-4:] in resp.text, text
    assert_no_secret(text, stack.secrets, f"the response of {path}")
    logged = "\n".join(stack.lines[seen:])
    if not (failure == "mid-stream" and path == "test"):  # a failed test is its answer
        assert PHRASE in logged, "the failure was logged with the upstream's words"
    assert_no_secret(logged, stack.secrets, "the log")


# --- the secrets test: a scripted session against `turnout serve` -----------------------------


class Session:
    """Every request of the session goes through ``call``, which keeps all it received."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[tuple[str, str]] = []
        """(request, all of its response): the request may hold a secret, its answer not."""
        self.client = httpx.Client(base_url=url, timeout=15)

    def call(
        self, method: str, path: str, key: str | None = MASTER, keep: bool = True, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers.setdefault("authorization", f"Bearer {key}")
        resp = self.client.request(method, path, headers=headers, **kw)
        if keep:
            self.seen.append((f"{method} {path}", _everything(resp)))
        return resp


def _chat(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


def _message(model: str, stream: bool = False) -> dict[str, Any]:
    body = _chat(model, stream)
    body["max_tokens"] = 32
    return body


def test_no_secret_in_any_response_log_metric_or_request_log_row(
    fakes: dict[str, tuple[FakeUpstream, str]], tmp_path: Path
) -> None:
    db = tmp_path / "turnout.db"
    data = _config(fakes, db, log_level="debug")
    # Prompt and answer text kept too: what the log then stores must be redacted.
    data["request_log"] = {**data["request_log"], "store_content": True}
    # One provider key comes from the environment, as most deployments pass them.
    ollama = next(v for v in FAKED if v.name == "ollama_chat")
    conf = _provider(ollama, fakes[ollama.name][1], api_key_env=ENV_VAR)
    del conf["api_key"]
    data["providers"][ollama.name] = conf
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(data))
    environ = {ENV_VAR: KEYS[ollama.name]}
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "turnout.cli", "-c", str(path), "serve"]
            + ["--port", str(port), "--access-log"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **environ, "TURNOUT_LOG_LEVEL": "debug"},
        )
    session = Session(f"http://127.0.0.1:{port}")
    try:
        wait_ready(session.url, proc, log, "/health")
        # The one answer that shows a secret: the new key's, once, to its maker.
        made = session.call("POST", "/api/keys", keep=False, json={"name": "s", "rpm": 10_000})
        assert made.status_code == 201, made.text
        key, key_id = made.json()["key"], made.json()["id"]
        secrets = secrets_of(Config.model_validate(data), environ, key, BEARER)
        assert {*KEYS.values(), MASTER, key, BEARER} <= set(secrets)
        leak = leak_message(key)
        session.call("GET", "/api/keys")
        session.call("PATCH", f"/api/keys/{key_id}", json={"rpm": 20_000})

        for vendor in FAKED:
            fake, model = fakes[vendor.name][0], model_id(vendor)
            fake.reset()
            for stream in (False, True):
                ok = session.call("POST", "/v1/chat/completions", key, json=_chat(model, stream))
                assert ok.status_code == 200, ok.text
                ok = session.call("POST", "/v1/messages", key, json=_message(model, stream))
                assert ok.status_code == 200, ok.text
            generated = session.call(
                "POST", "/api/models/generate", json={"model": model, "prompt": "hi"}
            )
            assert generated.status_code == 200, generated.text
            fake.then(
                Fail(401, leak, type="authentication_error"),
                StreamError(after=0, message=leak),
                StreamError(after=2, message=leak),
                StreamError(after=2, message=leak),
                Fail(500, leak),
                Fail(401, leak, type="authentication_error"),
            )
            session.call("POST", "/v1/chat/completions", key, json=_chat(model))
            session.call("POST", "/v1/messages", key, json=_message(model, stream=True))
            session.call("POST", "/v1/chat/completions", key, json=_chat(model, stream=True))
            session.call("POST", "/api/models/stream", json={"model": model, "prompt": "hi"})
            session.call("POST", "/api/models/generate", json={"model": model, "prompt": "hi"})
            session.call("POST", "/api/models/test", json={"model": model})
            assert not fake.script, f"{vendor.name}: every scripted failure was served"

        # Wrong keys, and secrets a client put where an error echoes them.
        assert (
            session.call("POST", "/v1/chat/completions", BEARER, json=_chat("x")).status_code == 401
        )
        session.call(
            "POST", "/v1/messages", None, json=_message("x"), headers={"x-api-key": BEARER}
        )
        session.call("POST", "/v1/chat/completions", "sk-tn-" + "A1b2" * 10, json=_chat("x"))
        session.call("GET", f"/v1/unknown/{key}")
        session.call("GET", f"/api/keys/{key}")  # the secret where its id belongs
        session.call("POST", "/v1/chat/completions", key, json=_chat(f"nosuch:{MASTER}"))

        # A client that puts secrets in its prompt: the stored prompt is redacted.
        confiding = _chat(model_id(FAKED[0]))
        confiding["messages"][0]["content"] = (
            f"my keys: {MASTER} and Authorization: Bearer {BEARER}"
        )
        fakes[FAKED[0].name][0].reset()
        confided = session.call("POST", "/v1/chat/completions", key, json=confiding)
        assert confided.status_code == 200, confided.text
        deadline = time.monotonic() + 10  # the request log's writer flushes every 0.05 s
        while time.monotonic() < deadline:
            page = session.call("GET", "/api/requests?since=1h&limit=5", keep=False).json()
            if any(r["request_id"] == confided.headers["x-request-id"] for r in page["data"]):
                break
            time.sleep(0.05)

        # Everything a client or an operator can read, the console's pages and reads included.
        details = read_console(lambda p: session.call("GET", p))
        assert any("my keys:" in (d["prompt"] or "") for d in details), "prompts are stored"
        assert any(PHRASE in (d["error_message"] or "") for d in details), "messages are stored"
        for read in ("/v1/models", "/api/routing", "/api/models", "/api/models/stats", "/health"):
            assert session.call("GET", read).status_code == 200
        assert session.call("GET", "/api/models/providers").status_code == 200
        metrics = session.call("GET", "/metrics")
        assert metrics.status_code == 200 and "turnout_" in metrics.text
        assert_no_secret(metrics.text, secrets, "/metrics")
        session.call("DELETE", f"/api/keys/{key_id}")
    finally:
        session.client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    for request, answer in session.seen:
        assert_no_secret(answer, secrets, f"the answer to {request}")
    assert sum(PHRASE in answer for _, answer in session.seen) >= 6 * len(FAKED)

    logged = log.read_text()
    assert PHRASE in logged, "upstream errors were logged (redacted)"
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in logged, "the access log was on"
    assert_no_secret(logged, secrets, "the server's log")

    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {t: conn.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
    # Four answers and three failures per adapter on the two ingresses.
    assert len(rows.get("request_log", [])) >= 7 * len(FAKED), sorted(rows)
    assert_no_secret(repr(rows), secrets, "the database")
    for file in tmp_path.glob("turnout.db*"):
        assert_no_secret(file.read_bytes().decode("latin-1"), secrets, file.name)
