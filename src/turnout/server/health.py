"""Health a load balancer and Kubernetes can act on: ``GET /health/live`` (the process
answers) and ``GET /health/ready`` (send it traffic: the config is loaded, the database is
migrated, or unreachable and knowingly degraded, the server is not shutting down). Both are
open (no key) and say nothing secret: no URL, no host name, no error text from the database."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import DatabaseUnavailableError

if TYPE_CHECKING:
    from ..accounting import Accounting

__all__ = ["HEALTH_PATHS", "HEALTH_SCHEMAS", "Readiness", "health_routes"]

log = logging.getLogger("turnout.server")

_PING_TIMEOUT = 2.0
_PING_TTL = 1.0  # probes from several balancers within this window share one query


class Readiness:
    """What ``/health/ready`` reports. ``drain()`` turns it to 503 for good (SIGTERM)."""

    def __init__(self, accounting: Accounting | None, source: str, require_database: bool) -> None:
        self._db = accounting.db if accounting is not None else None
        self._migrated = accounting.migrated if accounting is not None else None
        self.source = source
        self.require_database = require_database
        self.draining = False
        self._pinged = -_PING_TTL
        self._db_ok = True
        self._ping_lock = asyncio.Lock()

    def drain(self) -> None:
        self.draining = True

    async def _database_ok(self) -> bool:
        assert self._db is not None
        async with self._ping_lock:  # one query at a time, however many probes arrive
            if time.monotonic() - self._pinged >= _PING_TTL:
                try:
                    await asyncio.wait_for(asyncio.to_thread(self._db.ping), _PING_TIMEOUT)
                    ok = True
                except (DatabaseUnavailableError, TimeoutError) as exc:
                    ok = False
                    if self._db_ok:
                        log.warning("readiness: the database is unreachable: %s", exc)
                self._db_ok, self._pinged = ok, time.monotonic()
        return self._db_ok

    async def report(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {
            "config": {"status": "loaded", "source": self.source},
            "shutdown": {"status": "draining" if self.draining else "running"},
        }
        database_blocks = False
        if self._db is None:
            checks["database"] = {"status": "off"}
        elif await self._database_ok():
            assert self._migrated is not None
            if self._migrated.is_set():
                checks["database"] = {"status": "ok"}
            else:
                # Reachable, and this process is still migrating it (or waiting for another
                # process's migration): the tables it serves gateway keys from may not exist
                # yet, so not ready, whatever ready_requires_database says.
                database_blocks = True
                checks["database"] = {"status": "migrating"}
        else:
            # Requests are still served: the request log queues (then drops, counted) and
            # known gateway keys stay cached. Whether that is acceptable is the operator's.
            database_blocks = self.require_database
            checks["database"] = {
                "status": "unreachable",
                "degraded": not self.require_database,
            }
        ready = not self.draining and not database_blocks
        return ready, {"status": "ready" if ready else "not ready", "checks": checks}


async def live(request: Request) -> Response:
    uptime = round(time.monotonic() - request.app.state.started, 3)
    return Response(orjson.dumps({"status": "alive", "uptime_s": uptime}), media_type=_JSON)


async def ready(request: Request) -> Response:
    readiness: Readiness = request.app.state.readiness
    ok, body = await readiness.report()
    return Response(
        orjson.dumps(body),
        status_code=200 if ok else 503,
        media_type=_JSON,
        headers={"Cache-Control": "no-store"},
    )


_JSON = "application/json"


def health_routes() -> list[Route]:
    return [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
    ]


HEALTH_SCHEMAS: dict[str, Any] = {
    "Liveness": {
        "type": "object",
        "required": ["status", "uptime_s"],
        "properties": {
            "status": {"const": "alive"},
            "uptime_s": {"type": "number", "minimum": 0},
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["ready", "not ready"]},
            "checks": {
                "type": "object",
                "required": ["config", "database", "shutdown"],
                "properties": {
                    "config": {
                        "type": "object",
                        "required": ["status", "source"],
                        "properties": {
                            "status": {"const": "loaded"},
                            "source": {
                                "type": "string",
                                "description": "the config file, or <defaults>",
                            },
                        },
                    },
                    "database": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {
                            "status": {
                                "enum": ["ok", "off", "migrating", "unreachable"],
                                "description": "migrating: reachable, start-up migrations "
                                "not done yet (not ready)",
                            },
                            "degraded": {
                                "type": "boolean",
                                "description": "unreachable, and serving anyway "
                                "(server.ready_requires_database is false)",
                            },
                        },
                    },
                    "shutdown": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"enum": ["running", "draining"]}},
                    },
                },
            },
        },
    },
}


def _health_op(summary: str, description: str, schema: str, codes: dict[str, str]) -> Any:
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    responses = {code: {"description": d, "content": content} for code, d in codes.items()}
    return {
        "get": {
            "summary": summary,
            "description": description,
            "security": [],
            "responses": responses,
        }
    }


HEALTH_PATHS: dict[str, Any] = {
    "/health/live": _health_op(
        "Liveness: the process answers",
        "For a liveness or startup probe. Open (no key). Never checks dependencies: a down "
        "database must not get the gateway restarted.",
        "Liveness",
        {"200": "alive"},
    ),
    "/health/ready": _health_op(
        "Readiness: send traffic or not",
        "For a readiness probe or a load balancer's health check. Open (no key). 503 from "
        "the moment the server receives SIGTERM, while the start-up migrations of the "
        "database run (database status migrating), and while the database is unreachable when "
        "server.ready_requires_database is true (otherwise 200 with the database reported "
        "degraded). The database is queried at most once a second.",
        "Readiness",
        {"200": "ready", "503": "not ready: see checks"},
    ),
}
