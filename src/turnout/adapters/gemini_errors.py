"""Gemini errors: ``google.rpc.Status`` JSON (an HTTP error body, or an error event inside a
stream) classified into the one hierarchy, canonical status first. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..deployment import Deployment
from ..errors import TurnoutError, from_status
from .edge import excerpt, redact

__all__ = ["classify", "map_error"]

_RPC_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
"""google.rpc.Code -> HTTP status, as in google/rpc/code.proto."""


def _seconds(duration: Any) -> float | None:
    """A protobuf Duration in JSON (``"30s"``, ``"1.5s"``) as seconds."""
    if isinstance(duration, str) and duration.endswith("s"):
        try:
            return max(0.0, float(duration[:-1]))
        except ValueError:
            return None
    return None


def classify(
    status: int, err: Mapping[str, Any], headers: Mapping[str, str], d: Deployment
) -> TurnoutError:
    rpc = str(err.get("status") or "")
    message = redact(str(err.get("message") or f"HTTP {status}"), d)
    details = [x for x in err.get("details") or () if isinstance(x, dict)]
    reasons = {x.get("reason") for x in details}
    # An invalid key is a 400 INVALID_ARGUMENT on the wire; it is an authentication failure.
    if reasons & {"API_KEY_INVALID", "API_KEY_EXPIRED"}:
        status = 401
    elif rpc in _RPC_STATUS:
        status = _RPC_STATUS[rpc]
    hdrs = dict(headers)
    if not any(k.lower() in ("retry-after", "retry-after-ms") for k in hdrs):
        for x in details:
            wait = _seconds(x.get("retryDelay"))
            if wait is not None:
                hdrs["retry-after"] = f"{wait:g}"
    shown = f"{rpc}: {message}" if rpc else message
    if status == 499:
        status = 500
    return from_status(status, shown, headers=hdrs, provider=d.provider, model=d.model)


def map_error(status: int, raw: bytes, headers: Mapping[str, str], d: Deployment) -> TurnoutError:
    """The hierarchy's error for a Gemini error response (``google.rpc.Status`` JSON)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, list) and obj:  # some Google front ends wrap the error in a list
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        text = excerpt(raw, 500) or f"HTTP {status}"
        err = {"message": text}
    return classify(status, err, headers, d)
