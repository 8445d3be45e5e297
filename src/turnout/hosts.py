"""Hosts as data: where a wire API is served, how to authenticate, and its small quirks.

A host is not a module. Adding an OpenAI-compatible provider is adding a row here; a host gets
code only when it has behaviour, and then the behaviour is named by a field that the adapter
reads (``body_quirks``), never by sniffing the host's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["HOSTS", "Host", "get_host"]


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    wire_api: str
    """Adapter module that speaks to it (``openai_chat``, ``openai_responses``, ``gemini``,
    ``cohere_chat``, ``ollama_chat``, ``bedrock_converse``, ``local``): a key of
    ``adapters._MODULES``."""
    base_url: str = ""
    """May hold ``{placeholders}`` filled from the provider's ``settings`` (and ``{model}``)."""
    path: str = "/chat/completions"
    """Appended to the base URL; native adapters may fill ``{model}`` in it."""
    key_env: str | None = None
    key_required: bool = True
    credential_settings: tuple[str, ...] = ()
    """Settings that, all set, authenticate instead of the key (Bedrock's access key pair)."""
    auth_header: str = "Authorization"
    auth_prefix: str = "Bearer "
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers; values may hold ``{placeholders}`` like ``base_url``."""
    query: Mapping[str, str] = field(default_factory=dict)
    """Query parameters; values may hold ``{placeholders}``."""
    settings_defaults: Mapping[str, str] = field(default_factory=dict)
    settings_env: Mapping[str, str] = field(default_factory=dict)
    """Setting name -> environment variable it is read from when not configured."""
    renames: Mapping[str, str] = field(default_factory=dict)
    """Request fields the host spells differently (``seed`` -> ``random_seed``)."""
    unsupported: frozenset[str] = frozenset()
    """Request fields the host rejects: removed with ``drop_params``, else a 400."""
    stream_usage: bool = True
    """Whether the host understands ``stream_options.include_usage``."""
    stream_above_max_tokens: int | None = None
    """Requests whose output cap exceeds this must stream upstream (Fireworks)."""
    body_quirks: str | None = None
    """Named pure function in ``openai_chat`` applied to the body last."""
    models_url: str | None = None
    """Where the host lists its models when not where its wire API usually does (key health
    and ``turnout models --provider`` read it); may hold ``{placeholders}`` like
    ``base_url``."""
    live_listing: str | None = None
    """How ``turnout models --provider NAME --live`` reads what the host serves when the
    model listing (``models_url``: names only) says too little: the name of a reader in
    ``keyhealth.LIVE_LISTINGS`` (``blaxel_control``: each model's runtime, upstream model,
    sandbox flag and status from Blaxel's control API). None: the listing's names."""
    cache_control: bool = False
    """Whether the host reads Anthropic-style ``cache_control`` breakpoints on content parts
    and tools (OpenRouter does, for the Claude models it serves); other OpenAI-compatible
    hosts get the request without them."""
    retry_timeouts: bool = True
    """Whether a timed-out request may be tried again on the same deployment. False for the
    in-process model: the same prompt on the same CPU takes as long again, so a timeout there
    only moves on to the route's next deployment."""


_OPENAI_COMPATIBLE: tuple[Host, ...] = (
    Host("openai", "openai_chat", "https://api.openai.com/v1", key_env="OPENAI_API_KEY"),
    Host(
        "azure",
        "openai_chat",
        "{endpoint}/openai/deployments/{model}",
        key_env="AZURE_OPENAI_API_KEY",
        auth_header="api-key",
        auth_prefix="",
        query={"api-version": "{api_version}"},
        # The base URL names one deployment; the model list lives beside the deployments.
        models_url="{endpoint}/openai/models?api-version={api_version}",
        settings_defaults={"api_version": "2024-10-21"},
        settings_env={"endpoint": "AZURE_OPENAI_ENDPOINT", "api_version": "OPENAI_API_VERSION"},
    ),
    Host("huggingface", "openai_chat", "https://router.huggingface.co/v1", key_env="HF_TOKEN"),
    Host("sambanova", "openai_chat", "https://api.sambanova.ai/v1", key_env="SAMBANOVA_API_KEY"),
    Host(
        "fireworks",
        "openai_chat",
        "https://api.fireworks.ai/inference/v1",
        key_env="FIREWORKS_API_KEY",
        stream_above_max_tokens=4096,
    ),
    Host("groq", "openai_chat", "https://api.groq.com/openai/v1", key_env="GROQ_API_KEY"),
    Host("together", "openai_chat", "https://api.together.xyz/v1", key_env="TOGETHER_API_KEY"),
    Host("deepseek", "openai_chat", "https://api.deepseek.com/v1", key_env="DEEPSEEK_API_KEY"),
    Host(
        "openrouter",
        "openai_chat",
        "https://openrouter.ai/api/v1",
        key_env="OPENROUTER_API_KEY",
        cache_control=True,
    ),
    Host(
        "mistral",
        "openai_chat",
        "https://api.mistral.ai/v1",
        key_env="MISTRAL_API_KEY",
        renames={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
        unsupported=frozenset({"user", "logprobs", "top_logprobs", "logit_bias"}),
        stream_usage=False,
        body_quirks="mistral",
    ),
    # The same Ollama server's OpenAI-compatible endpoint; ``ollama`` (below) is the native
    # API, the default because it reports usage in every stream and takes ``options``.
    Host(
        "ollama_openai",
        "openai_chat",
        "{endpoint}/v1",
        key_env="OLLAMA_API_KEY",
        key_required=False,
        settings_defaults={"endpoint": "http://localhost:11434"},
        settings_env={"endpoint": "OLLAMA_HOST"},
    ),
    Host(
        "blaxel",
        "openai_chat",
        "{run_url}/{workspace}/models/{model}/v1",
        key_env="BL_API_KEY",
        auth_header="X-Blaxel-Authorization",
        headers={"X-Blaxel-Workspace": "{workspace}"},
        # run.blaxel.ai serves one model per URL: the control API lists them all (and
        # `turnout models --provider NAME --live` asks it for the sandbox flags too).
        models_url="{control_url}/models",
        live_listing="blaxel_control",
        settings_defaults={
            "run_url": "https://run.blaxel.ai",
            "control_url": "https://api.blaxel.ai/v0",
        },
        settings_env={"workspace": "BL_WORKSPACE"},
    ),
    Host("modal", "openai_chat", "", key_env="MODAL_API_KEY", key_required=False),
    Host("custom", "openai_chat", "", key_required=False),
)

_NATIVE: tuple[Host, ...] = (
    # OpenAI's Responses API, for models served only there (``providers.openai.host:
    # openai_responses`` sends every OpenAI model through it).
    Host(
        "openai_responses",
        "openai_responses",
        "https://api.openai.com/v1",
        path="/responses",
        key_env="OPENAI_API_KEY",
    ),
    Host(
        "gemini",
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        path="/models/{model}",
        key_env="GEMINI_API_KEY",
        auth_header="x-goog-api-key",
        auth_prefix="",
    ),
    Host("cohere", "cohere_chat", "https://api.cohere.com", path="/v2/chat", key_env="CO_API_KEY"),
    Host(
        "ollama",
        "ollama_chat",
        "{endpoint}",
        path="/api/chat",
        key_env="OLLAMA_API_KEY",
        key_required=False,
        settings_defaults={"endpoint": "http://localhost:11434"},
        settings_env={"endpoint": "OLLAMA_HOST"},
    ),
    Host(
        "anthropic",
        "anthropic_messages",
        "https://api.anthropic.com/v1",
        path="/messages",
        key_env="ANTHROPIC_API_KEY",
        auth_header="x-api-key",
        auth_prefix="",
        headers={"anthropic-version": "{anthropic_version}"},
        settings_defaults={"anthropic_version": "2023-06-01"},
    ),
)

_LOCAL = Host("local", "local", key_required=False, retry_timeouts=False)

_BEDROCK = Host(
    "bedrock",
    "bedrock_converse",
    "https://bedrock-runtime.{region}.amazonaws.com",
    key_env="AWS_BEARER_TOKEN_BEDROCK",
    # A Bedrock API key (Bearer), or else the access key pair below to SigV4-sign requests.
    credential_settings=("access_key_id", "secret_access_key"),
    settings_defaults={"region": "us-east-1"},
    settings_env={
        "region": "AWS_REGION",
        "access_key_id": "AWS_ACCESS_KEY_ID",
        "secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "session_token": "AWS_SESSION_TOKEN",
    },
)

HOSTS: Mapping[str, Host] = {h.name: h for h in (*_OPENAI_COMPATIBLE, *_NATIVE, _LOCAL, _BEDROCK)}


def get_host(name: str) -> Host | None:
    return HOSTS.get(name)
