"""Writing a streamed body for the vendor fakes: frames in order, optionally paced, optionally
cut off (the connection dropped under a half-written response)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .script import drop


async def write_frames(
    request: web.Request,
    frames: list[bytes],
    content_type: str,
    *,
    chunk_delay: float = 0.0,
    cut: bool = False,
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    await resp.prepare(request)
    for frame in frames:
        await resp.write(frame)
        if chunk_delay:
            await asyncio.sleep(chunk_delay)
    if cut:
        return await drop(request, resp)
    await resp.write_eof()
    return resp
