"""The `turnout` command as a user runs it: a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import UPSTREAM_KEY, needs_local
from .fakes.openai_upstream import FakeOpenAI, Reply


def turnout(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "turnout.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_config(tmp_path: Path, fake_url: str) -> Path:
    path = tmp_path / "turnout.yaml"
    path.write_text(
        "providers:\n"
        f"  acme: {{host: custom, base_url: '{fake_url}', api_key: '${{ACME_KEY}}'}}\n"
        "routes:\n"
        "  - name: acme-route\n"
        "    deployments: [acme:acme-large]\n"
        "models:\n"
        "  - {id: 'acme:acme-large', input_price: 2.0, output_price: 8.0, aliases: [big]}\n"
    )
    return path


def test_chat_streams_then_prints_a_summary(
    tmp_path: Path, fake: FakeOpenAI, fake_url: str
) -> None:
    config = write_config(tmp_path, fake_url)
    notes = tmp_path / "notes.txt"
    notes.write_text("The launch code is 4417.")
    fake.then(Reply(text="It is 4417.", prompt_tokens=1000, completion_tokens=500))
    out = turnout(
        "chat",
        "What is the code?",
        "-f",
        str(notes),
        "--model",
        "acme-route",
        "--config",
        str(config),
        cwd=tmp_path,
        env={"ACME_KEY": UPSTREAM_KEY},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "It is 4417."
    summary = out.stderr.strip().splitlines()[-1]
    assert "acme" in summary and "acme-large" in summary and "ttft" in summary
    assert "1000 in / 500 out" in summary and "$0.006000" in summary  # 1000*2 + 500*8 per million
    sent = fake.calls[-1]["body"]["messages"][-1]["content"]
    assert (
        "notes.txt" in sent
        and "The launch code is 4417." in sent
        and sent.endswith("What is the code?")
    )


def test_chat_no_stream_and_models(tmp_path: Path, fake: FakeOpenAI, fake_url: str) -> None:
    config = write_config(tmp_path, fake_url)
    fake.then(Reply(text="whole"))
    out = turnout(
        "--config",
        str(config),
        "chat",
        "hi",
        "--model",
        "big",
        "--no-stream",
        "--strategy",
        "quality",
        cwd=tmp_path,
        env={"ACME_KEY": UPSTREAM_KEY},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "whole"
    assert "stream" not in fake.calls[-1]["body"] and "turnout" not in fake.calls[-1]["body"]
    assert " · quality · " in out.stderr.strip().splitlines()[-1]
    listing = turnout("models", "--config", str(config), cwd=tmp_path, env={"ACME_KEY": "x"})
    assert "acme:acme-large" in listing.stdout and "local:smollm2-135m-instruct" in listing.stdout
    assert "acme-route" in listing.stdout


def test_bad_config_is_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: lots\n")
    out = turnout("models", "--config", str(bad), cwd=tmp_path)
    assert out.returncode == 1
    assert str(bad) in out.stderr and "server.port" in out.stderr and "Traceback" not in out.stderr


def test_missing_key_names_the_variable(tmp_path: Path, fake_url: str) -> None:
    out = turnout(
        "chat", "hi", "--model", "groq:llama-3.1-8b-instant", cwd=tmp_path, env={"GROQ_API_KEY": ""}
    )
    assert out.returncode == 1 and "GROQ_API_KEY" in out.stderr


@needs_local
@pytest.mark.local_model
def test_chat_with_no_config_uses_the_embedded_model(tmp_path: Path) -> None:
    out = turnout("chat", "Say hi.", "--max-tokens", "5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "local" in out.stderr and "cost $0.000000" in out.stderr


def test_serve_with_two_workers(tmp_path: Path, fake: FakeOpenAI, fake_url: str) -> None:
    """`turnout serve --workers 2`: two processes share the port, each with the config."""
    import time

    import httpx

    from .fakes.servers import free_port, stop_process

    config = write_config(tmp_path, fake_url)
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "turnout.cli", "serve", "--config", str(config)]
            + ["--port", str(port), "--workers", "2"],
            cwd=tmp_path,
            env={**os.environ, "ACME_KEY": UPSTREAM_KEY, "TURNOUT_PRELOAD_LOCAL": "false"},
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        fake.then(Reply(text="from a worker"))
        out = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "big", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert out.status_code == 200, out.text
        assert out.json()["choices"][0]["message"]["content"] == "from a worker"
        workers = subprocess.run(
            ["pgrep", "-g", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(workers) >= 3  # the supervisor and its two workers
    finally:
        stop_process(proc, group=True)


def test_serve_rejects_zero_workers(tmp_path: Path) -> None:
    out = turnout("serve", "--workers", "0", cwd=tmp_path)
    assert out.returncode == 2
    assert "--workers" in out.stderr and "at least 1" in out.stderr
