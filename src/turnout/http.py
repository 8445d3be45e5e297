"""The upstream HTTP client: one aiohttp session, so one keep-alive pool per upstream host,
created inside the running loop on first use and reused for every request.

aiohttp rather than httpx: httpx's pool degrades badly under concurrency (encode/httpx #3215),
and aiohttp's is the one the benchmark harness measures.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpPool"]


class HttpPool:
    def __init__(self, *, limit: int = 0, limit_per_host: int = 0) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "turnout/0.1"},
            )
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
