"""The few lines ``turnout serve`` prints before it starts: what it serves, from which config
and database, whether a master key guards it, and a warning for each route deployment that
cannot work as configured (its key is missing)."""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..deployment import why_unusable

__all__ = ["serve_banner"]


def serve_banner(config: Config, gateway: Any, app: Any = None, workers: int = 1) -> list[str]:
    from .. import __version__
    from ..accounting.db import _safe, database_url

    host, port = config.server.host, config.server.port
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    source = "built-in defaults" if config.source == "<defaults>" else config.source
    db = database_url(config)
    master = "on" if config.server.master_key else "off (open to anyone who can reach it)"
    created = "" if db is None or _exists(db) else " (new: created at start-up)"
    lines = [
        f"turnout {__version__} · {url}"
        f"{f' · {workers} workers' if workers > 1 else ''} · config: {source}",
        f"database: {_safe(db) if db else 'off (database_url: none)'}{created}"
        f" · master key: {master}",
    ]
    warnings = []
    routes = gateway.router.routes()
    for route in routes:
        usable = []
        for d in route.deployments:
            why = why_unusable(d)
            if why is None:
                usable.append(d.id)
            else:
                warnings.append(f"warning: route {route.name}: {d.id} cannot work: {why}")
        lines.append(
            f"route {route.name}: {' -> '.join(usable) if usable else 'NO usable deployment'}"
            f" ({len(usable)}/{len(route.deployments)} usable)"
        )
    if not routes:
        default = gateway.router.default_model()
        lines.append(f"no routes: requests name a model; the default is {default}")
    usable_models = [name for name, _ in gateway.models()][len(routes) :]
    lines.append(f"{len(usable_models)} catalogue model(s) usable here (turnout models)")
    console = _console(config)
    if console is not None:
        lines.append(f"console: {url}/" if console else "console: not built (make console)")
    return lines + warnings


def _exists(url: str) -> bool:
    """False only for a SQLite file that is not there yet (PostgreSQL is not asked)."""
    from pathlib import Path

    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists()


def _console(config: Config) -> bool | None:
    """None when the console is switched off (``server.console``), else whether it is built."""
    if not getattr(config.server, "console", False):
        return None
    from ..console import STATIC

    return bool((STATIC / "index.html").is_file())
