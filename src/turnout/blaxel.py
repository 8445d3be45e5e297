"""Blaxel's control API (``https://api.blaxel.ai/v0``): the models, agents and workspaces of a
Blaxel account, and the one Blaxel behaviour the gateway must explain (sandbox models).

Inference goes through the ``blaxel`` host row (OpenAI-compatible, ``run.blaxel.ai``); this
module only lists what is deployed. Listing endpoints answer a bare JSON array, or (API version
2026-04-28 and later) ``{"data": [...], "meta": {"hasMore", "nextCursor"}}``: both are read,
and cursors are followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .deployment import Deployment
from .errors import PermissionDeniedError, TurnoutError, UpstreamConnectionError, from_status
from .http import HttpPool
from .redaction import excerpt

__all__ = [
    "DEFAULT_CONTROL_URL",
    "BlaxelClient",
    "BlaxelModel",
    "client_for",
    "control_url",
    "live_table",
    "sandbox_error",
]

DEFAULT_CONTROL_URL = "https://api.blaxel.ai/v0"
_MAX_PAGES = 50


def control_url(d: Deployment) -> str:
    """The control API for a ``blaxel`` provider: its ``control_url`` setting, else Blaxel's."""
    return (d.settings.get("control_url") or DEFAULT_CONTROL_URL).rstrip("/")


def client_for(d: Deployment, http: HttpPool | None = None, timeout: float = 10.0) -> BlaxelClient:
    """A control-API client with the provider's key and workspace."""
    return BlaxelClient(
        d.api_key or "",
        d.settings.get("workspace"),
        base_url=control_url(d),
        http=http,
        timeout=timeout,
        provider=d.provider,
    )


async def live_table(d: Deployment, http: HttpPool, timeout: float) -> list[tuple[str, ...]]:
    """The deployed models as ``turnout models --provider NAME --live`` shows them (the host
    row's ``live_listing`` reader ``blaxel_control``): header first, sandbox models marked
    (they answer 403 to inference calls)."""
    models = await client_for(d, http, timeout).models()
    table: list[tuple[str, ...]] = [("NAME", "TYPE", "SERVES", "SANDBOX", "ENABLED", "STATUS")]
    table += [
        (
            f"{d.provider}:{m.name}",
            m.type,
            m.upstream,
            "yes (not callable)" if m.sandbox else "no",
            "yes" if m.enabled else "no",
            m.status,
        )
        for m in models
    ]
    return table


@dataclass(frozen=True, slots=True)
class BlaxelModel:
    name: str
    """What goes in ``blaxel:<name>``."""
    display_name: str
    workspace: str
    type: str
    """The runtime type (``openai``, ``anthropic``, ``mistral``, ...)."""
    upstream: str
    """The model the deployment serves (``gpt-4o-mini``, ...)."""
    sandbox: bool
    """Sandbox models answer 403 to API calls: they cannot be used through the gateway."""
    enabled: bool
    status: str

    @classmethod
    def from_api(cls, obj: Mapping[str, Any]) -> BlaxelModel:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        runtime = spec.get("runtime") or {}
        return cls(
            name=str(meta.get("name") or ""),
            display_name=str(meta.get("displayName") or meta.get("name") or ""),
            workspace=str(meta.get("workspace") or ""),
            type=str(runtime.get("type") or ""),
            upstream=str(runtime.get("model") or ""),
            sandbox=bool(spec.get("sandbox")),
            enabled=spec.get("enabled") is not False,
            status=str(obj.get("status") or ""),
        )


def sandbox_error(message: str, provider: str, model: str, workspace: str | None) -> TurnoutError:
    """Blaxel's 403 "Endpoint not allowed on sandbox model", said so that a user knows what to
    do about it."""
    where = f" in workspace '{workspace}'" if workspace else ""
    return PermissionDeniedError(
        f"Blaxel model '{model}'{where} is a sandbox model, which Blaxel does not serve through "
        "its inference API (upstream said: "
        f"{message.strip() or 'Endpoint not allowed on sandbox model'}). Deploy the model as "
        "a regular (non-sandbox) model in your Blaxel workspace, or use another one: "
        f"`turnout models --provider {provider} --live` lists them and marks sandbox models.",
        provider=provider,
        model=model,
        code="blaxel_sandbox_model",
    )


class BlaxelClient:
    """A small async client for the three listing calls the gateway needs."""

    def __init__(
        self,
        api_key: str,
        workspace: str | None = None,
        *,
        base_url: str = DEFAULT_CONTROL_URL,
        http: HttpPool | None = None,
        timeout: float = 10.0,
        provider: str = "blaxel",
    ) -> None:
        self._key = api_key
        self.workspace = workspace
        self.base_url = base_url.rstrip("/")
        self._http = http or HttpPool()
        self._own_http = http is None
        self._timeout = timeout
        self.provider = provider

    def headers(self) -> dict[str, str]:
        headers = {"X-Blaxel-Authorization": f"Bearer {self._key}", "Accept": "application/json"}
        if self.workspace:
            headers["X-Blaxel-Workspace"] = self.workspace
        return headers

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        import aiohttp

        session = self._http.session()
        url = self.base_url + path
        try:
            async with session.get(
                url,
                params=dict(params),
                headers=self.headers(),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except TimeoutError:
            raise UpstreamConnectionError(
                f"Blaxel control API did not answer within {self._timeout:g}s",
                provider=self.provider,
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"cannot reach the Blaxel control API at {self.base_url}: "
                f"{type(exc).__name__}: {exc}",
                provider=self.provider,
            ) from None
        if status >= 400:
            raise self._error(status, raw, headers)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise from_status(
                502,
                f"Blaxel control API sent invalid JSON: {excerpt(raw, 200)!r}",
                provider=self.provider,
            ) from None

    def _error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> TurnoutError:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            message = str(obj.get("message") or obj.get("error") or obj)
        else:
            message = excerpt(raw, 300) or f"HTTP {status}"
        if self._key and self._key in message:
            message = message.replace(self._key, "..." + self._key[-4:])
        hint = ""
        if status in (401, 403):
            hint = " (check BL_API_KEY and BL_WORKSPACE, or providers.<name>.api_key/settings)"
        return from_status(
            status, f"Blaxel control API: {message}{hint}", headers=headers, provider=self.provider
        )

    async def _list(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        for _ in range(_MAX_PAGES):
            page = await self._get(path, params)
            if isinstance(page, list):
                return items + [p for p in page if isinstance(p, dict)]
            if not isinstance(page, dict):
                raise from_status(
                    502, "Blaxel control API: unexpected listing shape", provider=self.provider
                )
            items.extend(p for p in page.get("data") or () if isinstance(p, dict))
            meta = page.get("meta") or {}
            cursor = meta.get("nextCursor") or meta.get("next_cursor")
            if not (meta.get("hasMore") or meta.get("has_more")) or not cursor:
                return items
            params = {"cursor": str(cursor)}
        return items

    async def models(self) -> list[BlaxelModel]:
        return [BlaxelModel.from_api(m) for m in await self._list("/models")]

    async def agents(self) -> list[dict[str, Any]]:
        return await self._list("/agents")

    async def workspaces(self) -> list[dict[str, Any]]:
        return await self._list("/workspaces")

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()
