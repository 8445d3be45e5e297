"""Incremental Server-Sent Events decoder (WHATWG "event stream interpretation").

Written by hand, on purpose: aiohttp has no SSE client, the maintained parsers (httpx-sse,
sseclient) are tied to another HTTP client or to blocking I/O, and this sits on the hot path of
every streamed token, where one bytes-level pass per network read is what we want. It survives
comment lines, CRLF / CR / LF endings, events and lines split across reads, multi-line data,
and a stream that ends without a blank line.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(slots=True)
class ServerSentEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEDecoder:
    __slots__ = ("_buf", "_data", "_event", "_id", "_skip_lf")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Add bytes from the network; return the events completed by them."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A CR at the very end ends its line now; its LF, if it is a CRLF, is in flight.
            self._skip_lf = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        out: list[ServerSentEvent] = []
        for line in lines:
            self._line(line, out)
        return out

    def close(self) -> list[ServerSentEvent]:
        """End of stream: flush a final event that had no trailing blank line."""
        out: list[ServerSentEvent] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[ServerSentEvent]) -> None:
        if not line:
            if self._data:
                out.append(ServerSentEvent("\n".join(self._data), self._event, self._id))
            self._data = []
            self._event = None
            return
        if line[0] == 0x3A:  # ":" comment / keep-alive
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        text = value.decode("utf-8", errors="replace")
        if name == b"data":
            self._data.append(text)
        elif name == b"event":
            self._event = text
        elif name == b"id":
            self._id = text
        # "retry" and unknown fields are ignored, as the spec says.
