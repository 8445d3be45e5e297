"""Stored responses of ``POST /v1/responses`` (table ``responses``, migration 0005): the
response object and the input items it was given, so that ``previous_response_id`` continues a
conversation and ``GET`` / ``DELETE /v1/responses/{id}`` and ``.../input_items`` answer. A
gateway key sees only the responses made with it; the master key (or an open server) sees all.
Old rows go with the request log's retention (``Database.prune``).

Saved on the request path, not through the request log's queue: a client continues a
conversation the moment it has the answer, so the row must be there by then.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .db import Database, until_migrated

__all__ = ["ResponseStore", "StoredResponse"]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    """Every item the model was given as input, earlier turns first."""


class ResponseStore:
    def __init__(self, db: Database, migrated: asyncio.Event) -> None:
        self.db = db
        self._migrated = migrated

    async def _ready(self) -> None:
        """Wait a moment for this server's migration (another process may have done it)."""
        await until_migrated(self._migrated)  # then try anyway: a failure is a 503

    def _t(self) -> Any:
        return self.db.tables()["responses"]

    @staticmethod
    def _mine(t: Any, query: Any, key_id: str | None, everyone: bool) -> Any:
        return query if everyone else query.where(t.c.key_id == key_id)

    async def save(
        self, response: dict[str, Any], items: list[dict[str, Any]], key_id: str | None
    ) -> None:
        row = {
            "id": response["id"],
            "key_id": key_id,
            "created_at": float(response["created_at"]),
            "model": str(response["model"])[:300],
            "status": response["status"],
            "previous_response_id": response.get("previous_response_id"),
            "response": orjson.dumps(response).decode(),
            "input_items": orjson.dumps(items).decode(),
        }

        def run() -> None:
            with self.db.engine().begin() as conn:
                conn.execute(self._t().insert(), [row])

        await self._ready()
        await asyncio.to_thread(self.db._guard, run)

    async def get(self, id: str, key_id: str | None, everyone: bool) -> StoredResponse | None:
        """The response ``id`` if this caller may see it; None otherwise."""

        def run() -> StoredResponse | None:
            from sqlalchemy import select

            t = self._t()
            query = self._mine(t, select(t.c.response, t.c.input_items), key_id, everyone)
            with self.db.engine().connect() as conn:
                row = conn.execute(query.where(t.c.id == id)).first()
            if row is None:
                return None
            return StoredResponse(orjson.loads(row[0]), orjson.loads(row[1]))

        await self._ready()
        found: StoredResponse | None = await asyncio.to_thread(self.db._guard, run)
        return found

    async def delete(self, id: str, key_id: str | None, everyone: bool) -> bool:
        def run() -> bool:
            t = self._t()
            query = self._mine(t, t.delete().where(t.c.id == id), key_id, everyone)
            with self.db.engine().begin() as conn:
                return bool(conn.execute(query).rowcount)

        await self._ready()
        deleted: bool = await asyncio.to_thread(self.db._guard, run)
        return deleted

    @staticmethod
    def page(
        items: list[dict[str, Any]],
        *,
        after: str | None,
        limit: int,
        order: Literal["asc", "desc"],
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of input items (``order`` desc: newest first, as the API defaults), and
        whether more follow; ``after`` is the id of the last item of the previous page."""
        ordered = items if order == "asc" else list(reversed(items))
        start = 0
        if after is not None:
            ids = [item.get("id") for item in ordered]
            start = ids.index(after) + 1 if after in ids else len(ordered)
        chunk = ordered[start : start + limit]
        return chunk, start + limit < len(ordered)
