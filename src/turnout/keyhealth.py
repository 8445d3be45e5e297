"""Provider key health: each configured provider's key proven by a cheap real call (its model
listing, or the equivalent for its wire API), on demand (``turnout keys check``) or every few
minutes in the server (``KeyMonitor``), with the status per provider.

A key is never shown, logged or put in an error: only its last four characters.

    valid        the upstream accepted the key (a 429 counts: it knew the key)
    invalid      401 / 403: wrong, revoked or not allowed
    unreachable  refused, timed out, DNS, or the upstream's own 5xx
    missing      no key configured where the host needs one
    error        anything else (a 404 from a wrong base URL, a config problem)
    unchecked    not checked yet
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .catalogue import Catalogue
from .config import Config, KeyHealthConfig
from .deployment import Deployment, resolve_deployment
from .errors import (
    AuthenticationError,
    TurnoutError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
    from_status,
)
from .hosts import HOSTS
from .http import HttpPool

__all__ = [
    "KeyMonitor",
    "KeyStatus",
    "Probe",
    "accounts",
    "check_keys",
    "model_ids",
    "probe_for",
    "upstream_models",
]

log = logging.getLogger("turnout.keyhealth")

# resolve_deployment wants a model; a provider's account is the same whatever the model.
_ANY_MODEL = "key-check"


@dataclass(slots=True)
class KeyStatus:
    provider: str
    host: str
    wire_api: str
    key: str
    """The key as it may be shown: ``...abcd``, ``sigv4 ...abcd`` or ``(none)``."""
    status: str = "unchecked"
    last_checked: float | None = None
    """Unix time of the last check."""
    latency: float | None = None
    last_error: str | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        checked = (
            datetime.fromtimestamp(self.last_checked, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if self.last_checked is not None
            else None
        )
        return {
            "provider": self.provider,
            "host": self.host,
            "wire_api": self.wire_api,
            "key": self.key,
            "status": self.status,
            "last_checked": checked,
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 1),
            "last_error": self.last_error,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Probe:
    url: str
    headers: Mapping[str, str]


# --- which accounts, and how to probe each -------------------------------------------------


def accounts(config: Config, catalogue: Catalogue) -> list[Deployment | KeyStatus]:
    """Every provider worth checking: those in the config, and hosts whose credentials are in
    the environment. A provider that cannot even be resolved comes back as a ``KeyStatus``."""
    names = list(config.providers)
    configured_hosts = {p.host or n for n, p in config.providers.items()}
    for host in HOSTS.values():
        if host.name in configured_hosts or host.wire_api == "local":
            continue
        from_env = host.key_env and os.environ.get(host.key_env)
        aws_pair = "access_key_id" in host.settings_env and os.environ.get(
            host.settings_env["access_key_id"]
        )
        if from_env or aws_pair:
            names.append(host.name)
    out: list[Deployment | KeyStatus] = []
    for name in names:
        try:
            d = resolve_deployment(f"{name}:{_ANY_MODEL}", config, catalogue)
        except TurnoutError as exc:
            pconf = config.providers.get(name)
            host_name = (pconf.host if pconf and pconf.host else None) or name
            out.append(KeyStatus(name, host_name, "", "(none)", "error", last_error=exc.message))
            continue
        if d.host.wire_api != "local":
            out.append(d)
    return out


def key_hint(d: Deployment) -> str:
    if d.host.wire_api == "bedrock_converse":
        from .adapters.bedrock_aws import credentials_hint

        return credentials_hint(d)
    if not d.api_key:
        return "(none)"
    return f"...{d.api_key[-4:]}" if len(d.api_key) > 8 else "(short key)"


def _auth(d: Deployment) -> dict[str, str]:
    headers = {"Accept": "application/json", **d.headers}
    if d.api_key:
        headers[d.host.auth_header] = d.host.auth_prefix + d.api_key
    return headers


def _join(base: str, version: str, path: str) -> str:
    """``base`` may or may not already end in the API version (``/v1``)."""
    base = base.rstrip("/")
    for suffix in ("/v1", "/v1beta", "/v2"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return f"{base}{version}{path}"


def _azure_probe(d: Deployment) -> Probe:
    # The base URL names one deployment; the model list lives beside the deployments.
    endpoint = d.settings.get("endpoint", "").rstrip("/")
    version = d.query.get("api-version") or d.settings.get("api_version", "")
    return Probe(f"{endpoint}/openai/models?api-version={version}", _auth(d))


def _blaxel_probe(d: Deployment) -> Probe:
    # run.blaxel.ai serves one model per URL: the control API lists them all.
    from .blaxel import BlaxelClient, control_url

    client = BlaxelClient(d.api_key or "", d.settings.get("workspace"), base_url=control_url(d))
    return Probe(client.base_url + "/models", client.headers())


def _bedrock_probe(d: Deployment) -> Probe:
    from .adapters.bedrock_aws import list_models_request

    url, headers = list_models_request(d)
    return Probe(url, headers)


# Hosts whose model listing is not where their wire API's usually is, by host row name.
_HOST_PROBES: Mapping[str, Callable[[Deployment], Probe]] = {
    "azure": _azure_probe,
    "blaxel": _blaxel_probe,
}
_PROBES: Mapping[str, Callable[[Deployment], Probe]] = {
    "openai_chat": lambda d: Probe(d.base_url + "/models", _auth(d)),
    "bedrock_converse": _bedrock_probe,
    "anthropic_messages": lambda d: Probe(
        _join(d.base_url, "/v1", "/models"), {"anthropic-version": "2023-06-01", **_auth(d)}
    ),
    "gemini": lambda d: Probe(_join(d.base_url, "/v1beta", "/models"), _auth(d)),
    "cohere_chat": lambda d: Probe(_join(d.base_url, "/v1", "/models"), _auth(d)),
    "ollama_chat": lambda d: Probe(d.base_url.rstrip("/") + "/api/tags", _auth(d)),
}


def probe_for(d: Deployment) -> Probe | None:
    """The cheap authenticated GET that proves ``d``'s key; None for a wire API without one."""
    make = _HOST_PROBES.get(d.host.name) or _PROBES.get(d.host.wire_api)
    return make(d) if make is not None else None


