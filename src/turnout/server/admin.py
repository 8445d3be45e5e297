"""The admin API over ``Accounting`` (master key required): gateway keys and the request
log's per-model statistics. Errors leave in the OpenAI error shape like everywhere else."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..accounting import Accounting, KeySpec
from ..accounting.stats import parse_window
from ..errors import BadRequestError, DatabaseUnavailableError
from .ingress import Handler, endpoint

__all__ = ["accounting_of", "admin_routes"]


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


def accounting_of(request: Request) -> Accounting:
    """The accounting of the server, which must have a key database."""
    accounting: Accounting | None = request.app.state.accounting
    if accounting is None or accounting.db is None:
        raise DatabaseUnavailableError(
            "gateway keys and the request log need a database: database_url is 'none'",
            code="no_database",
        )
    return accounting


async def _spec(request: Request, *, required: bool = False) -> KeySpec:
    """The body as key settings. A new key may be made from no body (defaults); a change
    needs one (``required``): an empty PATCH is a client mistake, not a no-op."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise BadRequestError('send the settings to change as a JSON object, e.g. {"rpm": 60}')
        raw = b"{}"
    try:
        return KeySpec.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise BadRequestError(f"invalid key settings: {loc}: {err['msg']}", param=loc) from None


async def _shown(accounting: Accounting, key: Any) -> dict[str, Any]:
    return dict(key.public(await accounting.spend(key)))


async def create_key(request: Request) -> Response:
    accounting = accounting_of(request)
    key, secret = await accounting.create_key(await _spec(request))
    return _json({**(await _shown(accounting, key)), "key": secret}, 201)


async def list_keys(request: Request) -> Response:
    accounting = accounting_of(request)
    keys = await accounting.list_keys()
    return _json({"object": "list", "data": [await _shown(accounting, k) for k in keys]})


async def get_key(request: Request) -> Response:
    accounting = accounting_of(request)
    key = await accounting.get_key(request.path_params["key_id"])
    return _json(await _shown(accounting, key))


async def update_key(request: Request) -> Response:
    accounting = accounting_of(request)
    spec = await _spec(request, required=True)
    key = await accounting.update_key(request.path_params["key_id"], spec)
    return _json(await _shown(accounting, key))


async def revoke_key(request: Request) -> Response:
    accounting = accounting_of(request)
    key = await accounting.revoke_key(request.path_params["key_id"])
    return _json(await _shown(accounting, key))


async def model_stats(request: Request) -> Response:
    accounting = accounting_of(request)
    window = parse_window(request.query_params.get("window"))
    data = await accounting.model_stats(window)
    return _json({"object": "list", "window_s": window, "data": data})


def admin_routes() -> list[Route]:
    """Gateway keys need the master key (and a server with one); the statistics, like the
    management API, are open on a server without a master key."""

    def admin(handler: Handler) -> Handler:
        return endpoint(handler, "admin", surface="the admin API")

    return [
        Route("/api/keys", admin(create_key), methods=["POST"]),
        Route("/api/keys", admin(list_keys), methods=["GET"]),
        Route("/api/keys/{key_id}", admin(get_key), methods=["GET"]),
        Route("/api/keys/{key_id}", admin(update_key), methods=["PATCH"]),
        Route("/api/keys/{key_id}", admin(revoke_key), methods=["DELETE"]),
        Route(
            "/api/models/stats",
            endpoint(model_stats, "master", surface="the admin API"),
            methods=["GET"],
        ),
    ]
