"""Rolling restart under load: three ``turnout serve`` replicas behind HAProxy (Debian's),
sharing the machine's PostgreSQL (request log) and Redis (limits, circuits), the bench's mock
upstream, mixed stream and non-stream load; each replica in turn gets SIGTERM, exits, and is
started again. Prints client-visible failures, requests missing from the request log, and
p99 latency during the roll against before it.

    python -m bench.rolling_restart [--seconds 60] [--clients 12]     (make bench-roll)

Needs ``haproxy`` on the PATH, PostgreSQL on 127.0.0.1:5432 (trust, database ``test``) and
Redis on 127.0.0.1:6379, as the test suite does. Each run uses a schema and a key prefix of
its own and drops them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .gateways import MASTER_KEY, Proc, _spawn, _wait_ready, free_port, start_mock, turnout_config

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


@dataclass
class Outcome:
    started: float
    latency: float
    ok: bool
    stream: bool
    request_id: str
    during_roll: bool
    error: str = ""


@dataclass
class Result:
    outcomes: list[Outcome] = field(default_factory=list)
    logged_ids: set[str] = field(default_factory=set)
    restarts: list[float] = field(default_factory=list)
    """Seconds each replica took from SIGTERM to exit."""

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def lost(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok and o.request_id not in self.logged_ids]

    def p99(self, during: bool) -> float:
        values = [o.latency for o in self.outcomes if o.ok and o.during_roll is during]
        return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


def _haproxy_cfg(lb_port: int, ports: list[int]) -> str:
    servers = "\n".join(f"    server gw{i} 127.0.0.1:{port} check" for i, port in enumerate(ports))
    return f"""global
    log stdout format raw local0 err
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
    retry-on conn-failure
frontend gateway
    bind 127.0.0.1:{lb_port}
    default_backend turnout
