"""The OpenAI-compatible HTTP server over the library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .app import create_app

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["app_from_env", "create_app"]


def app_from_env() -> Starlette:
    """The app as a factory, for servers that start one per worker process: each worker
    loads the config the parent named in ``$TURNOUT_CONFIG`` (plus the environment)."""
    from ..config import load_config
    from ..gateway import Gateway
    from ..logs import setup_logging

    config = load_config()
    gateway = Gateway(config)
    setup_logging(config.log_level, config.log_format, redactor=gateway.redactor)
    return create_app(gateway)
