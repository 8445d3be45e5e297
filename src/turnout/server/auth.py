"""Who is asking, decided once per request by one rule for every route. A route declares what
it needs (``Need``) in the route table; ``resolve_caller`` applies the rule:

    public   anyone (health, the OpenAPI description)
    caller   the master key, a gateway key, or anyone on a server without a master key
    master   the master key; anyone on a server without one
    admin    the master key, and the server must have one

A key is read from ``Authorization: Bearer`` (OpenAI, recent Anthropic SDKs) or ``x-api-key``
(Anthropic). Failures are ``AuthenticationError`` (no key, or an unknown one: 401) and
``PermissionDeniedError`` (a known key that may not do this: 403).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from ..accounting import Accounting, GatewayKey
from ..accounting.keys import SECRET_PREFIX
from ..errors import AuthenticationError, PermissionDeniedError

__all__ = ["Caller", "Need", "presented_key", "resolve_caller"]

Need = Literal["public", "caller", "master", "admin"]


@dataclass(frozen=True, slots=True)
class Caller:
    key: GatewayKey | None = None
    """The gateway key presented; None for the master key or an open server."""
    master: bool = False
    """Presented the master key (or asked a master-level route of an open server)."""

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None


ANONYMOUS = Caller()


def presented_key(request: Request) -> str | None:
    """The API key a client sent: ``Authorization: Bearer`` (OpenAI) or ``x-api-key``
    (Anthropic)."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def resolve_caller(request: Request, need: Need, surface: str) -> Caller:
    """The caller of ``request`` if it may use a route that needs ``need``; ``surface`` names
    the route's API in the errors (``the management API``)."""
    if need == "public":
        return ANONYMOUS
    master: str | None = request.app.state.master_key
    token = presented_key(request)
    is_master = (
        token is not None
        and master is not None
        and hmac.compare_digest(token.encode(), master.encode())
    )
    if need != "caller":
        if master is None:
            if need == "admin":
                raise PermissionDeniedError(
                    f"{surface} needs a master key: set server.master_key (or TURNOUT_MASTER_KEY)"
                )
            return Caller(master=True)
        if token is None:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <master key>'")
        if not is_master:
            raise PermissionDeniedError(f"{surface} needs the master key")
        return Caller(master=True)
    if token is None:
        if master is None:
            return ANONYMOUS
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    if is_master:
        return Caller(master=True)
    accounting: Accounting | None = request.app.state.accounting
    key = await accounting.authenticate(token) if accounting is not None else None
    if key is not None:  # a revoked key is refused by ``authenticate`` itself
        return Caller(key=key)
    # A secret that looks like a gateway key must be a known, live one, whether or not a
    # master key is set: an open server that silently served an unknown key would hide a key
    # made against another database.
    if token.startswith(SECRET_PREFIX):
        where = "" if accounting is not None else " (this server has no key database)"
        raise AuthenticationError(f"unknown gateway key{where}")
    if master is None:
        return ANONYMOUS  # an open server: any other key (SDKs insist on one) is no key at all
    raise AuthenticationError("invalid API key")
