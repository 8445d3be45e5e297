"""Start, probe and stop the processes under test: the mock upstream, Turnout and LiteLLM.

LiteLLM lives in its own virtual environment (``bench/.venv-litellm``, created on first use)
so it never becomes a dependency of the project.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "LITELLM_VERSION",
    "Proc",
    "ensure_litellm",
    "free_port",
    "start_litellm",
    "start_mock",
    "start_turnout",
    "tree_cpu_seconds",
    "tree_rss",
]

HERE = Path(__file__).resolve().parent
LITELLM_VERSION = "1.98.1"
LITELLM_VENV = HERE / ".venv-litellm"
MASTER_KEY = "sk-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
        except FileNotFoundError:
            continue
    return out


def tree_pids(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and all its live descendants."""
    ticks = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except FileNotFoundError:
            continue
    return total


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    ready_s: float = float("nan")
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss(self) -> int:
        return tree_rss(self.pid)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM the process tree and wait; ``kill``: SIGKILL at once (a crash)."""
        if self.popen.poll() is None:
            # The process leads its own group (start_new_session): signal the whole tree.
            os.killpg(self.popen.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


def _spawn(name: str, argv: list[str], port: int, log_dir: Path, env: dict[str, str]) -> Proc:
    log = log_dir / f"{name}.log"
    with open(log, "wb") as fh:  # the child writes to its own copy of the descriptor
        popen = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    return Proc(name, popen, port, log=log)


def _wait_ready(proc: Proc, path: str, started: float, timeout: float = 120.0) -> None:
    """Poll ``path`` until it answers 200; record seconds since ``started``. A process that
    never gets ready is stopped before the error is raised (no orphan keeps burning CPU)."""
    try:
        _poll_ready(proc, path, started, timeout)
    except BaseException:
        proc.stop()
        raise


def _poll_ready(proc: Proc, path: str, started: float, timeout: float) -> None:
    url = f"http://127.0.0.1:{proc.port}{path}"
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if proc.popen.poll() is not None:
            tail = proc.log.read_text(errors="replace")[-2000:] if proc.log else ""
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    proc.ready_s = time.perf_counter() - started
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{proc.name} not ready after {timeout:g}s (log: {proc.log})")


def start_mock(
    log_dir: Path, procs: int = 1, *, port: int | None = None, name: str = "mock"
) -> Proc:
    """The mock upstream in its own process, on ``port`` (default: a free one)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "bench.mock_upstream", "--port", str(port)]
    argv += ["--procs", str(procs)]
    proc = _spawn(name, argv, port, log_dir, {"PYTHONPATH": str(HERE.parent)})
    started = time.perf_counter()
    deadline = started + 30
    while time.perf_counter() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            proc.ready_s = time.perf_counter() - started
            return proc
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("mock upstream did not start")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def turnout_config(mock_port: int, overlay: dict[str, Any] | None = None) -> dict[str, Any]:
    """Routes ``mock`` (the fast answer) and ``mock-paced`` (64 deltas, 20 ms apart)."""
    base = f"http://127.0.0.1:{mock_port}"
    config: dict[str, Any] = {
        "server": {"preload_local": False, "master_key": MASTER_KEY},
        "log_level": "warning",
        "providers": {
            "mock": {"host": "custom", "base_url": f"{base}/v1", "api_key": "sk-mock"},
            "mockpaced": {
                "host": "custom",
                "base_url": f"{base}/n64/p20/v1",
                "api_key": "sk-mock",
            },
        },
        "routes": [
            {"name": "mock", "deployments": ["mock:mock-model"]},
            {"name": "mock-paced", "deployments": ["mockpaced:mock-model"]},
        ],
    }
    return _deep_merge(config, overlay or {})


def start_turnout(
    mock_port: int, workers: int, log_dir: Path, overlay: dict[str, Any] | None = None
) -> Proc:
    port = free_port()
    cfg = log_dir / f"turnout-w{workers}.yaml"
    cfg.write_text(yaml.safe_dump(turnout_config(mock_port, overlay)))
    exe = shutil.which("turnout", path=str(Path(sys.executable).parent)) or "turnout"
    argv = [exe, "serve", "--config", str(cfg), "--port", str(port), "--workers", str(workers)]
    started = time.perf_counter()
    proc = _spawn(f"turnout-w{workers}", argv, port, log_dir, {})
    _wait_ready(proc, "/health", started)
    return proc


def litellm_python() -> Path:
    return LITELLM_VENV / "bin" / "python"


def ensure_litellm() -> Path:
    """Create ``bench/.venv-litellm`` with ``litellm[proxy]`` pinned, once."""
    marker = LITELLM_VENV / f".ready-{LITELLM_VERSION}"
    if marker.exists():
        return litellm_python()
    print(f"creating {LITELLM_VENV} with litellm[proxy]=={LITELLM_VERSION} (once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(litellm_python()), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    marker.touch()
    return litellm_python()


def litellm_config(mock_port: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{mock_port}"

    def model(name: str, api_base: str) -> dict[str, Any]:
        return {
            "model_name": name,
            "litellm_params": {
                "model": "openai/mock-model",
                "api_base": api_base,
                "api_key": "sk-mock",
            },
        }

    return {
        "model_list": [model("mock", f"{base}/v1"), model("mock-paced", f"{base}/n64/p20/v1")],
        # As LiteLLM's own benchmark page configures it: no callbacks, no retries.
        "litellm_settings": {
            "telemetry": False,
            "drop_params": True,
            "callbacks": [],
            "num_retries": 0,
            "request_timeout": 30,
        },
        "general_settings": {"master_key": MASTER_KEY},
    }


def start_litellm(mock_port: int, workers: int, log_dir: Path) -> Proc:
    port = free_port()
    cfg = log_dir / f"litellm-w{workers}.yaml"
    cfg.write_text(yaml.safe_dump(litellm_config(mock_port)))
    exe = LITELLM_VENV / "bin" / "litellm"
    argv = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", str(workers)]
    # No access log line per request (Turnout writes none by default either).
    log_config = log_dir / "litellm-logging.json"
    log_config.write_text(
        '{"version": 1, "disable_existing_loggers": false,'
        ' "loggers": {"uvicorn.access": {"level": "WARNING"}}}'
    )
    argv += ["--log_config", str(log_config)]
    # uvicorn restarts a worker that misses its health check (5 s by default); LiteLLM's
    # import alone can take longer than that on a busy machine, so it would never be ready.
    argv += ["--timeout_worker_healthcheck", "120"]
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    started = time.perf_counter()
    proc = _spawn(f"litellm-w{workers}", argv, port, log_dir, env)
    _wait_ready(proc, "/health/liveliness", started)
    return proc
