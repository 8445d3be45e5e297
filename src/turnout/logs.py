"""Logging set-up for the server and CLI: one line per record, no secrets (keys never reach a
log record: deployments show only ``key_hint``). ``log_format: json`` writes one JSON object
per line with the id of the request being served (``x-request-id``), for log pipelines."""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

import orjson

__all__ = ["REQUEST_ID", "JsonFormatter", "setup_logging"]

REQUEST_ID: ContextVar[str | None] = ContextVar("turnout_request_id", default=None)
"""The id of the request the current task serves (set by the server's middleware)."""


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id"?, "exc_info"?}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            out["request_id"] = request_id
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    if fmt == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    else:
        logging.basicConfig(
            level=level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    logging.getLogger("turnout").setLevel(level.upper())
