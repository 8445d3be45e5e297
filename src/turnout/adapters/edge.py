"""The thin network edge shared by every HTTP adapter: one ``UpstreamCall`` object per call to
one deployment, holding the pooled session, the deployment, its timeouts and its wire API's
error mapping. It posts with the connect timeout, reads a whole answer or opens a streamed
one, keeps the response headers, and turns transport failures and upstream error statuses into
the error hierarchy. Translation stays in each adapter.
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
from ..redaction import excerpt

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

__all__ = ["ErrorMapper", "UpstreamCall", "excerpt", "loads", "redact"]

ErrorMapper = Callable[[int, bytes, Mapping[str, str], Deployment], TurnoutError]
"""``map_error(status, raw_body, headers, deployment)`` of one wire API."""


class UpstreamCall:
    """One call to one deployment. ``headers`` holds the upstream's response headers once an
    answer has arrived (Bedrock's request id is read from them)."""

    __slots__ = ("_http", "_map_error", "d", "headers", "t")

    def __init__(
        self, http: HttpPool, d: Deployment, t: TimeoutsConfig | None, map_error: ErrorMapper
    ) -> None:
        self._http = http
        self.d = d
        self.t = t
        self._map_error = map_error
        self.headers: Mapping[str, str] = {}

    async def post(
        self, url: str | URL, headers: Mapping[str, str], body: bytes
    ) -> aiohttp.ClientResponse:
        """Send one request; only the connection is bounded here (the executor bounds the
        rest). ``url`` may be a ``yarl.URL(..., encoded=True)`` when the path was signed as
        escaped and must go out unchanged (Bedrock's SigV4)."""
        import aiohttp

        d, connect = self.d, self.t.connect if self.t is not None else None
        try:
            resp = await self._http.session().post(
                url,
                data=body,
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect, connect=connect),
            )
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"no connection within {connect:g}s",
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
        self.headers = resp.headers
        return resp

    async def read(self, url: str | URL, headers: Mapping[str, str], body: bytes) -> bytes:
        """POST and return the whole answer's bytes; an error status raises the wire API's
        error."""
        import aiohttp

        d = self.d
        resp = await self.post(url, headers, body)
        try:
            raw = await resp.read()
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"connection lost reading the response: {exc}", provider=d.provider, model=d.model
            ) from None
        finally:
            resp.release()
        if resp.status >= 400:
            raise self._map_error(resp.status, raw, resp.headers, d)
        return raw

    async def post_json(self, url: str | URL, headers: Mapping[str, str], body: bytes) -> Any:
        """POST and return the decoded JSON answer."""
        return self.loads(await self.read(url, headers, body))

    @asynccontextmanager
    async def open_stream(
        self, url: str | URL, headers: Mapping[str, str], body: bytes
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response of a streamed call, status already checked. A transport failure while
        reading becomes ``UpstreamConnectionError``; a stream left early closes the connection
        (it cannot be reused mid-body), a finished one returns it to the pool."""
        import aiohttp

        d = self.d
        resp = await self.post(url, headers, body)
        clean = False
        try:
            if resp.status >= 400:
                raise self._map_error(resp.status, await resp.read(), resp.headers, d)
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

    async def get(self, url: str, headers: Mapping[str, str], timeout: float) -> tuple[int, bytes]:
        """A GET bounded by ``timeout`` in total (a model listing): the status and the body,
        whatever the status. ``url`` goes out as written (Bedrock signs it so)."""
        import aiohttp
        from yarl import URL

        d = self.d
        try:
            async with self._http.session().get(
                URL(url, encoded=True),
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                self.headers = resp.headers
                return resp.status, await resp.read()
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"no answer within {timeout:g}s", provider=d.provider
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"{type(exc).__name__}: {exc}", provider=d.provider
            ) from None

    def loads(self, data: str | bytes) -> Any:
        """``loads`` for this call's deployment (written out: it runs once per stream
        event)."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _malformed(data, self.d) from None


def loads(data: str | bytes, d: Deployment) -> Any:
    """Upstream JSON (a whole body or one stream event); malformed is the upstream's fault."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _malformed(data, d) from None


def _malformed(data: str | bytes, d: Deployment) -> UpstreamServerError:
    return UpstreamServerError(
        f"malformed upstream JSON: {excerpt(data, 200)!r}", provider=d.provider, model=d.model
    )


def redact(message: str, d: Deployment) -> str:
    """An upstream message with the deployment's key (if echoed back) cut to its hint."""
    if d.api_key and d.api_key in message:
        return message.replace(d.api_key, d.key_hint)
    return message
