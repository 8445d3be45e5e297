"""A fake Blaxel on loopback: the control API (``/v0/models``, ``/v0/agents``,
``/v0/workspaces``) and the inference gateway (``/{workspace}/models/{model}/v1/...``).

Shapes follow Blaxel's published SDK models: resources are ``{"metadata", "spec", "status"}``;
listings are bare arrays, or ``{"data", "meta": {"hasMore", "nextCursor"}}`` pages (API version
2026-04-28 on; the fake pages ``/agents`` that way); errors are
``{"error", "code", "message"}``. Auth is ``X-Blaxel-Authorization: Bearer <key>`` with
``X-Blaxel-Workspace``. A sandbox model answers inference with 403 "Endpoint not allowed on
sandbox model", as Blaxel does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .openai_upstream import completion
from .script import Reply


def model(name: str, upstream: str, *, sandbox: bool = False, kind: str = "openai") -> dict:
    return {
        "metadata": {
            "name": name,
            "displayName": name.replace("-", " ").title(),
            "workspace": "acme",
            "createdAt": "2026-01-01T00:00:00Z",
            "labels": {},
        },
        "spec": {
            "enabled": True,
            "sandbox": sandbox,
            "runtime": {"type": kind, "model": upstream},
            "policies": [],
        },
        "status": "DEPLOYED",
        "events": [],
    }


MODELS = [
    model("gpt-4o-mini", "gpt-4o-mini"),
    model("sandbox-openai", "gpt-4o-mini", sandbox=True),
    model("claude-haiku", "claude-3-5-haiku", kind="anthropic"),
]
AGENTS = [{"metadata": {"name": f"agent-{i}", "workspace": "acme"}, "spec": {}} for i in range(3)]
WORKSPACES = [{"name": "acme", "displayName": "Acme", "region": "us-pdx-1", "status": "ready"}]


class FakeBlaxel:
    def __init__(self, api_key: str, workspace: str = "acme") -> None:
        self.api_key = api_key
        self.workspace = workspace
        self.calls: list[dict[str, Any]] = []
        self.sandbox_body_json = True
        self.app = web.Application()
        self.app.router.add_get("/v0/models", self._models)
        self.app.router.add_get("/v0/agents", self._agents)
        self.app.router.add_get("/v0/workspaces", self._workspaces)
        self.app.router.add_post("/{workspace}/models/{model}/v1/chat/completions", self._chat)

    def _denied(self, request: web.Request) -> web.Response | None:
        self.calls.append(
            {"path": request.path, "query": dict(request.query), "headers": dict(request.headers)}
        )
        if request.headers.get("X-Blaxel-Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {"error": "Unauthorized", "code": 401, "message": "Invalid or expired token"},
                status=401,
            )
        if request.headers.get("X-Blaxel-Workspace") != self.workspace:
            return web.json_response(
                {"error": "Forbidden", "code": 403, "message": "No access to this workspace"},
                status=403,
            )
        return None

    async def _models(self, request: web.Request) -> web.Response:
        return self._denied(request) or web.json_response(MODELS)

    async def _agents(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        start = int(request.query.get("cursor") or 0)
        page = AGENTS[start : start + 2]
        more = start + 2 < len(AGENTS)
        meta = {"hasMore": more, "nextCursor": str(start + 2) if more else "", "total": 3}
        return web.json_response({"data": page, "meta": meta})

    async def _workspaces(self, request: web.Request) -> web.Response:
        return self._denied(request) or web.json_response(WORKSPACES)

    async def _chat(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        name = request.match_info["model"]
        found = next((m for m in MODELS if m["metadata"]["name"] == name), None)
        if found is None:
            return web.json_response(
                {"error": "Not Found", "code": 404, "message": f"model {name} not found"},
                status=404,
            )
        if found["spec"]["sandbox"]:
            if self.sandbox_body_json:
                return web.json_response(
                    {"error": "Endpoint not allowed on sandbox model", "code": 403}, status=403
                )
            return web.Response(text="Endpoint not allowed on sandbox model", status=403)
        body = await request.json()
        return web.json_response(completion(Reply(text="Hi from Blaxel."), body.get("model", name)))
