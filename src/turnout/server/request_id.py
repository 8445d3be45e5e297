"""A request id on every response: ``x-request-id``, the client's own when it sends a
sensible one (1-128 characters of ``A-Za-z0-9._:/+=-``), else a new one. The same id is in
the request log's ``request_id`` column and in every log record written while the request
is served (``log_format: json`` prints it; see ``logs.py``). The one ASGI wrapper of every
request (``lifecycle.TrackRequests``) sets it and adds the header."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from ..logs import REQUEST_ID

__all__ = ["HEADER", "current_request_id", "request_id"]

HEADER = b"x-request-id"
_SENSIBLE = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")


def current_request_id() -> str | None:
    return REQUEST_ID.get()


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The id of a request with these (ASGI) headers: the client's first ``x-request-id``
    when it is sensible, else 32 new hex digits."""
    for name, value in headers:
        if name == HEADER:
            if _SENSIBLE.fullmatch(value):
                return value
            break
    return os.urandom(16).hex().encode()