# --- running a check -----------------------------------------------------------------------


def _items(obj: Any) -> list[Any] | None:
    """The entries of a model listing, whatever the vendor calls them."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        for key in ("data", "models", "modelSummaries"):
            if isinstance(obj.get(key), list):
                return list(obj[key])
    return None


def model_ids(obj: Any) -> list[str]:
    """Model names from a listing: OpenAI/Anthropic ``data[].id``, Gemini/Cohere/Ollama
    ``models[].name``, Bedrock ``modelSummaries[].modelId``, Blaxel ``[].metadata.name``."""
    out = []
    for item in _items(obj) or ():
        if isinstance(item, dict):
            name = (
                item.get("id")
                or item.get("modelId")
                or item.get("name")
                or (item.get("metadata") or {}).get("name")
            )
            if name:
                out.append(str(name))
    return out


def _error_text(raw: bytes, secrets: list[str]) -> str:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):
            text = str(err.get("message") or err)
        elif obj.get("message"):
            text = str(obj["message"])
        else:
            text = str(err or obj)
    else:
        text = raw[:300].decode("utf-8", errors="replace").strip()
    for secret in secrets:
        if secret and len(secret) > 4:
            text = text.replace(secret, "..." + secret[-4:])
    return text[:300]


def _secrets(d: Deployment) -> list[str]:
    return [
        s
        for s in (
            d.api_key,
            d.settings.get("secret_access_key"),
            d.settings.get("session_token"),
        )
        if s
    ]


async def _get(probe: Probe, http: HttpPool, timeout: float, d: Deployment) -> tuple[int, bytes]:
    import aiohttp
    from yarl import URL

    try:
        async with http.session().get(
            URL(probe.url, encoded=True),
            headers=dict(probe.headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            return resp.status, await resp.read()
    except TimeoutError:
        raise UpstreamTimeoutError(f"no answer within {timeout:g}s", provider=d.provider) from None
    except aiohttp.ClientError as exc:
        raise UpstreamConnectionError(f"{type(exc).__name__}: {exc}", provider=d.provider) from None


async def upstream_models(d: Deployment, http: HttpPool, timeout: float = 10.0) -> list[str]:
    """What the provider says it serves: the names in the listing key health fetches."""
    probe = probe_for(d)
    if probe is None:
        return []
    code, raw = await _get(probe, http, timeout, d)
    if code >= 400:
        raise from_status(code, _error_text(raw, _secrets(d)), provider=d.provider)
    try:
        return model_ids(orjson.loads(raw))
    except orjson.JSONDecodeError:
        raise UpstreamServerError("the model listing is not JSON", provider=d.provider) from None


async def check_one(d: Deployment, http: HttpPool, timeout: float) -> KeyStatus:
    status = KeyStatus(d.provider, d.host.name, d.host.wire_api, key_hint(d))
    status.last_checked = time.time()
    if d.api_key is None and d.host.key_required:
        status.status = "missing"
        status.last_error = f"no key: set {d.key_env or 'api_key'}"
        return status
    try:
        probe = probe_for(d)
    except AuthenticationError as exc:
        status.status, status.last_error = "missing", exc.message
        return status
    except TurnoutError as exc:
        status.status, status.last_error = "error", exc.message
        return status
    if probe is None:
        status.status, status.detail = "valid", "no key check for this wire API"
        return status
    started = time.perf_counter()
    try:
        code, raw = await _get(probe, http, timeout, d)
    except (UpstreamConnectionError, UpstreamTimeoutError) as exc:
        status.status, status.last_error = "unreachable", exc.message
        return status
    status.latency = time.perf_counter() - started
    if code < 400:
        status.status = "valid"
        try:
            items = _items(orjson.loads(raw))
        except orjson.JSONDecodeError:
            items = None
        status.detail = f"{len(items)} models" if items is not None else None
        return status
    message = f"HTTP {code}: {_error_text(raw, _secrets(d))}"
    if code == 429:
        status.status, status.detail = "valid", "rate limited, but the key was recognised"
        status.last_error = message
    elif code in (401, 403):
        status.status, status.last_error = "invalid", message
    elif code >= 500:
        status.status, status.last_error = "unreachable", message
    else:
        status.status, status.last_error = "error", message
    return status


async def check_keys(
    config: Config, catalogue: Catalogue | None = None, http: HttpPool | None = None
) -> list[KeyStatus]:
    """Check every configured provider's key at once; one status per provider."""
    catalogue = catalogue or Catalogue.default(config.models)
    pool = http or HttpPool()
    try:
        found = accounts(config, catalogue)
        timeout = config.key_health.timeout
        results = await asyncio.gather(
            *(
                check_one(a, pool, timeout) if isinstance(a, Deployment) else _ready(a)
                for a in found
            )
        )
        return list(results)
    finally:
        if http is None:
            await pool.aclose()