backend turnout
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    timeout check 3s
    default-server inter 1s fall 2 rise 1
{servers}
"""


class Cluster:
    def __init__(self, work: Path, mock_port: int, replicas: int, grace: float) -> None:
        self.work = work
        self.schema = f"turnout_roll_{uuid.uuid4().hex[:10]}"
        self.prefix = f"turnout-roll-{uuid.uuid4().hex[:10]}:"
        self.ports = [free_port() for _ in range(replicas)]
        self.lb_port = free_port()
        db = f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{self.schema}"
        overlay = {
            "database_url": db,
            "redis_url": REDIS_URL,
            "redis_prefix": self.prefix,
            "request_log": {"flush_interval": 0.2},
            "key_health": {"enabled": False},
            "log_level": "info",
            "server": {"shutdown_grace_period": grace, "shutdown_timeout": 30},
        }
        self.config = work / "turnout.yaml"
        self.config.write_text(yaml.safe_dump(turnout_config(mock_port, overlay)))
        self.procs: list[Proc | None] = [None] * replicas
        self.starts = [0] * replicas
        self.haproxy: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
        # Migrate once, as the Compose file's `migrate` service does.
        subprocess.run(
            [sys.executable, "-m", "turnout.cli", "-c", str(self.config), "db", "upgrade"],
            check=True,
            capture_output=True,
        )
        for i in range(len(self.ports)):
            self.start_replica(i)
        cfg = self.work / "haproxy.cfg"
        cfg.write_text(_haproxy_cfg(self.lb_port, self.ports))
        haproxy = shutil.which("haproxy") or "haproxy"
        with (self.work / "haproxy.log").open("wb") as log:
            self.haproxy = subprocess.Popen(
                [haproxy, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while not self._lb_ready():
            if time.monotonic() > deadline or self.haproxy.poll() is not None:
                raise RuntimeError(f"haproxy did not start: {self.work / 'haproxy.log'}")
            time.sleep(0.2)

    def _lb_ready(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            url = f"http://127.0.0.1:{self.lb_port}/health/ready"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start_replica(self, i: int) -> None:
        argv = [sys.executable, "-m", "turnout.cli", "-c", str(self.config), "serve"]
        argv += ["--port", str(self.ports[i])]
        started = time.perf_counter()
        self.starts[i] += 1
        name = f"replica{i}-{self.starts[i]}"
        proc = _spawn(name, argv, self.ports[i], self.work, {})
        _wait_ready(proc, "/health/ready", started, timeout=60)
        self.procs[i] = proc

    def stop_replica(self, i: int) -> float:
        proc = self.procs[i]
        assert proc is not None
        t0 = time.perf_counter()
        proc.popen.send_signal(signal.SIGTERM)
        proc.popen.wait(45)
        self.procs[i] = None
        return time.perf_counter() - t0

    def logged_ids(self) -> set[str]:
        import psycopg

        with psycopg.connect(PG_ADMIN) as conn:
            rows = conn.execute(f'SELECT request_id FROM "{self.schema}".request_log').fetchall()
        return {r[0] for r in rows}

    def close(self) -> None:
        for proc in self.procs:
            if proc is not None:
                proc.stop()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(10)
        import psycopg
        import redis

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


async def _load(url: str, clients: int, until: float, rolling: Any, result: Result) -> None:
    import httpx

    async def one(client: httpx.AsyncClient, n: int) -> None:
        stream = n % 2 == 0
        request_id = uuid.uuid4().hex
        body: dict[str, Any] = {
            "model": "mock-paced" if stream else "mock",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        }
        headers = {**AUTH, "x-request-id": request_id}
        during = rolling()
        t0 = time.perf_counter()
        ok, error = False, ""
        try:
            async with client.stream(
                "POST", url + "/v1/chat/completions", json=body, headers=headers
            ) as r:
                text = (await r.aread()).decode()
            if r.status_code != 200:
                error = f"HTTP {r.status_code}: {text[:200]}"
            elif stream and (not text.rstrip().endswith("data: [DONE]") or '"error"' in text):
                error = f"stream did not end cleanly: {text[-200:]}"
            else:
                ok = True
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        result.outcomes.append(
            Outcome(
                t0, time.perf_counter() - t0, ok, stream, request_id, during or rolling(), error
            )
        )

    async def worker(k: int) -> None:
        n = k
        async with httpx.AsyncClient(timeout=60) as client:
            while time.monotonic() < until:
                await one(client, n)
                n += 1

    await asyncio.gather(*(worker(k) for k in range(clients)))


def run(
    seconds: float, clients: int, replicas: int = 3, grace: float = 4.0, keep: Path | None = None
) -> Result:
    """The whole experiment; the test suite calls it with a short ``seconds``. ``keep``: a
    directory for the logs (a temporary one otherwise)."""
    result = Result()
    with tempfile.TemporaryDirectory() as tmp:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        mock = start_mock(work)
        cluster = Cluster(work, mock.port, replicas, grace)
        try:
            cluster.start()
            state = {"rolling": False}
            until = time.monotonic() + seconds
            url = f"http://127.0.0.1:{cluster.lb_port}"

            def roll() -> None:
                # A third of the run as the "before" baseline, then each replica in turn.
                time.sleep(seconds / 3)
                state["rolling"] = True
                for i in range(replicas):
                    result.restarts.append(cluster.stop_replica(i))
                    cluster.start_replica(i)
                    time.sleep(1.5)  # let the balancer see it ready before the next one
                state["rolling"] = False

            async def main() -> None:
                roller = asyncio.get_running_loop().run_in_executor(None, roll)
                await _load(url, clients, until, lambda: state["rolling"], result)
                await roller

            asyncio.run(main())
            for i in range(replicas):  # stop every replica: their request logs flush
                cluster.stop_replica(i)
            result.logged_ids = cluster.logged_ids()
        finally:
            cluster.close()
            mock.stop()
    return result


def report(result: Result) -> str:
    streams = sum(o.stream for o in result.outcomes)
    lines = [
        f"requests: {len(result.outcomes)} ({streams} streams), "
        f"during the roll: {sum(o.during_roll for o in result.outcomes)}",
        f"client-visible failures: {len(result.failures)} (goal 0)",
        f"missing from the request log: {len(result.lost)} (goal 0)",
        f"p99 latency before the roll: {result.p99(False) * 1000:.0f} ms, "
        f"during it: {result.p99(True) * 1000:.0f} ms",
        "SIGTERM to exit per replica: " + ", ".join(f"{s:.1f} s" for s in result.restarts),
    ]
    lines += [f"  failure: {o.error}" for o in result.failures[:5]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rolling_restart", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument(
        "--grace",
        type=float,
        default=4.0,
        help="server.shutdown_grace_period (HAProxy needs 2 failed checks 1 s apart)",
    )
    parser.add_argument("--keep", type=Path, help="keep the logs in this directory")
    args = parser.parse_args(argv)
    if shutil.which("haproxy") is None:
        print("haproxy is not installed (apt-get install haproxy)", file=sys.stderr)
        return 2
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    result = run(args.seconds, args.clients, grace=args.grace, keep=args.keep)
    print(report(result))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0 if not result.failures and not result.lost else 1


if __name__ == "__main__":
    raise SystemExit(main())
