"""The AWS side of the Bedrock adapter: credentials, SigV4 signing by botocore's own signer
(signing name ``bedrock``), the control plane beside the runtime (``ListFoundationModels``, which
key health uses), and Bedrock's exceptions mapped onto the error hierarchy.

botocore is the ``bedrock`` extra, imported on first use with an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

import orjson

from ..deployment import Deployment
from ..errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    MissingDependencyError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    TurnoutError,
    UpstreamServerError,
    UpstreamTimeoutError,
    from_status,
    parse_retry_after,
)
from ..redaction import excerpt

__all__ = [
    "SIGNING_NAME",
    "authorise",
    "botocore",
    "classify",
    "control_url",
    "credentials_hint",
    "list_models_request",
    "map_error",
    "sign",
]

SIGNING_NAME = "bedrock"


def aws_credentials(d: Deployment) -> tuple[str, str, str | None] | None:
    access, secret = d.settings.get("access_key_id"), d.settings.get("secret_access_key")
    if access and secret:
        return access, secret, d.settings.get("session_token") or None
    return None


def credentials_hint(d: Deployment) -> str:
    """What may be shown of the credentials in use: the last four characters only."""
    if d.api_key:
        return f"bearer ...{d.api_key[-4:]}" if len(d.api_key) > 8 else "bearer (short)"
    creds = aws_credentials(d)
    if creds:
        return f"sigv4 ...{creds[0][-4:]}"
    return "(unset)"


def botocore(what: str) -> Any:
    """``botocore.<what>``, or an error that names the extra to install."""
    try:
        return import_module(f"botocore.{what}")
    except ImportError:
        raise MissingDependencyError(
            "the Bedrock adapter needs botocore: pip install 'turnout[bedrock]'",
            provider="bedrock",
        ) from None


def sign(
    url: str,
    headers: dict[str, str],
    body: bytes,
    creds: tuple[str, str, str | None],
    region: str,
    method: str = "POST",
) -> dict[str, str]:
    """Headers with SigV4 added by botocore's signer (``Authorization``, ``X-Amz-Date`` and,
    for temporary credentials, ``X-Amz-Security-Token``)."""
    auth, awsrequest, credentials = (
        botocore("auth"),
        botocore("awsrequest"),
        botocore("credentials"),
    )
    req = awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers)
    auth.SigV4Auth(credentials.Credentials(*creds), SIGNING_NAME, region).add_auth(req)
    return dict(req.headers.items())


def authorise(
    url: str, headers: dict[str, str], body: bytes, d: Deployment, method: str = "POST"
) -> dict[str, str]:
    """``headers`` with the deployment's credentials: its Bedrock API key as a Bearer token,
    else a SigV4 signature over exactly this method, URL and body."""
    if d.api_key:
        return {**headers, "Authorization": f"Bearer {d.api_key}"}
    creds = aws_credentials(d)
    if creds is None:
        raise AuthenticationError(
            f"no credentials for provider '{d.provider}': set AWS_BEARER_TOKEN_BEDROCK "
            "(a Bedrock API key), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            f"providers.{d.provider}.api_key / .settings.access_key_id and "
            "secret_access_key in the config",
            provider=d.provider,
            model=d.model,
            code="missing_api_key",
        )
    return sign(url, headers, body, creds, d.settings.get("region", "us-east-1"), method)


def control_url(d: Deployment) -> str:
    """The Bedrock control plane (``bedrock.{region}``) beside the runtime in use: setting
    ``control_url``, else the runtime URL with ``bedrock-runtime.`` made ``bedrock.``, else (a
    custom endpoint, e.g. a proxy or a fake) the runtime URL itself."""
    explicit = d.settings.get("control_url")
    if explicit:
        return explicit.rstrip("/")
    return d.base_url.replace("://bedrock-runtime.", "://bedrock.", 1)


def list_models_request(d: Deployment) -> tuple[str, dict[str, str]]:
    """URL and authorised headers for ``ListFoundationModels`` (``GET /foundation-models``):
    free, and it proves the credentials, so key health uses it."""
    url = control_url(d) + "/foundation-models"
    return url, authorise(url, {"Accept": "application/json", **d.headers}, b"", d, "GET")


_EXCEPTIONS: Mapping[str, type[TurnoutError]] = {
    "ThrottlingException": RateLimitError,
    "ModelNotReadyException": RateLimitError,
    "ServiceQuotaExceededException": RateLimitError,
    "ValidationException": BadRequestError,
    "ConflictException": BadRequestError,
    "ModelTimeoutException": UpstreamTimeoutError,
    "ServiceUnavailableException": OverloadedError,
    "InternalServerException": UpstreamServerError,
    "ModelErrorException": UpstreamServerError,
    "ModelStreamErrorException": UpstreamServerError,
    "AccessDeniedException": PermissionDeniedError,
    "ResourceNotFoundException": NotFoundError,
    # Raised by AWS's front door before Bedrock sees the request: the credentials are wrong.
    "UnrecognizedClientException": AuthenticationError,
    "InvalidSignatureException": AuthenticationError,
    "IncompleteSignatureException": AuthenticationError,
    "MissingAuthenticationTokenException": AuthenticationError,
    "ExpiredTokenException": AuthenticationError,
}
_CONTEXT_HINTS = (
    "input is too long",
    "too many input tokens",
    "too many total text bytes",
    "context window",
    "context length",
    "prompt is too long",
)


def _message(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("message") or obj.get("Message") or "")
    return ""


def classify(
    name: str, status: int, message: str, headers: Mapping[str, str], d: Deployment
) -> TurnoutError:
    kw: dict[str, Any] = {"provider": d.provider, "model": d.model, "code": name or None}
    text = f"{name}: {message}" if name else message
    cls = _EXCEPTIONS.get(name)
    if cls is None and status == 400:
        cls = BadRequestError
    if cls is BadRequestError and any(h in message.lower() for h in _CONTEXT_HINTS):
        return ContextWindowExceededError(text, **kw)
    if cls is RateLimitError:
        return RateLimitError(text, retry_after=parse_retry_after(headers), **kw)
    if cls is not None:
        return cls(text, **kw)
    return from_status(status, text, headers=headers, **kw)


def map_error(status: int, raw: bytes, headers: Mapping[str, str], d: Deployment) -> TurnoutError:
    """The hierarchy's error for a Bedrock error response: the exception's name (header
    ``x-amzn-ErrorType``, else ``__type`` / ``code`` in the body) first, the status second."""
    try:
        obj = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        obj = {}
    message = _message(obj) or excerpt(raw, 500)
    name = headers.get("x-amzn-ErrorType") or headers.get("X-Amzn-ErrorType") or ""
    if not name and isinstance(obj, dict):
        name = str(obj.get("__type") or obj.get("code") or "")
    name = name.split(":", 1)[0].rsplit("#", 1)[-1]
    if d.api_key and d.api_key in message:
        message = message.replace(d.api_key, "..." + d.api_key[-4:])
    return classify(name, status, message or f"HTTP {status}", headers, d)
