"""`turnout bench` as a user runs it (a real subprocess against the fake upstream and the
embedded model), and its prompt loading and statistics. Nothing here is timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turnout import benchmark
from turnout.errors import ConfigError

from .conftest import UPSTREAM_KEY, needs_local
from .fakes.openai_upstream import Fail, FakeOpenAI, Reply
from .test_cli import turnout, write_config


def _bench_json(folder: Path) -> dict:
    files = sorted(folder.glob("bench-*.json"))
    assert len(files) == 1
    return json.loads(files[0].read_text())


def test_bench_two_models_table_json_and_chart(
    tmp_path: Path, fake: FakeOpenAI, fake_url: str
) -> None:
    config = write_config(tmp_path, fake_url)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Say one.\n\nSay two.\n")
    fake.then(*[Reply(text="one two three", prompt_tokens=10, completion_tokens=3)] * 8)
    out = turnout(
        "bench",
        "-m",
        "acme-route",
        "-m",
        "acme:acme-small",
        "--prompts",
        str(prompts),
        "-n",
        "2",
        "--concurrency",
        "3",
        "--max-tokens",
        "8",
        "--out",
        str(tmp_path / "results"),
        "--config",
        str(config),
        cwd=tmp_path,
        env={"ACME_KEY": UPSTREAM_KEY},
    )
    assert out.returncode == 0, out.stderr
    assert "2 model(s) x 2 prompt(s) x 2 sample(s) = 8 requests" in out.stderr
    assert "8/8 requests" in out.stderr  # the progress bar reached the end
    assert "ETA" in out.stderr and "elapsed" in out.stderr
    assert len([ln for ln in out.stderr.splitlines() if "requests ·" in ln]) <= 4  # not a tty
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["MODEL", "REQ", "ERR", "TTFT"]
    route = next(x for x in lines if x.startswith("acme-route"))
    assert route.split()[1:3] == ["4", "0"]
    # acme-large has prices in the config (2 and 8 USD per million): 4 x (10*2 + 3*8) / 1e6
    assert "0.000176" in route
    small = next(x for x in lines if x.startswith("acme:acme-small"))
    assert small.split()[-1] == "unknown"  # no price in the catalogue: never a made-up zero

    data = _bench_json(tmp_path / "results")
    assert data["models"] == ["acme-route", "acme:acme-small"]
    assert data["prompts"] == ["Say one.", "Say two."]
    assert len(data["samples"]) == 8
    summary = {m["model"]: m for m in data["summary"]}
    assert summary["acme-route"]["mean_output_tokens"] == 3
    assert summary["acme-route"]["mean_chars"] == len("one two three")
    assert summary["acme-route"]["ttft_p50"] > 0
    assert summary["acme-route"]["tokens_per_s"] > 0
    sent = [c["body"] for c in fake.calls[-8:]]
    assert all(b["max_tokens"] == 8 and b["stream"] is True for b in sent)
    png = sorted((tmp_path / "results").glob("bench-*.png"))
    assert len(png) == 1 and png[0].read_bytes()[:4] == b"\x89PNG"


def test_bench_counts_errors_per_model(tmp_path: Path, fake: FakeOpenAI, fake_url: str) -> None:
    config = write_config(tmp_path, fake_url)
    fake.then(Fail(401, "bad key"), Reply(text="fine"))
    out = turnout(
        "bench",
        "-m",
        "acme-route",
        "-n",
        "1",
        "--prompts",
        str(_two_prompts(tmp_path)),
        "--no-chart",
        "--out",
        str(tmp_path / "r"),
        "--config",
        str(config),
        cwd=tmp_path,
        env={"ACME_KEY": UPSTREAM_KEY},
    )
    assert out.returncode == 0, out.stderr
    assert "1 error" in out.stderr
    row = next(x for x in out.stdout.splitlines() if x.startswith("acme-route"))
    assert row.split()[1:3] == ["2", "1"]
    assert "1 x AuthenticationError" in out.stdout
    assert not list((tmp_path / "r").glob("*.png"))
    assert _bench_json(tmp_path / "r")["summary"][0]["error_kinds"] == {"AuthenticationError": 1}


def test_bench_unknown_model_fails_before_any_request(
    tmp_path: Path, fake: FakeOpenAI, fake_url: str
) -> None:
    config = write_config(tmp_path, fake_url)
    before = len(fake.calls)
    out = turnout(
        "bench",
        "-m",
        "no-such-model",
        "--config",
        str(config),
        "--out",
        str(tmp_path),
        cwd=tmp_path,
        env={"ACME_KEY": UPSTREAM_KEY},
    )
    assert out.returncode == 1
    assert "no-such-model" in out.stderr and "Traceback" not in out.stderr
    assert len(fake.calls) == before


def _two_prompts(tmp_path: Path) -> Path:
    path = tmp_path / "two.json"
    path.write_text(json.dumps(["First?", "Second?"]))
    return path


@needs_local
@pytest.mark.local_model
def test_bench_on_the_embedded_model(tmp_path: Path) -> None:
    out = turnout(
        "bench",
        "-m",
        "smollm2",
        "-n",
        "1",
        "--max-tokens",
        "4",
        "--prompts",
        str(_two_prompts(tmp_path)),
        "--out",
        str(tmp_path / "r"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    summary = _bench_json(tmp_path / "r")["summary"][0]
    assert summary["model"] == "smollm2" and summary["errors"] == 0
    assert 1 <= summary["mean_output_tokens"] <= 4
    assert summary["cost"] == 0.0  # the embedded model is free, and says so
    assert summary["ttft_p50"] <= summary["total_p50"]


def test_load_prompts_formats(tmp_path: Path) -> None:
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "a"}\n\n"b"\n')
    assert benchmark.load_prompts(jsonl) == ["a", "b"]
    arr = tmp_path / "p.json"
    arr.write_text('["x", " y "]')
    assert benchmark.load_prompts(arr) == ["x", "y"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ConfigError, match="no prompts"):
        benchmark.load_prompts(empty)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="prompt 1 is not a non-empty string"):
        benchmark.load_prompts(bad)
    with pytest.raises(ConfigError, match="cannot read prompts"):
        benchmark.load_prompts(tmp_path / "missing.txt")


def test_summarise_percentiles_rate_and_cost() -> None:
    samples = [
        benchmark.Sample("m", 0, ttft=0.1 * i, total=1.0 * i, output_tokens=10, chars=40, cost=0.5)
        for i in range(1, 11)
    ]
    samples.append(benchmark.Sample("m", 0, error="RateLimitError: slow down"))
    (s,) = benchmark.summarise(samples)
    assert (s.requests, s.errors) == (11, 1)
    assert s.ttft_p50 == pytest.approx(0.5) and s.ttft_p95 == pytest.approx(1.0)
    assert s.total_p50 == pytest.approx(5.0)
    assert s.tokens_per_s == pytest.approx(10 / 6)  # nearest-rank median of 10/i, i in 1..10
    assert s.cost == pytest.approx(5.0)
    assert s.error_kinds == {"RateLimitError": 1}