async def _ready(status: KeyStatus) -> KeyStatus:
    status.last_checked = time.time()
    return status


class KeyMonitor:
    """Re-validates every key every ``interval`` seconds (jittered so replicas do not check in
    step) and keeps the latest status per provider."""

    def __init__(
        self,
        config: Config,
        catalogue: Catalogue,
        http: HttpPool,
        settings: KeyHealthConfig | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._config = config
        self._catalogue = catalogue
        self._http = http
        self.settings = settings or config.key_health
        self._sleep = sleep
        self._rand = rand
        self._statuses: dict[str, KeyStatus] = {}
        for a in accounts(config, catalogue):
            s = (
                a
                if isinstance(a, KeyStatus)
                else KeyStatus(a.provider, a.host.name, a.host.wire_api, key_hint(a))
            )
            self._statuses[s.provider] = s

    def snapshot(self) -> list[KeyStatus]:
        return list(self._statuses.values())

    def next_delay(self) -> float:
        spread = self.settings.jitter * (2 * self._rand() - 1)
        return max(1.0, self.settings.interval * (1 + spread))

    async def check_now(self) -> list[KeyStatus]:
        results = await check_keys(self._config, self._catalogue, self._http)
        for new in results:
            old = self._statuses.get(new.provider)
            if (old is None or old.status != new.status) and new.status != "valid":
                log.warning(
                    "provider %s key %s is %s: %s",
                    new.provider,
                    new.key,
                    new.status,
                    new.last_error,
                )
            elif old is not None and old.status != new.status:
                log.info("provider %s key %s is %s", new.provider, new.key, new.status)
            self._statuses[new.provider] = new
        return results

    async def run(self) -> None:
        """Check now, then forever every ``interval`` (jittered); cancel to stop."""
        while True:
            try:
                await self.check_now()
            except TurnoutError as exc:
                log.warning("key health check failed: %s", exc.message)
            await self._sleep(self.next_delay())
