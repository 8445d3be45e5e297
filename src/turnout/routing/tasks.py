"""Built-in task labels (their example prompts, which define them for the classifier, are
data: ``turnout/data/tasks.yaml``) and the keyword baseline the classifier is measured against.

A route may use any of these labels on its deployments (``tasks: [code_generation]``), add
examples to one (``tasks: {code_generation: ["..."]}`` on the route) or define its own labels
the same way.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType

from ..errors import ConfigError

__all__ = ["DATASET_TASKS", "builtin_tasks", "keyword_task", "load_labelled"]


@cache
def builtin_tasks() -> Mapping[str, tuple[str, ...]]:
    """The built-in labels and their example prompts, from ``turnout/data/tasks.yaml`` (read
    on first use, never at import), in the file's order."""
    import yaml

    text = resources.files("turnout").joinpath("data/tasks.yaml").read_text("utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rows = yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    if not isinstance(rows, dict) or not all(
        isinstance(v, list) and v and all(isinstance(e, str) for e in v) for v in rows.values()
    ):
        raise ConfigError(
            "turnout/data/tasks.yaml: expected a mapping of task label to a list of prompts"
        )
    return MappingProxyType({str(k): tuple(v) for k, v in rows.items()})


_KEYWORDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE))
    for label, pattern in (
        (
            "code_review",
            r"\b(explain|review|debug|bug|error|refactor|complexity)\b"
            r".*\b(code|function|snippet|query|program|class)\b",
        ),
        (
            "code_generation",
            r"\b(code|function|python|java|javascript|program|script|sql|implement|def|class"
            r"|algorithm)\b",
        ),
        (
            "translation",
            r"\b(translate|translation|in (spanish|french|german|japanese|chinese|italian))\b",
        ),
        ("summarisation", r"\b(summari[sz]e|summary|tl;?dr|key takeaways|condense)\b"),
        (
            "math_reasoning",
            r"\b(solve|calculate|compute|equation|integral|derivative|probability|how many"
            r"|how much|sum of|prove)\b|\d+\s*[-+*/^=]\s*\d+",
        ),
        ("creative_writing", r"\b(story|poem|haiku|limerick|lyrics|sentence|creative|fiction)\b"),
        ("knowledge_qa", r"^\s*(who|what|when|where|which|why|how)\b|\?\s*$"),
    )
)


def keyword_task(text: str, labels: frozenset[str] | None = None) -> str:
    """The keyword baseline (the founding plan's approach): the first label whose keywords
    match, else ``general_chat``. Kept to show what the embedding classifier improves on."""
    for label, pattern in _KEYWORDS:
        if (labels is None or label in labels) and pattern.search(text):
            return label
    return "general_chat"


# The task labels of the LLMRouter data set (``routing-data/llmrouter/query_train.jsonl``),
# by benchmark, mapped to the built-in labels they exercise.
DATASET_TASKS: dict[str, str] = {
    "mbpp": "code_generation",
    "human_eval": "code_generation",
    "gsm8k": "math_reasoning",
    "math": "math_reasoning",
    "agentverse-mgsm": "math_reasoning",
    "agentverse-logicgrid": "math_reasoning",
    "natural_qa": "knowledge_qa",
    "trivia_qa": "knowledge_qa",
    "mmlu": "knowledge_qa",
    "gpqa": "knowledge_qa",
    "commonsense_qa": "knowledge_qa",
    "openbook_qa": "knowledge_qa",
    "arc_challenge": "knowledge_qa",
    "commongen": "creative_writing",
}


def load_labelled(
    path: str | os.PathLike[str], per_task: int | None = None
) -> list[tuple[str, str]]:
    """(prompt, label) pairs from a JSON-lines file with ``task_name`` and ``query`` per line
    (the LLMRouter format); ``task_name`` is mapped through ``DATASET_TASKS`` when it is one of
    its benchmarks, else taken as the label. ``per_task`` keeps the first N of each task."""
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            task = str(row["task_name"])
            if per_task is not None:
                if seen.get(task, 0) >= per_task:
                    continue
                seen[task] = seen.get(task, 0) + 1
            out.append((str(row["query"]), DATASET_TASKS.get(task, task)))
    return out
