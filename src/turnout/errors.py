"""One error hierarchy for the whole gateway: adapters raise these, routing decides on them.

    TurnoutError                          base: status_code, type, code, provider, model
    ├── ConfigError                       bad config file or environment (names file, key)
    ├── MissingDependencyError            an optional extra is not installed (names it)
    ├── DatabaseUnavailableError     503  the request log / key database cannot be reached
    ├── ServerBusyError              503  this server process holds its maximum of connections
    ├── ShuttingDownError            503  still running past server.shutdown_timeout: ended
    ├── MissingCredentialsError      503  no deployment left with a provider key configured
    ├── BadRequestError              400  the request itself is wrong: never retried
    │   ├── UnsupportedParameterError 400 one deployment cannot honour a field: next may
    │   └── ContextWindowExceededError 400 prompt + output do not fit the model's window
    ├── AuthenticationError          401  missing or wrong key (gateway's or provider's)
    ├── PermissionDeniedError        403  key valid but not allowed
    ├── BudgetExceededError          402  a gateway key spent its budget for the period
    ├── NotFoundError                404  unknown model, route or upstream path
    ├── RequestTimeoutError          408  the client did not send the whole body in time
    ├── RequestTooLargeError         413  body over the server's limit
    ├── RateLimitError               429  retry_after seconds when the upstream said so
    ├── UpstreamTimeoutError         504  connect, first-token or total timeout
    ├── UpstreamConnectionError      502  refused, reset, DNS failure
    ├── UpstreamServerError          502  upstream 5xx, or a malformed response or stream
    │   └── OverloadedError          503  upstream 503 / 529
    ├── VerificationFailedError      422  a cascade step's answer failed the route's verifier
    └── AllAttemptsFailedError            every deployment of a route failed; lists attempts

An error may carry ``headers`` for the HTTP response (a gateway key's limit and reset time).

Classification is by status first, message second (see ``from_status``). Two flags drive
resilience: ``retryable`` (worth trying the same deployment again) and ``failover`` (worth
trying the next deployment). Nothing else is consulted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .types import Usage

__all__ = [
    "AllAttemptsFailedError",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigError",
    "ContextWindowExceededError",
    "DatabaseUnavailableError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "ServerBusyError",
    "ShuttingDownError",
    "TurnoutError",
    "UnsupportedParameterError",
    "UpstreamConnectionError",
    "UpstreamServerError",
    "UpstreamTimeoutError",
    "VerificationFailedError",
    "from_status",
]


class TurnoutError(Exception):
    """Base of every error the gateway raises on purpose."""

    status_code: int = 500
    type: str = "api_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False
    failover: ClassVar[bool] = False
    headers: dict[str, str] | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.code = code or self.default_code
        self.param = param

    def __str__(self) -> str:
        where = f"{self.provider}:{self.model}" if self.provider and self.model else self.provider
        return f"[{where}] {self.message}" if where else self.message


class ConfigError(TurnoutError):
    default_code = "config_error"


class MissingDependencyError(TurnoutError):
    type = "api_error"
    default_code = "missing_dependency"


class DatabaseUnavailableError(TurnoutError):
    status_code = 503
    default_code = "database_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str | None):
        super().__init__(message, **kw)
        self.retry_after = retry_after
        """Seconds after which to try again, when the gateway knows (``Retry-After``)."""


class ServerBusyError(TurnoutError):
    """Refused at the door: the server process already holds ``server.max_connections``."""

    status_code = 503
    default_code = "too_many_connections"


class ShuttingDownError(TurnoutError):
    """A request still running when ``server.shutdown_timeout`` passed after SIGTERM: its
    response ends with this error (a 503, or an error event in the stream it had begun)
    rather than a silent cut."""

    status_code = 503
    type = "server_error"
    default_code = "shutting_down"


class MissingCredentialsError(TurnoutError):
    """Every deployment that could serve the request lacks a provider key: the gateway's
    configuration is incomplete, not the client's key wrong (so never a 401). The message
    names the environment variable to set, never a value."""

    status_code = 503
    default_code = "missing_api_key"


class BadRequestError(TurnoutError):
    status_code = 400
    type = "invalid_request_error"


class UnsupportedParameterError(BadRequestError):
    default_code = "unsupported_parameter"
    failover = True


class ContextWindowExceededError(BadRequestError):
    default_code = "context_length_exceeded"


class AuthenticationError(TurnoutError):
    status_code = 401
    type = "authentication_error"
    default_code = "invalid_api_key"
    failover = True


class PermissionDeniedError(TurnoutError):
    status_code = 403
    type = "permission_error"
    failover = True


class BudgetExceededError(TurnoutError):
    """The gateway key's budget for a period is spent; ``headers`` say which and when it
    resets. Never failed over: another deployment would spend the same budget."""

    status_code = 402
    type = "insufficient_quota"
    default_code = "budget_exceeded"


class NotFoundError(TurnoutError):
    status_code = 404
    type = "not_found_error"
    default_code = "model_not_found"
    failover = True


class RequestTimeoutError(TurnoutError):
    """The request body did not arrive within ``server.body_timeout``."""

    status_code = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class RequestTooLargeError(TurnoutError):
    status_code = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(TurnoutError):
    status_code = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True
    failover = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str | None):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class UpstreamTimeoutError(TurnoutError):
    status_code = 504
    type = "timeout_error"
    default_code = "timeout"
    retryable = True
    failover = True


class UpstreamConnectionError(TurnoutError):
    status_code = 502
    type = "api_connection_error"
    default_code = "upstream_unreachable"
    retryable = True
    failover = True


class UpstreamServerError(TurnoutError):
    status_code = 502
    type = "api_error"
    default_code = "upstream_error"
    retryable = True
    failover = True


class OverloadedError(UpstreamServerError):
    status_code = 503
    type = "overloaded_error"
    default_code = "overloaded"


class VerificationFailedError(TurnoutError):
    """A ``cascade`` step answered, but the answer failed the route's verifier: the next
    deployment is tried. ``answer`` is what the executor walks with (a result, or a held
    stream), returned when no later step answers; ``usage`` and ``cost`` are billed with the
    request all the same. Never reaches a client as an error."""

    status_code = 422
    default_code = "verification_failed"
    failover = True

    def __init__(
        self,
        message: str,
        *,
        answer: object,
        usage: Usage,
        cost: float | None,
        provider: str | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, model=model)
        self.answer = answer
        self.usage = usage
        self.cost = cost


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one deployment, as reported in an aggregate error and in logs."""

    deployment: str
    error: TurnoutError
    elapsed: float


