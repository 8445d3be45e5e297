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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .adapters import AdapterSet, ModelsRequest, adapter_class
from .adapters.base import model_ids
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
    "LIVE_LISTINGS",
    "Probe",
    "accounts",
    "check_keys",
    "live_listing",
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


Probe = ModelsRequest
"""The cheap authenticated GET that proves a key: the adapter's model listing request."""


# --- which accounts, and how to probe each -------------------------------------------------


def accounts(config: Config, catalogue: Catalogue) -> list[Deployment | KeyStatus]:
    """Every provider worth checking: those in the config, and hosts whose credentials are in
    the environment. A provider that cannot even be resolved comes back as a ``KeyStatus``."""
    names = list(config.providers)
    configured_hosts = {p.host or n for n, p in config.providers.items()}
    for host in HOSTS.values():
        if host.name in configured_hosts:
            continue
        from_env = host.key_env and os.environ.get(host.key_env)
        aws_pair = "access_key_id" in host.settings_env and os.environ.get(
            host.settings_env["access_key_id"]
        )
        if from_env or aws_pair or host.name in config.user_keys:
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
        if not adapter_class(d.host.wire_api).in_process:
            out.append(d)
    return out


def probe_for(d: Deployment) -> Probe | None:
    """The cheap authenticated GET that proves ``d``'s key; None for a wire API without one."""
    return adapter_class(d.host.wire_api)(HttpPool()).models_request(d)


# --- running a check -----------------------------------------------------------------------


LiveListing = Callable[[Deployment, HttpPool, float], Awaitable[list[tuple[str, ...]]]]

LIVE_LISTINGS: dict[str, tuple[str, str]] = {"blaxel_control": ("turnout.blaxel", "live_table")}
"""The readers a host row's ``live_listing`` names: (module, function), imported on use."""


async def live_listing(d: Deployment, http: HttpPool, timeout: float) -> list[tuple[str, ...]]:
    """What the provider says it serves, as a table (header first) for ``turnout models
    --provider NAME --live``: the reader its host row names, else the listing's names."""
    if d.host.live_listing is not None:
        from importlib import import_module

        module, name = LIVE_LISTINGS[d.host.live_listing]
        reader: LiveListing = getattr(import_module(module), name)
        return await reader(d, http, timeout)
    names = await upstream_models(d, http, timeout)
    return [("NAME",), *((f"{d.provider}:{n}",) for n in names)]


async def upstream_models(d: Deployment, http: HttpPool, timeout: float = 10.0) -> list[str]:
    """What the provider says it serves: the names in the listing key health fetches."""
    listing = await AdapterSet(http).get(d.host.wire_api).list_models(d, timeout)
    if listing is None:
        return []
    if listing.status >= 400:
        raise from_status(listing.status, listing.error or "", provider=d.provider)
    if listing.ids is None:
        raise UpstreamServerError("the model listing is not JSON", provider=d.provider)
    return listing.ids


async def check_one(d: Deployment, adapters: AdapterSet, timeout: float) -> KeyStatus:
    adapter = adapters.get(d.host.wire_api)
    status = KeyStatus(d.provider, d.host.name, d.host.wire_api, adapter.credentials_hint(d))
    status.last_checked = time.time()
    missing = d.missing_credentials()
    if missing is not None:
        status.status = "missing"
        status.last_error = missing
        return status
    started = time.perf_counter()
    try:
        listing = await adapter.list_models(d, timeout)
    except (UpstreamConnectionError, UpstreamTimeoutError) as exc:
        status.status, status.last_error = "unreachable", exc.message
        return status
    except AuthenticationError as exc:  # no credentials to sign or send with
        status.status, status.last_error = "missing", exc.message
        return status
    except TurnoutError as exc:
        status.status, status.last_error = "error", exc.message
        return status
    if listing is None:
        status.status, status.detail = "valid", "no key check for this wire API"
        return status
    status.latency = time.perf_counter() - started
    code = listing.status
    if code < 400:
        status.status = "valid"
        n = listing.count
        status.detail = None if n is None else f"{n} model" if n == 1 else f"{n} models"
        return status
    message = f"HTTP {code}: {listing.error}"
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
        adapters = AdapterSet(pool)
        results = await asyncio.gather(
            *(
                check_one(a, adapters, timeout) if isinstance(a, Deployment) else _ready(a)
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
        adapters = AdapterSet(http)
        for a in accounts(config, catalogue):
            s = (
                a
                if isinstance(a, KeyStatus)
                else KeyStatus(
                    a.provider,
                    a.host.name,
                    a.host.wire_api,
                    adapters.get(a.host.wire_api).credentials_hint(a),
                )
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
