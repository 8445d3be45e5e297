"""Hot reload of the configuration: SIGHUP, ``POST /api/config/reload`` (master key) and an
optional watch of the file (``server.watch_config``) load it again.

A reload builds a new ``Gateway`` from the file (sharing the old one's connection pools and
loaded models) and switches ``app.state.gateway`` to it in one assignment: requests that
started before keep the gateway they read and finish on it. An invalid file, or one that
changes a setting only a restart can apply, changes nothing: the running config keeps serving
and the error is logged, counted (``turnout_config_reloads_total{result="failed"}``) and
shown by ``GET /api/config/status``, which never shows a value from the file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter, Gauge
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..config import Config, load_config
from ..errors import ConfigError, TurnoutError
from ..logs import redact_logs_with
from .ingress import Handler, endpoint

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..gateway import Gateway

__all__ = ["RELOADABLE", "ConfigReloader", "config_routes", "restart_needed"]

log = logging.getLogger("turnout.server")

RELOADABLE = (
    "providers",
    "routes",
    "models",
    "default_model",
    "drop_params",
    "timeouts",
    "retry",
    "health",
    "routing",
)
"""Top-level sections a reload applies; any other difference needs a restart."""


def restart_needed(old: Config, new: Config) -> list[str]:
    """The settings outside ``RELOADABLE`` that differ, by name (``server.port``,
    ``database_url``), never by value."""
    names: list[str] = []
    for name in Config.model_fields:
        if name in RELOADABLE or name == "source":
            continue
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        if isinstance(a, BaseModel):
            fields = type(a).model_fields
            names.extend(f"{name}.{f}" for f in fields if getattr(a, f) != getattr(b, f))
        else:
            names.append(name)
    return names


class ConfigReloader:
    """Loads the config again on request and switches the app's gateway (see the module
    docstring). One reload at a time."""

    def __init__(self, app: Starlette, gateway: Gateway) -> None:
        self.app = app
        self.source = gateway.config.source
        self.generation = 1
        self.loaded_at = time.time()
        self.last: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._retired: list[Gateway] = []
        self._watch: asyncio.Task[None] | None = None
        registry = app.state.metrics.registry
        self._reloads = Counter(
            "turnout_config_reloads",
            "Configuration reloads, by result (ok, unchanged, failed).",
            ["result"],
            registry=registry,
        )
        self._generation = Gauge(
            "turnout_config_generation",
            "How many configurations this process has run (1 at start, +1 per applied reload).",
            registry=registry,
        )
        self._generation.set(1)

    @property
    def gateway(self) -> Gateway:
        current: Gateway = self.app.state.gateway
        return current

    def _path(self) -> str | None:
        return None if self.source == "<defaults>" else self.source

    async def reload(self, trigger: str) -> dict[str, Any]:
        """Load and apply the file; returns the attempt as ``status`` shows it."""
        async with self._lock:
            attempt: dict[str, Any] = {"at": time.time(), "trigger": trigger}
            try:
                changed = await self._apply()
            except TurnoutError as exc:
                error = self.gateway.redactor(exc.message)  # shown by the API: one redaction
                attempt.update(ok=False, result="failed", error=error, changed=[])
                log.error("config reload (%s) refused, the running config stays: %s", trigger, exc)
            else:
                result = "ok" if changed else "unchanged"
                attempt.update(ok=True, result=result, error=None, changed=changed)
                if changed:
                    log.info(
                        "config reloaded (%s): %s changed; generation %d",
                        trigger,
                        ", ".join(changed),
                        self.generation,
                    )
            self._reloads.labels(attempt["result"]).inc()
            self.last = attempt
            return attempt

    async def _apply(self) -> list[str]:
        old = self.gateway
        config = await asyncio.to_thread(load_config, self._path())
        restart = restart_needed(old.config, config)
        if restart:
            raise ConfigError(
                f"{config.source}: these settings need a restart and were not applied: "
                f"{', '.join(restart)} (nothing was changed; restart to apply them)"
            )
        changed = [s for s in RELOADABLE if getattr(old.config, s) != getattr(config, s)]
        files = old.planner.outcome_files
        if not changed and files is not None and files.stale(old.router.routes()):
            changed = ["outcomes"]  # an outcome file of a ``learned`` route changed
        if not changed:
            return []
        new = old.reconfigured(config)
        if new.state is not old.state:
            await new.state.start()
        if new.planner.needs_classifier(new.router.routes()):
            await new.planner.preload(new.router.routes())
        self.app.state.gateway = new  # the switch: new requests read this from now on
        redact_logs_with(new.redactor)
        self._retired.append(old)
        self.generation += 1
        self.loaded_at = time.time()
        self._generation.set(self.generation)
        return changed

    def status(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "generation": self.generation,
            "loaded_at": self.loaded_at,
            "reloadable": list(RELOADABLE),
            "watching": self._watch is not None and not self._watch.done(),
            "last_attempt": self.last,
        }

    # --- triggers ---------------------------------------------------------------------------

    def install(self, watch: bool) -> None:
        """SIGHUP (main thread only) and, with ``watch``, the file watch."""
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            loop.add_signal_handler(signal.SIGHUP, self._spawn("sighup"))
        if watch and self._path() is not None:
            self._watch = asyncio.create_task(self._watch_file(Path(self.source)))

    def _spawn(self, trigger: str) -> Callable[[], None]:
        tasks: set[asyncio.Task[Any]] = set()

        def start() -> None:
            task = asyncio.get_running_loop().create_task(self.reload(trigger))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        return start

    async def _watch_file(self, path: Path) -> None:
        """Watch the file's directory: editors replace files, and Kubernetes swaps a
        ConfigMap volume's symlinks, rather than write in place."""
        from watchfiles import awatch

        directory = path.resolve().parent if path.exists() else path.parent
        watched = {path.name, "..data"}
        try:
            async for changes in awatch(directory, debounce=500, recursive=False):
                if any(Path(p).name in watched for _, p in changes):
                    await self.reload("watch")
        except (OSError, RuntimeError) as exc:
            log.error("config watch of %s stopped: %s", directory, exc)

    def request_sibling_reload(self) -> bool:
        """With ``--workers N`` each worker is its own process: ask the supervisor to pass
        SIGHUP to all of them (``workers.py``). False when there is no supervisor."""
        if int(os.environ.get("TURNOUT_WORKERS", "1") or 1) <= 1:
            return False
        os.kill(os.getppid(), signal.SIGHUP)
        return True

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        current = self.gateway
        for old in self._retired:
            await old.planner.aclose()
            if old.state is not current.state:
                await old.state.aclose()
        self._retired.clear()


