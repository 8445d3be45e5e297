"""Filters run before every strategy: which deployments of a route can serve this request.

Hard filters (provider credentials, capability, context window, and any budget hooks the
accounting layer adds) drop what cannot work; when they drop everything the request fails
with a clear error that says why: 503 when only provider keys are missing (the gateway's
configuration, not the client, is at fault), else 400. The health filter drops deployments
cooling down, but when every deployment is cooling down they are all kept: trying is better
than refusing.

A filter is any callable ``(candidate, needs) -> reason | None``: None keeps the candidate,
a string drops it and is logged (and shown in errors) as the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..deployment import Deployment
from ..types import ChatRequest, ImagePart

__all__ = [
    "Filter",
    "Needs",
    "capability_filter",
    "context_filter",
    "credentials_filter",
    "estimate_tokens",
    "request_needs",
]

DEFAULT_OUTPUT_TOKENS = 256
"""Output assumed for a request that sets no limit, when estimating cost and context use."""
_IMAGE_TOKENS = 800
"""A rough per-image prompt cost (OpenAI's high-detail tile estimate is of this order)."""


@dataclass(frozen=True, slots=True)
class Needs:
    """What a request needs from a deployment, computed once per request."""

    capabilities: frozenset[str]
    prompt_tokens: int
    """An estimate: about four characters per token, plus a little per message."""
    output_tokens: int | None
    """The caller's output limit, when it set one."""

    def output_for(self, d: Deployment) -> int:
        """Output tokens to budget for on ``d``: the caller's limit, else the model's
        maximum when smaller than the default assumption."""
        if self.output_tokens is not None:
            return self.output_tokens
        cap = d.entry.max_output if d.entry else None
        return min(DEFAULT_OUTPUT_TOKENS, cap) if cap else DEFAULT_OUTPUT_TOKENS


Filter = Callable[[Deployment, ChatRequest, Needs], "str | None"]


def estimate_tokens(request: ChatRequest) -> int:
    """A cheap prompt-token estimate (no tokenizer on the hot path): characters / 4."""
    chars = 0
    images = 0
    for m in request.messages:
        content = m.content
        if isinstance(content, str):
            chars += len(content)
        elif content:
            for part in content:
                text = getattr(part, "text", None)
                if text:
                    chars += len(text)
                elif isinstance(part, ImagePart):
                    images += 1
        chars += 16  # role and framing
    if request.tools:
        for tool in request.tools:
            fn = tool.function
            chars += len(fn.name) + len(fn.description or "") + 2 * len(str(fn.parameters or ""))
    return chars // 4 + images * _IMAGE_TOKENS


def request_needs(request: ChatRequest) -> Needs:
    caps: set[str] = set()
    if request.tools:
        caps.add("tools")
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        caps.add("json")
    for m in request.messages:
        if (
            m.role == "user"
            and isinstance(m.content, list)
            and any(isinstance(p, ImagePart) for p in m.content)
        ):
            caps.add("vision")
            break
    return Needs(frozenset(caps), estimate_tokens(request), request.output_limit)


def credentials_filter(d: Deployment, request: ChatRequest, needs: Needs) -> str | None:
    """Drop deployments whose provider has no key configured: sending would only earn a 401
    that a client would blame on its own key. The reason names what to set."""
    return d.missing_credentials()


def capability_filter(d: Deployment, request: ChatRequest, needs: Needs) -> str | None:
    """Drop deployments whose catalogue entry lacks a capability the request uses. A model
    the catalogue does not know is kept: its capabilities are unknown, not absent; so is one
    with ``drop_params``, whose adapter drops what the model cannot take."""
    if not needs.capabilities or d.entry is None or d.drop_params:
        return None
    missing = needs.capabilities - d.entry.capabilities
    if missing:
        return "no " + ", ".join(sorted(missing)) + " support"
    return None


def context_filter(d: Deployment, request: ChatRequest, needs: Needs) -> str | None:
    """Drop deployments whose context window cannot hold the prompt plus the output."""
    window = d.entry.context_window if d.entry else None
    if window is None:
        return None
    total = needs.prompt_tokens + needs.output_for(d)
    if total > window:
        return f"context window {window} < about {total} tokens (prompt + output)"
    return None
