"""Logging set-up for the server and CLI: one line per record, and no secret in any of them:
every record handled by the root logger's handlers (the server's own, uvicorn's, the
library's) passes through the gateway's ``Redactor`` first (``RedactingFilter``).
``log_format: json`` writes one JSON object per line with the id of the request being served
(``x-request-id``), for log pipelines."""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

import orjson

from .redaction import Redactor

__all__ = ["REQUEST_ID", "JsonFormatter", "RedactingFilter", "redact_logs_with", "setup_logging"]

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
        if record.exc_text:  # the traceback as the redacting filter left it
            out["exc_info"] = record.exc_text
        elif record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


_PLAIN = (int, float, bool, type(None))


class RedactingFilter(logging.Filter):
    """Redacts a record in place: its message and the text of its exception and stack.
    Installed on handlers, so records of every logger that reaches them are covered (a
    logger's own filters see only that logger's records).

    A record whose message holds nothing to redact is left as it is (the common case costs
    one formatting of the message and one redaction). Otherwise each argument is redacted,
    so that formatters that read ``args`` themselves (uvicorn's access log) still find them;
    if the message that gives still holds a secret (one split between the format string and
    an argument), the record gets the redacted message and no arguments."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def _arg(self, value: Any) -> Any:
        return value if isinstance(value, _PLAIN) else self.redactor(str(value))

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A malformed record (arguments that do not fit): keep what it says, redacted.
            message = f"{record.msg} {record.args!r}"
            record.msg, record.args = message, None
        clean = redact(message)
        if clean != message:
            record.msg = redact(str(record.msg))
            if isinstance(record.args, dict):
                record.args = {k: self._arg(v) for k, v in record.args.items()}
            elif record.args:
                record.args = tuple(self._arg(v) for v in record.args)
            try:
                again: str | None = record.getMessage()
            except (TypeError, ValueError):
                again = None
            if again is None or redact(again) != again:
                record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def setup_logging(
    level: str = "info", fmt: str = "text", *, redactor: Redactor | None = None
) -> None:
    """Configure the root logger (``fmt``: ``text`` or ``json``) and put ``redactor`` on every
    handler of the root logger. Run the server with uvicorn's ``log_config=None`` so that its
    records reach these handlers too."""
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
    # Alembic reports each migration step at INFO: noise at start-up unless debugging.
    logging.getLogger("alembic").setLevel("DEBUG" if level == "debug" else "WARNING")
    if redactor is None:
        return
    for root_handler in logging.getLogger().handlers:
        for old in [f for f in root_handler.filters if isinstance(f, RedactingFilter)]:
            root_handler.removeFilter(old)
        root_handler.addFilter(RedactingFilter(redactor))


def redact_logs_with(redactor: Redactor) -> None:
    """Point the redacting filters that ``setup_logging`` installed at ``redactor`` (the
    gateway's after a config reload); does nothing where logging was set up otherwise."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                f.redactor = redactor