async def reload_endpoint(request: Request) -> Response:
    reloader: ConfigReloader = request.app.state.reloader
    attempt = await reloader.reload("api")
    if not attempt["ok"]:
        body = {
            "error": {
                "message": attempt["error"],
                "type": "invalid_request_error",
                "param": None,
                "code": "config_invalid",
            }
        }
        return Response(orjson.dumps(body), status_code=422, media_type="application/json")
    attempt = {**attempt, "generation": reloader.generation}
    attempt["workers_signalled"] = reloader.request_sibling_reload()
    return Response(orjson.dumps(attempt), media_type="application/json")


async def status_endpoint(request: Request) -> Response:
    reloader: ConfigReloader = request.app.state.reloader
    return Response(orjson.dumps(reloader.status()), media_type="application/json")


def config_routes() -> list[Route]:
    """Both behind the master key, like the management API."""

    def guarded(handler: Handler) -> Handler:
        return endpoint(handler, "master", surface="the management API")

    return [
        Route("/api/config/reload", guarded(reload_endpoint), methods=["POST"]),
        Route("/api/config/status", guarded(status_endpoint), methods=["GET"]),
    ]


_ATTEMPT = {
    "type": ["object", "null"],
    "required": ["at", "trigger", "ok", "result", "error", "changed"],
    "properties": {
        "at": {"type": "number", "description": "Unix time of the attempt"},
        "trigger": {"enum": ["sighup", "api", "watch"]},
        "ok": {"type": "boolean"},
        "result": {"enum": ["ok", "unchanged", "failed"]},
        "error": {
            "type": ["string", "null"],
            "description": "why the file was refused: the file, the key and what was expected, "
            "or the settings that need a restart (names only, never values)",
        },
        "changed": {"type": "array", "items": {"type": "string"}},
        "generation": {"type": "integer"},
        "workers_signalled": {"type": "boolean"},
    },
}

CONFIG_SCHEMAS: dict[str, Any] = {
    "ConfigReload": _ATTEMPT,
    "ConfigStatus": {
        "type": "object",
        "required": ["source", "generation", "loaded_at", "reloadable", "watching"],
        "properties": {
            "source": {"type": "string"},
            "generation": {"type": "integer", "minimum": 1},
            "loaded_at": {"type": "number"},
            "reloadable": {"type": "array", "items": {"type": "string"}},
            "watching": {"type": "boolean"},
            "last_attempt": {"$ref": "#/components/schemas/ConfigReload"},
        },
    },
}


def _content(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


CONFIG_PATHS: dict[str, Any] = {
    "/api/config/reload": {
        "post": {
            "summary": "Load the config file again and apply it (as SIGHUP does)",
            "description": "Master key. Routes, providers, models, strategies, retry, "
            "timeouts and health settings switch for new requests; requests in flight "
            "finish on the old ones. An invalid file, or one changing a setting that needs "
            "a restart, is refused with 422 and the running config stays. With --workers N "
            "the other workers are asked to reload too (workers_signalled).",
            "responses": {
                "200": {
                    "description": "applied, or unchanged",
                    "content": _content("ConfigReload"),
                },
                "422": {"description": "refused", "content": _content("Error")},
                "401": {"description": "no key", "content": _content("Error")},
                "403": {"description": "not the master key", "content": _content("Error")},
            },
        }
    },
    "/api/config/status": {
        "get": {
            "summary": "The running config's generation and the last reload attempt",
            "description": "Master key. Never shows a value from the file.",
            "responses": {
                "200": {"description": "status", "content": _content("ConfigStatus")},
                "401": {"description": "no key", "content": _content("Error")},
                "403": {"description": "not the master key", "content": _content("Error")},
            },
        }
    },
}
