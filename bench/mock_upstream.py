"""A mock OpenAI Chat Completions upstream that costs almost nothing per request, so that what
the benchmark measures is the gateway in front of it (TensorZero's benchmark method).

    python -m bench.mock_upstream --port 9000

Non-streaming requests get one fixed ~560-byte ``chat.completion`` with usage. Streaming
requests (``"stream": true`` in the body) get a role chunk, N one-word content deltas, a finish
chunk that carries usage, then ``data: [DONE]``. Options live in the URL path, before
``/v1``, so one mock serves every scenario and a gateway just points a provider at it:

    /v1/chat/completions                  8 deltas, no delay
    /n64/p20/v1/chat/completions          64 deltas, 20 ms between deltas
    /d5/v1/chat/completions               5 ms before the response starts

Written on a raw asyncio protocol with httptools (uvloop when present) rather than a web
framework: a framework costs more per request than the gateways being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
from typing import Any

import httptools
import orjson

__all__ = [
    "CHAT_COMPLETION",
    "MockOptions",
    "close_connections",
    "options_from_path",
    "serve",
    "start",
    "stream_events",
]

CHAT_COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-mock0000000000000000000000",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "mock-model",
        "system_fingerprint": "fp_mock",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": (
                        "This is a fixed answer from the mock upstream. It is long enough to "
                        "look like a short real completion, so that the gateway parses and "
                        "forwards a realistic body, and it never changes from one request "
                        "to the next one, ever."
                    ),
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 21, "completion_tokens": 42, "total_tokens": 63},
    }
)

_WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " dog")
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_OPTION_RE = re.compile(r"^([ndp])(\d+)$")


class MockOptions:
    __slots__ = ("chunks", "delay", "pace")

    def __init__(self, chunks: int = 8, pace: float = 0.0, delay: float = 0.0) -> None:
        self.chunks = chunks
        self.pace = pace
        self.delay = delay


def options_from_path(path: str) -> MockOptions | None:
    """Options from ``/n64/p20/d5/v1/chat/completions``; None when it is not that route."""
    if not path.endswith("/chat/completions"):
        return None
    opts = MockOptions()
    for part in path.split("/")[1:-2]:
        m = _OPTION_RE.match(part)
        if m is None:
            continue  # "v1" and anything else a gateway adds
        key, value = m.group(1), int(m.group(2))
        if key == "n":
            opts.chunks = max(1, value)
        elif key == "p":
            opts.pace = value / 1000
        else:
            opts.delay = value / 1000
    return opts


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    obj: dict[str, Any] = {
        "id": "chatcmpl-mock0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "mock-model",
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def stream_events(chunks: int) -> list[bytes]:
    """Every SSE event of one streamed answer: role, ``chunks`` deltas, finish+usage, DONE."""
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": _WORDS[i % len(_WORDS)]}) for i in range(chunks)]
    usage = {"prompt_tokens": 21, "completion_tokens": chunks, "total_tokens": 21 + chunks}
    events.append(_chunk({}, "stop", usage))
    events.append(b"data: [DONE]\n\n")
    return events


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_JSON_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n" % len(CHAT_COMPLETION)
)
_JSON_RESPONSE = _JSON_HEAD + CHAT_COMPLETION
EMBEDDINGS = orjson.dumps(
    {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": 0,
                "embedding": [round(i / 1000 - 0.384, 6) for i in range(768)],
            }
        ],
        "model": "mock-embedding",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
)
"""A 768-dimension vector for one input (``POST .../embeddings``, any body)."""
_EMBED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n" % len(EMBEDDINGS)
) + EMBEDDINGS
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
)
_NOT_FOUND_BODY = b'{"error":{"message":"not found","type":"invalid_request_error"}}'
_STREAMS: dict[int, list[bytes]] = {}
_OPEN: set[asyncio.Transport] = set()


class _Protocol(asyncio.Protocol):
    """One keep-alive connection; requests on it are answered in order."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.queue: asyncio.Queue[tuple[MockOptions, bool]] | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        _OPEN.add(self.transport)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        _OPEN.discard(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        body = b"".join(self.body)
        if path.endswith("/embeddings"):
            self.transport.write(_EMBED_RESPONSE)
            return
        opts = options_from_path(path)
        if opts is None:
            self.transport.write(_NOT_FOUND % len(_NOT_FOUND_BODY) + _NOT_FOUND_BODY)
            return
        streaming = _STREAM_RE.search(body) is not None
        if not streaming and not opts.delay and not self.busy:
            self.transport.write(_JSON_RESPONSE)  # the hot case: no task, no copy
            return
        # Anything slower runs as a task; later requests on this connection wait for it.
        if self.queue is None:
            self.queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._worker())
        self.busy = True
        self.queue.put_nowait((opts, streaming))

    async def _worker(self) -> None:
        assert self.queue is not None and self.transport is not None
        while True:
            opts, streaming = await self.queue.get()
            if opts.delay:
                await asyncio.sleep(opts.delay)
            if self.transport.is_closing():
                return
            if streaming:
                await self._stream(opts)
            else:
                self.transport.write(_JSON_RESPONSE)
            self.busy = not self.queue.empty()

    async def _stream(self, opts: MockOptions) -> None:
        assert self.transport is not None
        events = _STREAMS.get(opts.chunks)
        if events is None:
            events = _STREAMS[opts.chunks] = stream_events(opts.chunks)
        # Role chunk and first word at once; then one word per ``pace``; finish and [DONE]
        # right after the last word.
        self.transport.write(_SSE_HEAD + _http_chunk(events[0] + events[1]))
        for event in events[2:-2]:
            if opts.pace:
                await asyncio.sleep(opts.pace)
            if self.transport.is_closing():
                return
            self.transport.write(_http_chunk(event))
        self.transport.write(_http_chunk(events[-2] + events[-1]) + b"0\r\n\r\n")


async def start(host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` in the running loop; the caller owns the server."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(_Protocol, host, port, reuse_port=True, backlog=4096)


def close_connections() -> None:
    """Close every open client connection (for an embedding test's clean shutdown)."""
    for transport in list(_OPEN):
        transport.close()


async def serve(host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    server = await start(host, port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _run(host: str, port: int) -> None:
    try:
        import uvloop

        uvloop.run(serve(host, port))
    except ImportError:
        asyncio.run(serve(host, port))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--procs", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)"
    )
    args = parser.parse_args(argv)
    children = []
    for _ in range(args.procs - 1):
        pid = os.fork()
        if pid == 0:
            _run(args.host, args.port)
            os._exit(0)
        children.append(pid)
    try:
        _run(args.host, args.port)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
