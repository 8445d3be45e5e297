"""The surface every vendor fake shares (``app``, ``script``, ``calls``, ``reset``, ``then``)
and helpers to write a stream; each vendor module renders the steps in its own wire format."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from .script import Reply


class ScriptedFake:
    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        self.calls: list[dict[str, Any]] = []
        self.app = web.Application()

    def reset(self) -> None:
        self.script.clear()
        self.calls.clear()

    def then(self, *steps: Any) -> ScriptedFake:
        self.script.extend(steps)
        return self

    async def record(self, request: web.Request) -> tuple[dict[str, Any], Any]:
        """Record the call; return its JSON body and the step that answers it."""
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        self.calls.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return body, (self.script.popleft() if self.script else Reply())


async def write_frames(
    request: web.Request,
    frames: list[bytes],
    content_type: str,
    *,
    chunk_delay: float = 0.0,
    cut: bool = False,
) -> web.StreamResponse:
    """Send ``frames`` as a streamed body; with ``cut``, drop the connection after them."""
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    await resp.prepare(request)
    for frame in frames:
        await resp.write(frame)
        if chunk_delay:
            await asyncio.sleep(chunk_delay)
    if cut:
        assert request.transport is not None
        request.transport.close()
        return resp
    await resp.write_eof()
    return resp


def words(text: str) -> list[str]:
    """The text in stream-sized pieces that concatenate back to it exactly."""
    pieces = text.split(" ")
    return [p + " " for p in pieces[:-1]] + [pieces[-1]] if text else []
