"""The API the web console stands on, beside the admin API: who is signed in, the request
log (listing with filters and cursor paging, one record), a bucketed time series, and
"check the provider keys now". Errors leave in the OpenAI error shape like everywhere else.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any, get_args

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..accounting import Accounting
from ..accounting.db import Database, until_migrated
from ..accounting.log_queries import LogQuery, bucket_for, get_record, list_records, series
from ..accounting.stats import parse_window
from ..config import STRATEGIES, Priority
from ..errors import (
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from ..keyhealth import KeyMonitor, check_keys
from .admin import accounting_of
from .auth import presented_key, resolve_caller
from .ingress import Handler, endpoint

__all__ = ["console_api_routes"]


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


async def session(request: Request) -> Response:
    """Who the presented key makes the caller: ``admin`` (the master key, or anyone when the
    server has no master key: ``open``), ``key`` (a gateway key: the playground only, with
    its own allowed models and spend) or ``none`` (no key presented to a server that needs
    one: the console shows its sign-in). 401 for an unknown or revoked key. Decided by the
    same rule as every route (``auth.resolve_caller``): admin is whoever the admin API
    would let in."""
    out: dict[str, Any] = {
        "role": "admin",
        "open": request.app.state.master_key is None,
        "strategies": list(STRATEGIES),
        "priorities": list(get_args(Priority)),
        "key": None,
    }
    if not out["open"] and presented_key(request) is None:
        out["role"] = "none"
        return _json(out)
    try:
        await resolve_caller(request, "master", "the console")
        return _json(out)
    except PermissionDeniedError:
        pass  # a key, not the master key: what it may do as a caller
    caller = await resolve_caller(request, "caller", "the console")
    accounting: Accounting | None = request.app.state.accounting
    # A server with a master key, a key that is not it: a known gateway key, or a 401 above.
    assert caller.key is not None and accounting is not None
    out["role"] = "key"
    out["key"] = caller.key.public(await accounting.spend(caller.key))
    return _json(out)


async def _log_db(request: Request) -> Database:
    """The request log's database, after waiting up to 5 s for this server's migration (a
    query sent while it runs would find no table). Past that the query is tried anyway:
    another replica may have migrated the schema; if not, it fails as a 503."""
    accounting = accounting_of(request)
    assert accounting.db is not None
    await until_migrated(accounting.migrated)
    return accounting.db


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise BadRequestError(f"query parameter '{name}' must be a whole number", param=name)
    return int(raw)


def _log_query(request: Request) -> LogQuery:
    p = request.query_params
    now = time.time()
    status = p.get("status") or None
    if status is not None and status not in ("ok", "error") and not status.isdigit():
        raise BadRequestError(
            "status must be 'ok', 'error' or a status code such as 429", param="status"
        )
    return LogQuery(
        since=now - parse_window(p.get("since"), default=86400),
        key_id=p.get("key_id") or None,
        route=p.get("route") or None,
        provider=p.get("provider") or None,
        model=p.get("model") or None,
        status=status,
        error=p.get("error") or None,
        message=p.get("message") or None,
        before_id=_int(request, "cursor"),
        limit=_int(request, "limit", 50) or 50,
    )


async def list_requests(request: Request) -> Response:
    db = await _log_db(request)
    q = _log_query(request)
    rows, cursor = await asyncio.to_thread(list_records, db, q)
    return _json({"object": "list", "data": rows, "next_cursor": str(cursor) if cursor else None})


async def get_request(request: Request) -> Response:
    db = await _log_db(request)
    raw = request.path_params["record_id"]
    if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to str.isdigit, not to int()
        raise BadRequestError("a request-log id is a whole number", param="record_id")
    if int(raw) >= 2**63:  # no such row, and past what the database's integer can hold
        raise NotFoundError(f"no request-log record {raw}", code="not_found")
    record = await asyncio.to_thread(get_record, db, int(raw))
    if record is None:
        raise NotFoundError(f"no request-log record {raw}", code="not_found")
    return _json(record)


async def stats_series(request: Request) -> Response:
    db = await _log_db(request)
    window = parse_window(request.query_params.get("window"))
    now = time.time()
    q = replace(_log_query(request), since=now - window, before_id=None)
    bucket = _int(request, "bucket") or bucket_for(window)
    if window / bucket > 1000:
        raise BadRequestError("at most 1000 buckets: choose a wider bucket", param="bucket")
    data = await asyncio.to_thread(series, db, q, now, bucket)
    return _json({"object": "list", "window_s": window, "bucket_s": bucket, "data": data})


async def check_providers(request: Request) -> Response:
    """Check every provider key now, instead of waiting for the monitor's next round."""
    monitor: KeyMonitor | None = request.app.state.key_monitor
    if monitor is not None:
        await monitor.check_now()
        statuses = monitor.snapshot()
    else:
        gateway = request.app.state.gateway
        statuses = await check_keys(gateway.config, gateway.catalogue, gateway.adapters.http)
    return _json({"object": "list", "data": [s.to_json() for s in statuses]})


def console_api_routes() -> list[Route]:
    """The session says who the presented key makes the caller, so anyone may ask; the
    request log and its series are the admin API's (open on a server without a master key);
    checking provider keys is the management API's."""

    def admin(handler: Handler) -> Handler:
        return endpoint(handler, "master", surface="the admin API")

    return [
        Route("/api/console/session", endpoint(session, "public"), methods=["GET"]),
        Route("/api/requests", admin(list_requests), methods=["GET"]),
        Route("/api/requests/{record_id}", admin(get_request), methods=["GET"]),
        Route("/api/stats/series", admin(stats_series), methods=["GET"]),
        Route(
            "/api/models/providers/check",
            endpoint(check_providers, "master", surface="the management API"),
            methods=["POST"],
        ),
    ]
