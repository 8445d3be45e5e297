"""The suite writes what the embedded models build (the 23 MB quantized MiniLM, embeddings of
fixed sets) inside the checkout, never in the user's home: ``.cache/turnout``, gitignored and
kept between runs, unless the user set ``TURNOUT_CACHE_DIR``; processes the tests start get
the same directory, also those that drop the user's other Turnout settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from turnout.routing.embedding import cache_dir

from .conftest import CACHE_DIR, USER_CACHE_DIR, without_turnout_settings

ROOT = Path(__file__).resolve().parents[1]
ASK = "from turnout.routing.embedding import cache_dir; print(cache_dir())"


def test_the_cache_is_in_the_checkout_unless_the_user_chose_one() -> None:
    expected = Path(USER_CACHE_DIR) if USER_CACHE_DIR else CACHE_DIR
    assert cache_dir() == expected
    if USER_CACHE_DIR is None:
        assert CACHE_DIR.is_relative_to(ROOT) and not CACHE_DIR.is_relative_to(ROOT / "src")
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(CACHE_DIR / "minilm" / "x.onnx")], cwd=ROOT
        )
        assert ignored.returncode in (0, 128)  # ignored (128: not a git checkout)


def test_processes_started_by_tests_use_the_same_cache() -> None:
    for env in (dict(os.environ), without_turnout_settings()):
        out = subprocess.run(
            [sys.executable, "-c", ASK], env=env, capture_output=True, text=True, check=True
        )
        assert Path(out.stdout.strip()) == cache_dir()
