"""Prometheus metrics of one gateway app: every definition lives here, in a registry of its own
(never the process-global one), so two apps in one process never mix their counts.

Recording is on the hot path, so each (provider, model) pair's label children are looked up
once and kept: an observation is a dict hit and a few float additions (about a microsecond).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from .accounting import Accounting
    from .errors import TurnoutError
    from .server.connections import ConnectionGuard
    from .types import Usage

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _Served:
    """The label children of one (provider, model) pair."""

    __slots__ = ("cache_write", "cached", "input", "latency", "ok", "output", "spend", "ttft")

    def __init__(self, m: Metrics, provider: str, model: str) -> None:
        self.ok = m.requests.labels(provider, model, "ok")
        self.ttft = m.ttft.labels(provider, model)
        self.latency = m.latency.labels(provider, model)
        self.input = m.tokens.labels(provider, model, "input")
        self.output = m.tokens.labels(provider, model, "output")
        self.cached = m.tokens.labels(provider, model, "cached_input")
        self.cache_write = m.tokens.labels(provider, model, "cache_write_input")
        self.spend = m.spend.labels(provider, model)


class Metrics:
    """The gateway's metrics. Other parts of the gateway add theirs here, in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "turnout_requests",
            "Chat requests answered, by the deployment that served them and outcome.",
            ["provider", "model", "status"],
            registry=r,
        )
        self.errors = Counter(
            "turnout_errors",
            "Requests that ended in an error, by error class and HTTP status.",
            ["error_class", "status_code", "provider"],
            registry=r,
        )
        self.ttft = Histogram(
            "turnout_time_to_first_token_seconds",
            "Seconds from the request's start to the first content token.",
            ["provider", "model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "turnout_request_latency_seconds",
            "Seconds from the request's start to its last byte from the upstream.",
            ["provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "turnout_tokens",
            "Tokens billed, by kind (input includes cached_input and cache_write_input).",
            ["provider", "model", "kind"],
            registry=r,
        )
        self.spend = Counter(
            "turnout_spend_usd",
            "USD spent, from the catalogue's prices (models with unknown prices add nothing).",
            ["provider", "model"],
            registry=r,
        )
        self._served: dict[tuple[str, str], _Served] = {}

    def observe(
        self,
        provider: str,
        model: str,
        usage: Usage,
        cost: float | None,
        ttft: float | None,
        latency: float | None,
    ) -> None:
        """Record one answered request (whole or streamed)."""
        children = self._served.get((provider, model))
        if children is None:
            children = self._served[(provider, model)] = _Served(self, provider, model)
        children.ok.inc()
        if ttft is not None:
            children.ttft.observe(ttft)
        if latency is not None:
            children.latency.observe(latency)
        children.input.inc(usage.prompt_tokens)
        children.output.inc(usage.completion_tokens)
        if usage.cached_tokens:
            children.cached.inc(usage.cached_tokens)
        if usage.cache_write_tokens:
            children.cache_write.inc(usage.cache_write_tokens)
        if cost:
            children.spend.inc(cost)

    def observe_error(self, error: TurnoutError) -> None:
        """Record a request that failed (before or during its answer)."""
        self.errors.labels(type(error).__name__, str(error.status_code), error.provider or "").inc()
        if error.provider and error.model:
            self.requests.labels(error.provider, error.model, "error").inc()

    def add_accounting(self, accounting: Accounting) -> None:
        """Expose the request log's queue depth, written and dropped records, and requests
        refused by gateway-key limits (read at scrape time)."""
        self.registry.register(_AccountingCollector(accounting))

    def add_connections(self, guard: ConnectionGuard) -> None:
        """Expose open connections and what the connection limits dropped: header and body
        timeouts, connections refused over the cap, clients that went away mid-request (read
        at scrape time)."""
        self.registry.register(_ConnectionCollector(guard))

    def render(self) -> bytes:
        """The Prometheus text exposition of everything in the registry."""
        return generate_latest(self.registry)


class _AccountingCollector:
    """Request-log and gateway-key figures, read from ``Accounting`` when Prometheus scrapes:
    nothing is added to the request path."""

    def __init__(self, accounting: Accounting) -> None:
        self._accounting = accounting

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        log = self._accounting.request_log
        depth = GaugeMetricFamily(
            "turnout_log_queue_depth",
            "Request-log records waiting for the database (queue plus the batch in hand).",
        )
        depth.add_metric([], log.depth if log is not None else 0)
        yield depth
        dropped = CounterMetricFamily(
            "turnout_log_records_dropped",
            "Request-log records dropped: queue full while the database was down or slow, "
            "or unwritten at shutdown.",
        )
        dropped.add_metric([], log.dropped if log is not None else 0)
        yield dropped
        written = CounterMetricFamily(
            "turnout_log_records_written", "Request-log records written to the database."
        )
        written.add_metric([], log.written if log is not None else 0)
        yield written
        refused = CounterMetricFamily(
            "turnout_key_rejections",
            "Requests refused by a gateway key's limits, by reason (rpm, tpm, budget, "
            "revoked, model).",
            labels=["reason"],
        )
        for reason, count in sorted(self._accounting.rejections.items()):
            refused.add_metric([reason], count)
        yield refused


class _ConnectionCollector:
    """The connection guard's counters, read when Prometheus scrapes."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        g = self._guard
        open_ = GaugeMetricFamily(
            "turnout_connections_open", "Client connections this server process holds open."
        )
        open_.add_metric([], g.open)
        yield open_
        for name, help_text, value in (
            (
                "turnout_header_timeouts",
                "Connections closed because their request headers were not complete within "
                "server.header_timeout (including connections that sent nothing).",
                g.header_timeouts,
            ),
            (
                "turnout_body_timeouts",
                "Requests answered 408 (or cut) because their body was not complete within "
                "server.body_timeout.",
                g.body_timeouts,
            ),
            (
                "turnout_connections_refused",
                "Connections answered 503 at once because server.max_connections were open.",
                g.refused,
            ),
        ):
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], value)
            yield family
        gone = CounterMetricFamily(
            "turnout_client_disconnects",
            "Clients that closed the connection mid-request, by stage: while sending the body, "
            "or before the end of the answer.",
            labels=["stage"],
        )
        for stage, count in g.disconnects.items():
            gone.add_metric([stage], count)
        yield gone
