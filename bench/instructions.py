"""Instructions per request, counted by valgrind's callgrind: the gateway's own cost on the hot
path as a figure that a busy machine does not disturb (wall-clock and CPU-time figures do;
``perf stat -e instructions`` is not supported on this machine's kernel).

    .venv/bin/python -m bench.instructions                  # 300 requests of each kind
    .venv/bin/python -m bench.instructions --requests 500
    .venv/bin/python -m bench.instructions --no-request-log  # the request path alone
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python -m bench.instructions  # compare

One Turnout worker runs under callgrind in front of the mock upstream (not under callgrind).
Instrumentation is switched on only after start-up and a warm-up, around sequential non-streamed
chat completions, then around streamed ones (64 deltas, ``mock-paced`` without the pacing).
Reported: instructions per request for each kind (the callgrind total divided by the requests
sent). The count repeats within about 1 % between runs of the same code; timers (the request
log's one-second batch write) account for most of the spread.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .gateways import MASTER_KEY, free_port, start_mock, turnout_config

BODY = {"model": "mock", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 64}


def _post(port: int, body: dict[str, object]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            json.dumps(body),
            {"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"},
        )
        reply = conn.getresponse()
        reply.read()
        if reply.status != 200:
            raise RuntimeError(f"gateway answered {reply.status}")
    finally:
        conn.close()


def _wait_ready(port: int, popen: subprocess.Popen[bytes], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"turnout exited with {popen.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("turnout under callgrind did not get ready")


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _total(out_dir: Path) -> int:
    """The sum of the ``totals:`` lines of every dump callgrind wrote (``summary:`` can read 0
    when instrumentation was switched on after start)."""
    total = 0
    for path in out_dir.glob("callgrind.out*"):
        total += sum(
            map(int, re.findall(r"^totals: (\d+)", path.read_text(errors="replace"), re.M))
        )
    return total


def measure(
    requests: int, warmup: int, log_dir: Path, request_log: bool = True
) -> dict[str, float]:
    mock = start_mock(log_dir)
    port = free_port()
    cfg = log_dir / "turnout.yaml"
    overlay: dict[str, object] = {
        "providers": {"mockpaced": {"base_url": f"http://127.0.0.1:{mock.port}/n64/v1"}},
        # Off, the figure leaves out the request log's batched writes, whose cost per
        # request depends on how many requests each one-second batch holds.
        "request_log": {"enabled": request_log},
    }
    cfg.write_text(yaml.safe_dump(turnout_config(mock.port, overlay)))
    exe = Path(sys.executable).parent / "turnout"
    results: dict[str, float] = {}
    for kind, body in (("chat", BODY), ("chat stream", {**BODY, "stream": True})):
        if kind == "chat stream":
            body = {**body, "model": "mock-paced"}
        out_dir = log_dir / kind.replace(" ", "-")
        out_dir.mkdir()
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out_dir}/callgrind.out.%p",
            sys.executable,
            str(exe),
            "serve",
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        with open(log_dir / f"{out_dir.name}.log", "wb") as log:
            popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(port, popen)
            for _ in range(warmup):
                _post(port, body)
            _control(popen.pid, "-i", "on")
            for _ in range(requests):
                _post(port, body)
            _control(popen.pid, "-i", "off")
            _control(popen.pid, "-d")
        finally:
            popen.terminate()
            popen.wait(60)
        results[kind] = _total(out_dir) / requests
    mock.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--no-request-log", action="store_true", help="request_log.enabled: false")
    args = parser.parse_args(argv)
    import turnout

    print(f"turnout from {Path(turnout.__file__).parent}")
    with tempfile.TemporaryDirectory(prefix="turnout-ir-") as tmp:
        keep = Path(os.environ.get("KEEP") or tmp)
        figures = measure(args.requests, args.warmup, keep, not args.no_request_log)
    for kind, per_request in figures.items():
        print(f"{kind:12} {per_request / 1e6:8.3f} M instructions per request")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
