"""Run an aiohttp app or an ASGI app on a loopback port in a background thread, or a real
``turnout serve`` process; wait for a gateway to be ready, and stop one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web


def stop_process(proc: subprocess.Popen[bytes], *, group: bool = False, grace: float = 60) -> None:
    """Stop a server started by a test: SIGTERM (to its process group with ``group``), up to
    ``grace`` seconds for a clean shutdown (generous: a loaded machine slows it down), then
    SIGKILL; always reaped, so no child outlives its test or warns "still running"."""

    def send(sig: int) -> None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass  # already gone

    if proc.poll() is None:
        send(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
    proc.wait()
    if group:
        send(signal.SIGKILL)  # a worker the supervisor left behind


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def turnout_serve(
    config: Path, log: Path, *args: str, ready: str | None = "/health/ready", wait: float = 60
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real ``turnout -c CONFIG serve`` process on a free port with ``args`` added, its output
    in ``log`` and no shutdown grace; yields it and its URL once ``ready`` answers 200 (at
    once with ``ready=None``, for a test that waits its own way), and stops it on the way out.
    """
    port = free_port()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "turnout.cli", "-c", str(config), "serve"]
            + ["--port", str(port), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TURNOUT_SHUTDOWN_GRACE_PERIOD": "0"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        if ready is not None:
            wait_ready(url, proc, log, ready, wait)
        yield proc, url
    finally:
        stop_process(proc)


def wait_ready(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    path: str = "/health/ready",
    wait: float = 60,
) -> None:
    """Return once the gateway at ``url`` answers 200 on ``path``; fail with the tail of its
    ``log`` if its process exits or ``wait`` seconds pass first."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gateway exited: {log.read_text()[-3000:]}"
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gateway did not start: {log.read_text()[-3000:]}")


class AiohttpThread:
    def __init__(self, app: web.Application, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.port = free_port()
        self.ssl_context = ssl_context
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.5)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        if self.ssl_context is None:
            self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> AiohttpThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    async def _close_tls(self) -> None:
        await self._runner.cleanup()

    def stop(self) -> None:
        if self.ssl_context is not None:
            # TLS connections need loop turns to shut down: close them while the loop runs.
            asyncio.run_coroutine_threadsafe(self._close_tls(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class UvicornThread:
    def __init__(self, app: Any) -> None:
        import uvicorn

        from turnout.server.protocol import uvicorn_options

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The same protocol as ``turnout serve``: connection limits from the app's config.
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            **uvicorn_options(),
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> UvicornThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(15)


def fake_fixtures(make: Callable[[], Any]) -> tuple[Any, Any, Any]:
    """The ``server`` (one per module), ``fake`` (reset for each test) and ``url`` fixtures of
    a fake upstream; a test module binds them: ``server, fake, url = fake_fixtures(FakeX)``."""

    @pytest.fixture(scope="module")
    def server() -> Iterator[tuple[Any, AiohttpThread]]:
        upstream = make()
        thread = AiohttpThread(upstream.app).start()
        yield upstream, thread
        thread.stop()

    @pytest.fixture
    def fake(server: tuple[Any, AiohttpThread]) -> Any:
        server[0].reset()
        return server[0]

    @pytest.fixture
    def url(server: tuple[Any, AiohttpThread]) -> str:
        return server[1].url

    return server, fake, url
