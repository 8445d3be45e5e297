"""Bounded connections, over real sockets against a real server: a client that is slow with its
headers or its body is cut off (the body with a 408 in the route's error shape), the cap holds,
a client that goes away mid-body is one log line and a metric, and /metrics counts each drop.
Timeouts are set small; the tests assert on what the client sees, never on how long it took."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from turnout.config import Config, load_config
from turnout.errors import ConfigError

from .conftest import MASTER_KEY, make_config
from .fakes.openai_upstream import FakeOpenAI
from .fakes.script import Reply
from .fakes.servers import free_port

DOC = Path(__file__).resolve().parents[1] / "docs" / "connections.md"
WAIT = 10.0  # seconds a test waits for what should happen after a 0.5 s timeout


def _config(fake_url: str, **server: Any) -> Config:
    # No key-health checks: their warnings about the fake's dead provider are not at issue.
    return make_config(
        fake_url, server={"preload_local": False, **server}, key_health={"enabled": False}
    )


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``WAIT``)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def _response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


def _metric(url: str, name: str, key: str | None = None) -> float:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    text = httpx.get(url + "/metrics", headers=headers).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m is not None, f"{name} not in /metrics"
    return float(m.group(1))


def _eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.02)


CHAT_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
    b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
)


def test_a_connection_that_sends_nothing_is_closed(
    fake_url: str, serve: Callable[[Config], str]
) -> None:
    url = serve(_config(fake_url, header_timeout=0.5))
    with _connect(url) as sock:
        assert _read_until_closed(sock) == b""  # closed, with nothing to answer
    _eventually(lambda: _metric(url, "turnout_header_timeouts_total") == 1)


def test_partial_headers_are_cut_off(fake_url: str, serve: Callable[[Config], str]) -> None:
    url = serve(_config(fake_url, header_timeout=0.5))
    with _connect(url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        assert _read_until_closed(sock) == b""
    assert _metric(url, "turnout_header_timeouts_total") == 1


def test_the_next_request_on_a_kept_alive_connection_has_a_header_deadline_too(
    fake_url: str, serve: Callable[[Config], str]
) -> None:
    url = serve(_config(fake_url, header_timeout=0.5, keep_alive_timeout=30))
    with _connect(url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        first = b""
        while b'"status":"ok"' not in first:
            first += sock.recv(65536)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gat")  # ... and never the rest
        assert _read_until_closed(sock) == b""
    assert _metric(url, "turnout_header_timeouts_total") == 1


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")],
)
def test_a_partial_body_gets_408_in_the_routes_shape(
    fake_url: str, serve: Callable[[Config], str], path: str, shape: str
) -> None:
    url = serve(_config(fake_url, body_timeout=0.5))
    with _connect(url) as sock:
        sock.sendall(CHAT_HEAD.replace(b"/v1/chat/completions", path.encode()) + b'{"model": ')
        status, headers, body = _response(_read_until_closed(sock))
    assert status == 408
    assert headers["connection"] == "close"
    error = orjson.loads(body)
    if shape == "openai":
        assert error["error"]["code"] == "request_timeout"
        assert error["error"]["type"] == "invalid_request_error"
        assert "0.5 s" in error["error"]["message"]
    else:
        assert error == {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "the request body did not arrive within 0.5 s",
            },
        }
    assert _metric(url, "turnout_body_timeouts_total") == 1
    assert _metric(url, 'turnout_client_disconnects_total{stage="body"}') == 0


def test_a_body_nobody_reads_still_has_a_deadline(
    fake_url: str, serve: Callable[[Config], str]
) -> None:
    """A request refused before its body is read (no key: 401) while the body trickles in:
    the answer goes out at once, and the connection is closed at the body deadline."""
    url = serve(_config(fake_url, body_timeout=0.5, keep_alive_timeout=30, master_key=MASTER_KEY))
    with _connect(url) as sock:
        sock.sendall(CHAT_HEAD + b"{")
        status, _, body = _response(_read_until_closed(sock))
    assert status == 401
    assert orjson.loads(body)["error"]["type"] == "authentication_error"
    assert _metric(url, "turnout_body_timeouts_total", MASTER_KEY) == 1


def test_the_connection_cap_holds(fake_url: str, serve: Callable[[Config], str]) -> None:
    url = serve(_config(fake_url, max_connections=3, keep_alive_timeout=30))
    held = []
    for _ in range(3):  # three kept-alive connections, each served once: the cap is reached
        sock = _connect(url)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        answer = b""
        while b'"status":"ok"' not in answer:
            answer += sock.recv(65536)
        held.append(sock)
    with _connect(url) as extra:
        status, headers, body = _response(_read_until_closed(extra))
    assert status == 503
    assert headers["retry-after"] == "1"
    error = orjson.loads(body)["error"]
    assert error["code"] == "too_many_connections"
    assert "3 connections" in error["message"]
    for sock in held:
        sock.close()
    # Below the cap again once the server has seen them close: served as usual. Every 503
    # met while waiting is a refusal too.
    refusals = 1
    deadline = time.monotonic() + WAIT
    while (answer := httpx.get(url + "/metrics")).status_code == 503:
        refusals += 1
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert answer.status_code == 200
    m = re.search(r"^turnout_connections_refused_total (\S+)$", answer.text, re.M)
    assert m is not None and float(m.group(1)) == refusals


def _capture_uvicorn(caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn's loggers do not propagate; and its set-up (when a server starts) replaces
    their handlers: so this runs after the server started."""
    uvicorn = logging.getLogger("uvicorn")
    uvicorn.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="turnout")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_client_gone_mid_body_is_one_info_line_and_a_metric(
    fake_url: str,
    serve: Callable[[Config], str],
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    url = serve(_config(fake_url))
    _capture_uvicorn(caplog)
    server_log = caplog
    try:
        with _connect(url) as sock:
            sock.sendall(CHAT_HEAD.replace(b"/v1/chat/completions", path.encode()) + b'{"mod')
        # The handler saw the disconnect (its debug line) and the protocol counted it.
        _check_one_quiet_line(url, server_log, path)
    finally:
        logging.getLogger("uvicorn").removeHandler(caplog.handler)


def _check_one_quiet_line(url: str, server_log: pytest.LogCaptureFixture, path: str) -> None:
    _eventually(lambda: "client disconnected while the body was read" in server_log.text)
    _eventually(lambda: _metric(url, 'turnout_client_disconnects_total{stage="body"}') == 1)
    records = server_log.records
    assert [r for r in records if r.levelno >= logging.ERROR] == []
    assert not any(r.exc_info for r in records)
    assert "Traceback" not in server_log.text
    gone = [r for r in records if "went away while sending the body" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO
    assert path in gone[0].getMessage()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_client_gone_mid_stream_is_counted_and_quiet(
    fake: FakeOpenAI,
    fake_url: str,
    serve: Callable[[Config], str],
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    """A user pressing "stop": the client closes while the answer streams."""
    fake.then(Reply(text="one two three four five six seven eight", chunk_delay=0.2))
    url = serve(_config(fake_url))
    _capture_uvicorn(caplog)
    body = orjson.dumps(
        {"model": "single", "max_tokens": 50, "stream": True, "messages": [
            {"role": "user", "content": "count"}
        ]}
    )  # fmt: skip
    head = (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        with _connect(url) as sock:
            sock.sendall(head + body)
            answer = b""
            while b"one" not in answer:  # the answer has started streaming
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
        _eventually(lambda: _metric(url, 'turnout_client_disconnects_total{stage="response"}') == 1)
        # The gateway's and uvicorn's records (the fake upstream, cut off, logs its own).
        server = [r for r in caplog.records if r.name.startswith(("turnout", "uvicorn"))]
        assert [r for r in server if r.levelno >= logging.ERROR] == []
        assert not any(r.exc_info for r in server)
    finally:
        logging.getLogger("uvicorn").removeHandler(caplog.handler)


def test_the_documented_example_loads(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    config_file = tmp_path / "turnout.yaml"
    config_file.write_text(block.group(1))
    server = load_config(config_file).server
    example = yaml.safe_load(block.group(1))["server"]
    assert server.header_timeout == example["header_timeout"] == 10
    assert server.body_timeout == example["body_timeout"] == 30
    assert server.keep_alive_timeout == example["keep_alive_timeout"] == 5
    assert server.max_connections == example["max_connections"] == 2048
    assert Config().server.model_dump() == server.model_dump()  # the example shows the defaults


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TURNOUT_CONFIG", raising=False)
    monkeypatch.setenv("TURNOUT_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("TURNOUT_MAX_CONNECTIONS", "0")
    with pytest.raises(ConfigError, match=r"\$TURNOUT_MAX_CONNECTIONS: server.max_connections"):
        load_config(None)
    monkeypatch.setenv("TURNOUT_MAX_CONNECTIONS", "10")
    server = load_config(None).server
    assert (server.header_timeout, server.max_connections) == (2.5, 10)


def test_turnout_serve_flags_bound_its_connections(tmp_path: Path) -> None:
    """The real ``turnout serve`` process, limits from its flags: an idle connection is
    closed, one over the cap is refused, and /metrics counts both."""
    port = free_port()
    config = tmp_path / "turnout.yaml"
    config.write_text("server: {preload_local: false}\ndatabase_url: none\nlog_level: warning\n")
    argv = [sys.executable, "-m", "turnout.cli", "serve", "--config", str(config)]
    argv += ["--port", str(port), "--header-timeout", "0.5", "--max-connections", "2"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _eventually(lambda: _up(url))
        # Three idle connections, two allowed: one at least is refused at once (two, if the
        # server has not yet seen the readiness probe's connection close); the others are
        # closed at the header deadline.
        socks = [_connect(url) for _ in range(3)]
        seen = []
        for sock in socks:
            with sock:
                raw = _read_until_closed(sock)
            seen.append(_response(raw)[0] if raw else "closed")
        assert 503 in seen and "closed" in seen
        assert set(seen) <= {503, "closed"}
        text = httpx.get(url + "/metrics").text
        assert f"turnout_connections_refused_total {float(seen.count(503))}" in text
        m = re.search(r"^turnout_header_timeouts_total (\S+)$", text, re.M)
        assert m is not None and float(m.group(1)) >= seen.count("closed")
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=WAIT)
    assert b"Traceback" not in stderr


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
