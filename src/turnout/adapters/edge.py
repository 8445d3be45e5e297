"""The thin network edge shared by every HTTP adapter: post on the pooled session with the
connect timeout, read a whole JSON answer, open a streamed one, and turn transport failures
and upstream error statuses into the error hierarchy. Translation stays in each adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import (
    TurnoutError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
)
from ..http import HttpPool

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

__all__ = ["ErrorMapper", "loads", "open_stream", "post", "post_json", "redact"]

ErrorMapper = Callable[[int, bytes, Mapping[str, str], Deployment], TurnoutError]
"""``map_error(status, raw_body, headers, deployment)`` of one wire API."""


async def post(
    http: HttpPool,
    url: str | URL,
    headers: Mapping[str, str],
    body: bytes,
    d: Deployment,
    t: TimeoutsConfig,
) -> aiohttp.ClientResponse:
    """Send one request; only the connection is bounded here (the executor bounds the rest).

    ``url`` may be a ``yarl.URL(..., encoded=True)`` when the path was signed as escaped and
    must go out unchanged (Bedrock's SigV4)."""
    import aiohttp

    try:
        return await http.session().post(
            url,
            data=body,
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=t.connect, connect=t.connect),
        )
    except TimeoutError:
        raise UpstreamTimeoutError(
            f"no connection within {t.connect:g}s",
            provider=d.provider,
            model=d.model,
            code="connect_timeout",
        ) from None
    except aiohttp.ClientError as exc:
        raise UpstreamConnectionError(
            f"cannot reach {d.provider}: {type(exc).__name__}: {exc}",
            provider=d.provider,
            model=d.model,
        ) from None


async def post_json(
    http: HttpPool,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    d: Deployment,
    t: TimeoutsConfig,
    map_error: ErrorMapper,
) -> Any:
    """POST and return the decoded JSON answer; an error status raises ``map_error``'s error."""
    import aiohttp

    resp = await post(http, url, headers, body, d, t)
    try:
        raw = await resp.read()
    except aiohttp.ClientError as exc:
        raise UpstreamConnectionError(
            f"connection lost reading the response: {exc}", provider=d.provider, model=d.model
        ) from None
    finally:
        resp.release()
    if resp.status >= 400:
        raise map_error(resp.status, raw, resp.headers, d)
    return loads(raw, d)


@asynccontextmanager
async def open_stream(
    http: HttpPool,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    d: Deployment,
    t: TimeoutsConfig,
    map_error: ErrorMapper,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The response of a streamed call, status already checked. A transport failure while
    reading becomes ``UpstreamConnectionError``; a stream left early closes the connection
    (it cannot be reused mid-body), a finished one returns it to the pool."""
    import aiohttp

    resp = await post(http, url, headers, body, d, t)
    clean = False
    try:
        if resp.status >= 400:
            raise map_error(resp.status, await resp.read(), resp.headers, d)
        yield resp
        clean = True
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        raise UpstreamConnectionError(
            f"stream interrupted: {type(exc).__name__}: {exc}",
            provider=d.provider,
            model=d.model,
        ) from None
    finally:
        if clean:
            resp.release()
        else:
            resp.close()


def loads(data: str | bytes, d: Deployment) -> Any:
    """Upstream JSON (a whole body or one stream event); malformed is the upstream's fault."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamServerError(
            f"malformed upstream JSON: {data[:200]!r}", provider=d.provider, model=d.model
        ) from None


def redact(message: str, d: Deployment) -> str:
    """An upstream message with the deployment's key (if echoed back) cut to its hint."""
    if d.api_key and d.api_key in message:
        return message.replace(d.api_key, d.key_hint)
    return message
