"""The library's front door: ``Gateway`` takes a request and returns a result or a stream.

Async first (``chat``, ``stream``); ``chat_sync`` and ``stream_sync`` run the same coroutines on
a private event loop in one background thread, so sync callers share the connection pools.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from .adapters import AdapterSet
from .catalogue import Catalogue, ModelEntry
from .config import Config, load_config
from .deployment import resolve_deployment, why_unusable
from .errors import BadRequestError, ConfigError, MissingDependencyError, TurnoutError
from .http import HttpPool
from .redaction import Redactor
from .routing import Executor, LiveState, MemoryState, Plan, Planner, Route, Router
from .routing.cascade import describe
from .routing.filters import Needs
from .streaming import ChatStream
from .tokens import TokenCount, estimate_tokens
from .types import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    StreamEvent,
    UserMessage,
    whole_cost,
)

if TYPE_CHECKING:
    from .tracing import Tracing

__all__ = ["Gateway", "parse_embedding_request", "parse_request"]

T = TypeVar("T")

log = logging.getLogger("turnout.gateway")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_request(obj: ChatRequest | Mapping[str, Any]) -> ChatRequest:
    """Validate a request body; a ``BadRequestError`` names each wrong field."""
    if isinstance(obj, ChatRequest):
        return obj
    if not isinstance(obj, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    try:
        return ChatRequest.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        raise BadRequestError(
            f"invalid request: {_describe(exc)}", param=".".join(str(p) for p in first) or None
        ) from None


def parse_embedding_request(obj: EmbeddingRequest | Mapping[str, Any]) -> EmbeddingRequest:
    """Validate an embeddings body; a ``BadRequestError`` names each wrong field."""
    if isinstance(obj, EmbeddingRequest):
        return obj
    if not isinstance(obj, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    try:
        return EmbeddingRequest.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        raise BadRequestError(
            f"invalid request: {_describe(exc)}", param=".".join(str(p) for p in first) or None
        ) from None


def _embedding_plan_request(req: EmbeddingRequest) -> tuple[ChatRequest, Needs]:
    """What the planner reads of an embeddings request: its routing hints (a ``task`` hint
    included), its caller, and that it needs the ``embeddings`` capability. No text: an
    input to embed is not classified nor looked up in an outcome store (``task``, ``auto``
    and ``learned`` go unclassified unless the caller names the task), so nothing is
    embedded for routing: the task labels and outcome stores describe what a prompt asks a
    chat model, and a route that sent each input to another embedding model by its topic
    would mix vector spaces in one index (docs/api.md#post-v1embeddings). No prompt size:
    each input is embedded on its own, so a context window bounds one input, and the model
    decides (OpenAI's answer 400, the embedded model cuts at 256 tokens)."""
    chat = ChatRequest(
        model=req.model,
        messages=[UserMessage(role="user", content="")],
        user=req.user,
        turnout=req.turnout,
    )
    return chat, Needs(frozenset({"embeddings"}), 0, 0)


def _arms(route: Route, counts: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """An adaptive experiment's arms: feedback counts and the estimated success rate (the
    mean of Beta(1 + successes, 1 + failures))."""
    out = {}
    for c in route.candidates:
        s, f = counts.get(c.id, [0.0, 0.0])
        out[c.id] = {"successes": s, "failures": f, "estimate": round((1 + s) / (2 + s + f), 4)}
    return out


def _live_state(config: Config) -> LiveState:
    if config.redis_url:
        from .routing.redis_state import RedisState

        return RedisState(
            config.redis_url,
            config.redis_prefix,
            config.health,
            alpha=config.routing.ewma_alpha,
        )
    return MemoryState(config.health, alpha=config.routing.ewma_alpha)


def _same_state_settings(a: Config, b: Config) -> bool:
    return (a.health, a.routing.ewma_alpha, a.redis_url, a.redis_prefix) == (
        b.health,
        b.routing.ewma_alpha,
        b.redis_url,
        b.redis_prefix,
    )


class Gateway:
    def __init__(
        self,
        config: Config | None = None,
        *,
        adapters: AdapterSet | None = None,
        state: LiveState | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config or Config()
        self.catalogue = Catalogue.default(self.config.models)
        self.router = Router(self.config, self.catalogue)
        self.redactor = Redactor.from_config(self.config)
        """Cuts every configured secret out of a text: the server runs each error it renders
        and each log record through it."""
        self.adapters = adapters if adapters is not None else AdapterSet(HttpPool())
        self.state: LiveState = state if state is not None else _live_state(self.config)
        """Live per-deployment stats and circuit breakers (swap for a shared store to let
        several replicas see the same)."""
        self.planner = Planner(self.config.routing, self.state)
        if tracing is None and self.config.otel.enabled:
            from .tracing import Tracing

            tracing = Tracing(self.config.otel)
        self.tracing = tracing
        """OpenTelemetry spans (``otel.enabled``); None when off."""
        self.executor = Executor(self.adapters, state=self.state, tracing=tracing, judge=self.chat)
        """Walks plans; a cascade's judge asks another route through ``chat``."""
        self._portal: _Portal | None = None

    def reconfigured(self, config: Config) -> Gateway:
        """A gateway for ``config`` (routes, providers, models, strategies, retry, timeouts,
        health) that shares this one's connection pools and loaded local models, and its
        live routing state (circuits, moving averages) unless the health settings changed.
        Raises ``ConfigError`` when ``config`` cannot be served; this gateway is untouched
        either way, so requests that hold it finish on it."""
        same = _same_state_settings(self.config, config)
        gateway = Gateway(
            config,
            adapters=self.adapters,
            state=self.state if same else None,
            tracing=self.tracing,
        )
        # A key the new config no longer names is still a secret (requests that hold this
        # gateway may fail with it yet, and it may not be revoked).
        gateway.redactor = self.redactor.union(gateway.redactor)
        # Outcome files already loaded are reused (re-read only when they changed).
        gateway.planner.outcome_files = self.planner.outcome_files
        gateway.planner.feedback = self.planner.feedback
        return gateway

    @classmethod
    def from_config(cls, path: str | None = None) -> Gateway:
        """Load ``path``, ``$TURNOUT_CONFIG`` or ``./turnout.yaml``; defaults when none."""
        return cls(load_config(path))

    def use_state(self, state: LiveState) -> None:
        """Share live routing state (stats, cooldowns) through another store, e.g. one that
        several replicas see."""
        self.state = self.planner.state = self.executor.state = state

    # --- async API ---------------------------------------------------------------------

    def route_for(self, request: ChatRequest) -> Route:
        return self.router.resolve(request.model)

    async def plan(self, request: ChatRequest | Mapping[str, Any]) -> Plan:
        """The routing decision for a request (what ``chat`` would try, in order), without
        sending it."""
        req = parse_request(request)
        return await self.planner.aplan(self.route_for(req), req)

    async def chat(
        self, request: ChatRequest | Mapping[str, Any] | None = None, **fields: Any
    ) -> ChatResult:
        req = parse_request(request if request is not None else fields)
        route = self.route_for(req)
        plan = await self.planner.aplan(route, req)
        tracing = self.tracing
        if tracing is None:
            result = await self.executor.chat(route, req, plan)
        else:
            span = tracing.start_request(route.name, req)
            try:
                with tracing.current(span):
                    result = await self.executor.chat(route, req, plan)
            except BaseException as exc:
                tracing.end_request(span, None, exc)
                raise
            tracing.end_request(span, result, None)
        entry = self.catalogue.get(result.deployment)
        if entry is not None:
            result.cost = entry.cost(result.usage)
        return result

    async def embed(
        self, request: EmbeddingRequest | Mapping[str, Any] | None = None, **fields: Any
    ) -> EmbeddingResult:
        """Embeddings through the route ``request.model`` names: the same planning, failover
        and live state as ``chat``; deployments whose catalogue entry lacks the
        ``embeddings`` capability are left out (400 when none is left)."""
        req = parse_embedding_request(request if request is not None else fields)
        route = self.router.resolve(req.model)
        chat, needs = _embedding_plan_request(req)
        plan = await self.planner.aplan(route, chat, needs)
        result = await self.executor.embed(route, req, plan)
        result.task = plan.task
        result.estimates = plan.estimates
        entry = self.catalogue.get(result.deployment)
        if entry is not None:
            result.cost = entry.cost(result.usage)
        return result

    async def stream(
        self, request: ChatRequest | Mapping[str, Any] | None = None, **fields: Any
    ) -> ChatStream:
        """A stream whose first event has already arrived (failover is over by then)."""
        req = parse_request(request if request is not None else fields)
        route = self.route_for(req)
        plan = await self.planner.aplan(route, req)
        tracing = self.tracing
        if tracing is None:
            stream = await self.executor.stream(route, req, plan)
        else:
            span = tracing.start_request(route.name, req)
            try:
                with tracing.current(span):
                    stream = await self.executor.stream(route, req, plan)
            except BaseException as exc:
                tracing.end_request(span, None, exc)
                raise
            inner = stream.on_done

            def done(s: ChatStream, error: TurnoutError | None) -> None:
                if inner is not None:
                    inner(s, error)
                tracing.end_request(span, s, error)

            stream.on_done = done
        stream.entry = self.catalogue.get(stream.deployment)
        return stream

    async def count_tokens(self, request: ChatRequest | Mapping[str, Any]) -> TokenCount:
        """The input tokens of ``request`` for the deployment its route would try first:
        exact when that deployment's adapter can count (Anthropic's ``count_tokens``, the
        embedded model's own tokenizer), else an estimate (``tokens.estimate_tokens``). A
        count that fails where the route would fail over (an outage, a field that backend
        cannot take, a missing extra) gives way to the estimate; a refusal of the request
        itself (400, 401, ...) is raised."""
        req = parse_request(request)
        route = self.route_for(req)
        plan = await self.planner.aplan(route, req)
        d = plan.deployments[0]
        counter = getattr(self.adapters.get(d.host.wire_api), "count_tokens", None)
        if counter is not None:
            try:
                async with asyncio.timeout(route.timeouts.total):
                    exact: int = await counter(req, d, route.timeouts)
                return TokenCount(exact, "exact", d.id)
            except TimeoutError:
                log.warning("count_tokens on %s timed out; estimating", d.id)
            except (MissingDependencyError, ConfigError) as err:
                log.warning("count_tokens on %s unavailable (%s); estimating", d.id, err)
            except TurnoutError as err:
                if not err.failover:
                    raise
                log.warning("count_tokens on %s failed (%s); estimating", d.id, err)
        estimate = await asyncio.to_thread(estimate_tokens, req)
        return TokenCount(estimate.input_tokens, estimate.method, d.id)

    async def preload(self) -> bool:
        """Load the embedded model now rather than on first use, if it is what a route or the
        default model uses. True when it was loaded."""
        candidates = [d for r in self.router.routes() for d in r.deployments]
        if not candidates:
            candidates = list(self.router.resolve(self.router.default_model()).deployments)
        local = next((d for d in candidates if d.host.wire_api == "local"), None)
        if local is None:
            return False
        from .adapters.local import LocalAdapter

        adapter = self.adapters.get("local")
        assert isinstance(adapter, LocalAdapter)
        await adapter.load(local)
        return True

    def routing_status(self, allows: Callable[[str], bool] | None = None) -> dict[str, Any]:
        """Each route's strategy and deployments, and what the gateway has measured of every
        deployment it has used: circuit state, cooldown, moving-average TTFT and latency.
        With ``allows`` (a gateway key's allow-list), only the routes it passes and the
        deployments behind them (or that it passes by name)."""
        now = self.state.now()
        arms = self.planner.feedback.arms
        routes = [
            {
                "name": r.name,
                "strategy": r.strategy or self.config.routing.default_strategy,
                "deployments": [c.id for c in r.candidates],
                **({"arms": _arms(r, arms.get(r.name, {}))} if r.adaptive else {}),
                **({"outcomes": self._outcomes(r)} if r.learned is not None else {}),
                **({"cascade": describe(r.verifier.settings)} if r.verifier is not None else {}),
            }
            for r in self.router.routes()
            if allows is None or allows(r.name)
        ]
        behind = {d for r in routes for d in r["deployments"]}
        deployments = {
            d: s.describe(now)
            for d, s in sorted(self.state.snapshot().items())
            if allows is None or d in behind or allows(d)
        }
        return {"routes": routes, "deployments": deployments}

    def _outcomes(self, route: Route) -> dict[str, Any]:
        """A ``learned`` route's store: loaded or not, its size, and the feedback outcomes."""
        lr = self.planner.learned.get(route.name)
        feedback = self.planner.feedback.index
        return {
            "loaded": lr is not None,
            "prompts": len(lr.index) if lr is not None else 0,
            "models": list(lr.index.models) if lr is not None else [],
            "feedback": len(feedback) if feedback is not None else 0,
            "lambda": lr.lam if lr is not None else None,
        }

    def cost(self, result: ChatResult | ChatStream) -> float | None:
        """USD for a finished request from the catalogue's prices, every call it paid for (a
        cascade's rejected steps and judge too: ``request_cost``); None when unknown."""
        own = result.cost
        if own is None:
            entry = self.catalogue.get(result.deployment)
            own = entry.cost(result.usage) if entry else None
        return whole_cost(own, result.failed_attempts, result.judged)

    def models(self, include_unusable: bool = False) -> list[tuple[str, ModelEntry | None]]:
        """What can be asked for by name: routes, then catalogue entries; only what this
        gateway can serve (a route with a usable deployment, a model whose provider has its
        key) unless ``include_unusable``."""
        return [
            (name, entry)
            for name, entry, why in self.model_status()
            if include_unusable or why is None
        ]

    def model_status(self) -> list[tuple[str, ModelEntry | None, str | None]]:
        """Every route and catalogue entry with the reason it cannot be served (a missing key,
        setting or extra), or None when it can."""
        out: list[tuple[str, ModelEntry | None, str | None]] = []
        for r in self.router.routes():
            reasons = [why_unusable(d) for d in r.deployments]
            why = None if None in reasons else f"no usable deployment ({reasons[0]})"
            out.append((r.name, r.deployments[0].entry, why))
        for e in self.catalogue:
            try:
                why = why_unusable(resolve_deployment(e.id, self.config, self.catalogue))
            except TurnoutError as exc:
                why = exc.message
            out.append((e.id, e, why))
        return out

    async def aclose(self) -> None:
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # exports what is buffered
        await self.adapters.aclose()
        await self.state.aclose()
        await self.planner.aclose()

    # --- sync API ----------------------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        if self._portal is None:
            self._portal = _Portal()
        return self._portal.run(coro)

    def embed_sync(
        self, request: EmbeddingRequest | Mapping[str, Any] | None = None, **fields: Any
    ) -> EmbeddingResult:
        result: EmbeddingResult = self._run(self.embed(request, **fields))
        return result

    def chat_sync(
        self, request: ChatRequest | Mapping[str, Any] | None = None, **fields: Any
    ) -> ChatResult:
        result: ChatResult = self._run(self.chat(request, **fields))
        return result

    def stream_sync(
        self, request: ChatRequest | Mapping[str, Any] | None = None, **fields: Any
    ) -> Iterator[StreamEvent]:
        stream: ChatStream = self._run(self.stream(request, **fields))

        async def step() -> StreamEvent | None:
            try:
                return await stream.__anext__()
            except StopAsyncIteration:
                return None

        try:
            while (event := self._run(step())) is not None:
                yield event
        finally:
            self._run(stream.aclose())

    def close(self) -> None:
        if self._portal is not None:
            self._portal.run(self.aclose())
            self._portal.stop()
            self._portal = None

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Portal:
    """An event loop in a daemon thread that sync callers submit coroutines to."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="turnout-sync", daemon=True
        )
        self._thread.start()

    def run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