class AllAttemptsFailedError(TurnoutError):
    """Every deployment of a route failed. The status is the last error's when all agree on
    being the client's fault (4xx), else 502/503-class from the last error. ``skipped``
    names the deployments the plan left out, with why (no provider key, cooling down, ...)."""

    failover = False
    retryable = False

    def __init__(
        self,
        route: str,
        attempts: Sequence[Attempt],
        skipped: Sequence[tuple[str, str]] = (),
    ) -> None:
        lines = "; ".join(
            f"{a.deployment}: {type(a.error).__name__} ({a.error.status_code}) {a.error.message}"
            for a in attempts
        )
        message = f"all {len(attempts)} attempt(s) for '{route}' failed: {lines}"
        if skipped:
            message += "; not tried: " + "; ".join(f"{d}: {why}" for d, why in skipped)
        super().__init__(message)
        self.route = route
        self.attempts = list(attempts)
        self.skipped = list(skipped)
        last = attempts[-1].error if attempts else UpstreamServerError("no attempts")
        self.status_code = last.status_code
        self.type = last.type
        self.code = last.code
        self.retry_after: float | None = getattr(last, "retry_after", None)
        """The last attempt's ``Retry-After`` (a rate limit), for the response."""


_CONTEXT_HINTS = (
    "context length",
    "context_length",
    "maximum context",
    "too many tokens",
    "context window",
    "prompt is too long",
    "reduce the length",
    "exceeds the maximum number of tokens",  # Gemini
    "prompt too long",  # Ollama
)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms") or headers.get("Retry-After-Ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        import time
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def from_status(
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    provider: str | None = None,
    model: str | None = None,
    code: str | None = None,
) -> TurnoutError:
    """Classify an upstream HTTP error: status first, message second."""
    kw: dict[str, str | None] = {"provider": provider, "model": model, "code": code}
    lowered = message.lower()
    if status == 400 or status == 422:
        if (code and "context_length" in code) or any(h in lowered for h in _CONTEXT_HINTS):
            return ContextWindowExceededError(message, **kw)
        return BadRequestError(message, **kw)
    if status == 401:
        return AuthenticationError(message, **kw)
    if status == 403:
        return PermissionDeniedError(message, **kw)
    if status == 404:
        return NotFoundError(message, **kw)
    if status == 408:
        return UpstreamTimeoutError(message, **kw)
    if status == 413:
        if any(h in lowered for h in _CONTEXT_HINTS):
            return ContextWindowExceededError(message, **kw)
        return RequestTooLargeError(message, **kw)
    if status == 429:
        return RateLimitError(message, retry_after=parse_retry_after(headers or {}), **kw)
    if status in (503, 529):
        return OverloadedError(message, **kw)
    if status == 504:
        return UpstreamTimeoutError(message, **kw)
    if status >= 500:
        return UpstreamServerError(message, **kw)
    return BadRequestError(f"unexpected upstream status {status}: {message}", **kw)
