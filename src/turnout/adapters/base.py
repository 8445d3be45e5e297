"""What every HTTP adapter shares beyond the network edge: its model listing (which key health
and ``turnout models --provider`` use) and how its credentials may be shown.

A wire API says where its listing usually is (``models_url``); a host whose listing is
elsewhere says so in its data row (``Host.models_url``), never by name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import BadRequestError, ConfigError, TurnoutError, UnsupportedParameterError
from ..http import HttpPool
from ..types import EmbeddingRequest, EmbeddingResult
from .edge import UpstreamCall, excerpt

__all__ = [
    "HttpAdapter",
    "Listing",
    "ModelsRequest",
    "auth_headers",
    "join_version",
    "key_hint",
    "model_ids",
    "no_embeddings",
    "text_inputs",
]


@dataclass(frozen=True, slots=True)
class ModelsRequest:
    """The cheap authenticated GET that lists a provider's models (and so proves its key)."""

    url: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Listing:
    """What a model listing answered: the HTTP status, and either the model names and the
    number of entries (``None`` when the body was not a listing) or the upstream's error text
    with every secret cut to its last four characters."""

    status: int
    ids: list[str] | None = None
    count: int | None = None
    error: str | None = None


def auth_headers(d: Deployment) -> dict[str, str]:
    """``Accept: application/json``, the deployment's headers and its key as its host sends
    it."""
    headers = {"Accept": "application/json", **d.headers}
    if d.api_key:
        headers[d.host.auth_header] = d.host.auth_prefix + d.api_key
    return headers


def join_version(base: str, version: str, path: str) -> str:
    """``base`` may or may not already end in an API version (``/v1``): ``version`` replaces
    it."""
    base = base.rstrip("/")
    for suffix in ("/v1", "/v1beta", "/v2"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return f"{base}{version}{path}"


def key_hint(d: Deployment) -> str:
    """A key as it may be shown: its last four characters."""
    if not d.api_key:
        return "(none)"
    return f"...{d.api_key[-4:]}" if len(d.api_key) > 8 else "(short key)"


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
        text = excerpt(raw, 300)
    for secret in secrets:
        if secret and len(secret) > 4:
            text = text.replace(secret, "..." + secret[-4:])
    return excerpt(text, 300)


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


def no_embeddings(d: Deployment, wire_api: str) -> UnsupportedParameterError:
    """The 400 for an embeddings request sent to a wire API (or model) that has none (a route
    may fail over from it to one that has)."""
    return UnsupportedParameterError(
        f"'{d.id}' cannot embed: the {wire_api} API has no embeddings endpoint in Turnout; "
        "use an embedding model (GET /v1/models lists them; local:all-minilm-l6-v2 needs "
        "no key)",
        provider=d.provider,
        model=d.model,
        param="model",
        code="embeddings_not_supported",
    )


def text_inputs(request: EmbeddingRequest, d: Deployment) -> list[str]:
    """The texts of an embeddings request to a model that takes text only: token arrays are a
    tokenizer's own ids, so they are a 400."""
    texts = request.texts
    if texts is None:
        raise BadRequestError(
            f"'{d.id}' takes text input, not token arrays (token ids are a tokenizer's own)",
            param="input",
        )
    return texts


class HttpAdapter:
    """Base of the adapters that call an upstream over HTTP: one ``UpstreamCall`` per call
    with the wire API's ``map_error``, and the model listing."""

    wire_api: ClassVar[str]
    in_process: ClassVar[bool] = False
    """True for a model run inside the gateway: no account, no key, nothing to check."""

    @staticmethod
    def map_error(
        status: int, raw: bytes, headers: Mapping[str, str], d: Deployment
    ) -> TurnoutError:
        """The wire API's error for an upstream error response (each adapter's own)."""
        raise NotImplementedError

    def __init__(self, http: HttpPool) -> None:
        self._http = http

    def call(self, d: Deployment, t: TimeoutsConfig | None) -> UpstreamCall:
        return UpstreamCall(self._http, d, t, self.map_error)

    async def embed(
        self, request: EmbeddingRequest, d: Deployment, t: TimeoutsConfig
    ) -> EmbeddingResult:
        """Embeddings, for the wire APIs that have them (they override this)."""
        raise no_embeddings(d, self.wire_api)

    def models_url(self, d: Deployment) -> str:
        """Where this wire API usually lists models (OpenAI's ``/models``)."""
        return d.base_url + "/models"

    def models_headers(self, d: Deployment) -> dict[str, str]:
        return auth_headers(d)

    def models_request(self, d: Deployment) -> ModelsRequest | None:
        """The listing request for ``d``: its host row's ``models_url`` when it has one."""
        template = d.host.models_url
        if template is None:
            return ModelsRequest(self.models_url(d), self.models_headers(d))
        try:
            url = template.format_map({**d.settings, "model": d.model})
        except KeyError as exc:
            raise ConfigError(
                f"provider '{d.provider}' needs setting '{exc.args[0]}': "
                f"add providers.{d.provider}.settings.{exc.args[0]} to the config"
            ) from None
        return ModelsRequest(url, self.models_headers(d))

    async def list_models(self, d: Deployment, timeout: float) -> Listing | None:
        """Ask the provider what it serves. A transport failure raises
        ``UpstreamConnectionError`` / ``UpstreamTimeoutError``; an error status comes back as
        a ``Listing`` with that status, for the caller to judge."""
        request = self.models_request(d)
        if request is None:
            return None
        status, raw = await self.call(d, None).get(request.url, request.headers, timeout)
        if status >= 400:
            return Listing(status, error=_error_text(raw, _secrets(d)))
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Listing(status)
        items = _items(obj)
        return Listing(status, model_ids(obj), None if items is None else len(items))

    def credentials_hint(self, d: Deployment) -> str:
        """The credentials in use as they may be shown."""
        return key_hint(d)
