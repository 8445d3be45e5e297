"""One redaction of every secret the gateway knows, for every error message and log line that
may carry upstream text (an upstream is free to echo a key back, in a status body or in-band).

The set is built once from the loaded configuration and the environment: the master key,
every provider key (configured, or in the environment variable its host reads), secret
settings and auth-like headers, the passwords of the database and Redis URLs, and the alert
webhook. Besides these literal values, three shapes are cut wherever they appear: gateway
keys (``sk-tn-...``), ``Bearer <token>``, and the value after an auth-like header or query
parameter name (``x-api-key: ...``, ``?key=...``).

A known value becomes its hint (``...`` and its last four characters), as a deployment's key
is shown everywhere else; a generic match becomes ``***``. The server applies this where an
error is rendered (every error shape) and in a logging filter (``turnout.logs``); nothing on a
successful request's path pays for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .config import Config

__all__ = ["MIN_SECRET_LENGTH", "Redactor", "config_secrets", "excerpt", "is_secret_name"]

MIN_SECRET_LENGTH = 8
"""Shorter values are not redacted literally: they cannot be told apart from ordinary words
(no real provider, master or gateway key is this short)."""

_SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "credential", "auth", "signature")

_AUTH_NAMES = (
    "proxy-authorization",
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-blaxel-authorization",
    "x-amz-security-token",
    "x-amz-signature",
    "api_key",
    "apikey",
    "access_token",
    "secret_access_key",
    "session_token",
)
"""Header and field names whose value is a secret."""
_QUERY_NAMES = ("key", "token", "sig", "signature")
"""Query parameters whose value is a secret."""

_GENERIC = re.compile(
    # a gateway key, known to this replica or not
    r"(?P<gateway>sk-tn-[A-Za-z0-9_-]{8,})"
    # an auth-like header or field with its value: `x-api-key: v`, `"authorization": "Bearer v"`
    r"|(?P<header>\b(?:" + "|".join(map(re.escape, _AUTH_NAMES)) + r")\b[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?:bearer|basic)\s+)?[^\s\"',;&}]+"
    # a bearer token anywhere else
    r"|(?P<bearer>\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}"
    # a key in a query string: `?key=v`, `&token=v`
    r"|(?P<query>[?&](?:" + "|".join(_QUERY_NAMES) + r")=)[^&\s\"'#]+",
    re.IGNORECASE,
)
_TRIGGERS = ("sk-tn-", "bearer", *_AUTH_NAMES, *(f"{q}=" for q in _QUERY_NAMES))
"""One of these (lowercased) is in every text ``_GENERIC`` can match: a text without any
skips the pattern, which is most of the cost."""


_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_.~+/=-]")
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_.~+/=-]+$")


def excerpt(data: bytes | str, limit: int) -> str:
    """At most ``limit`` characters of upstream text, for an error message. A cut never ends
    inside a word: it would leave the head of a secret that redaction can no longer
    recognise (redaction runs later, on the whole message)."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    if _TOKEN_CHAR.match(text[limit]):
        head = _TOKEN_TAIL.sub("", head)
    return head + "..."


def is_secret_name(name: str) -> bool:
    """Whether a setting or header of this name holds a secret (``secret_access_key``,
    ``session_token``, ``X-Custom-Auth``, ...)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _hint(secret: str) -> str:
    return f"...{secret[-4:]}" if len(secret) > 8 else "***"


class Redactor:
    """``redactor(text)`` is ``text`` with every known secret cut to its hint and every
    generic secret shape cut to ``***``. Immutable once built; a text with nothing to redact
    costs a few substring searches, but it is meant for error paths and log records only."""

    __slots__ = ("_known", "count")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        known = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first: a secret that contains another is replaced whole.
        self._known = tuple((s, _hint(s)) for s in sorted(known, key=len, reverse=True))
        self.count = len(self._known)
        """How many literal values are redacted (not the values themselves)."""

    @classmethod
    def from_config(cls, config: Config, environ: Mapping[str, str] | None = None) -> Redactor:
        return cls(config_secrets(config, os.environ if environ is None else environ))

    def union(self, other: Redactor) -> Redactor:
        """A redactor that knows the secrets of both."""
        return Redactor([s for s, _ in (*self._known, *other._known)])

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret, hint in self._known:
            if secret in text:
                text = text.replace(secret, hint)
        lowered = text.lower()
        if any(t in lowered for t in _TRIGGERS):
            text = _GENERIC.sub(_replace, text)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it redacted (dict keys included)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def _replace(m: re.Match[str]) -> str:
    kind = m.lastgroup
    if kind == "gateway":
        return "sk-tn-" + _hint(m.group())
    # header, bearer, query: keep the name (or "Bearer "), cut the value
    prefix = next((g for g in (m.group("header"), m.group("bearer"), m.group("query")) if g), "")
    return prefix + "***"


def _url_secrets(url: str | None) -> list[str]:
    if not url:
        return []
    try:
        parts = urlsplit(url)
        return [p for p in (parts.password,) if p]
    except ValueError:
        return []


def config_secrets(config: Config, environ: Mapping[str, str]) -> list[str | None]:
    """Every secret value ``config`` (and the environment it reads) puts in the gateway's
    hands. A console page check or any other test collects them from here."""
    from .hosts import HOSTS

    out: list[str | None] = []
    if config.server.master_key is not None:
        out.append(config.server.master_key.get_secret_value())
    for p in config.providers.values():
        if p.api_key is not None:
            out.append(p.api_key.get_secret_value())
        if p.api_key_env:
            out.append(environ.get(p.api_key_env))
        out.extend(v for k, v in p.settings.items() if is_secret_name(k))
        out.extend(v for k, v in p.headers.items() if is_secret_name(k))
    # A provider need not be configured to be used (``openai:gpt-4o`` with OPENAI_API_KEY).
    for host in HOSTS.values():
        if host.key_env:
            out.append(environ.get(host.key_env))
        out.extend(environ.get(var) for k, var in host.settings_env.items() if is_secret_name(k))
    out.extend(_url_secrets(config.database_url))
    out.extend(_url_secrets(config.redis_url))
    if config.alerts.webhook_url:
        out.append(config.alerts.webhook_url)
    return out
