"""The web console at ``/``: the single-page app built from ``ui/`` into the package,
served from memory with a strict Content-Security-Policy and long-lived caching of its
content-hashed assets. ``server.console: false`` leaves it out.

The files are read once, when the app is built (a few hundred KB at most), so a request for
them does no file I/O on the event loop; a gzip copy is kept beside each, for clients that
accept it.
"""

from __future__ import annotations

import gzip
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

__all__ = ["CSP", "console_routes"]

log = logging.getLogger("turnout.server")

# No inline script or style element, nothing from another origin: the app's own files and the
# gateway's API only. (uPlot and Preact set element.style through the DOM, which CSP allows.)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
_NEVER = "no-store"


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    gzipped: bytes | None
    media_type: str


def _load(path: Path) -> _File:
    body = path.read_bytes()
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type in ("application/javascript", "image/svg+xml"):
        media_type += "; charset=utf-8" if "charset" not in media_type else ""
    packed = gzip.compress(body, 9, mtime=0) if len(body) > 1024 else None
    return _File(body, packed if packed and len(packed) < len(body) else None, media_type)


def _respond(request: Request, f: _File, cache: str) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    body = f.body
    if f.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = f.gzipped
        headers["Content-Encoding"] = "gzip"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(b"", headers=headers, media_type=f.media_type)
    return Response(body, headers=headers, media_type=f.media_type)


def console_routes(static: Path) -> list[Route]:
    """``GET /`` (index.html, never cached) and ``GET /assets/{name}`` (hashed names, cached
    for a year). Without a build, ``/`` says how to make one."""
    index_path = static / "index.html"
    index = _load(index_path) if index_path.is_file() else None
    assets = {p.name: _load(p) for p in sorted((static / "assets").glob("*")) if p.is_file()}
    if index is None:
        log.warning("web console not built (%s missing): run 'make console'", index_path)

    async def serve_index(request: Request) -> Response:
        if index is None:
            return PlainTextResponse(
                "The Turnout console is not built: run 'make console' (needs Node.js 20 and "
                "npm) and restart. The API is unaffected.",
                status_code=503,
                headers=SECURITY_HEADERS,
            )
        return _respond(request, index, _NEVER)

    async def serve_asset(request: Request) -> Response:
        f = assets.get(request.path_params["name"])
        if f is None:
            return PlainTextResponse(
                "no such console asset", status_code=404, headers=SECURITY_HEADERS
            )
        return _respond(request, f, _IMMUTABLE)

    return [
        Route("/", serve_index, methods=["GET", "HEAD"]),
        Route("/assets/{name}", serve_asset, methods=["GET", "HEAD"]),
    ]
