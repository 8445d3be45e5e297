"""Conversations of ``turnout chat``, kept in the gateway's database (tables ``conversations``
and ``conversation_messages``, migration 0003) so that ``chat -c`` and ``--cid`` can continue
one. Synchronous, like ``Database``: callers on an event loop use ``asyncio.to_thread``."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import DatabaseUnavailableError
from .db import Database

__all__ = ["Conversation", "Conversations", "open_database"]


@dataclass
class Conversation:
    id: str
    model: str
    system: str | None
    title: str
    created_at: float
    updated_at: float
    messages: list[dict[str, Any]] = field(default_factory=list)
    """``{"role", "content", ...}`` in order, as stored."""

    def chat_messages(self) -> list[dict[str, str]]:
        """The history as request messages (system prompt first)."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [{"role": m["role"], "content": m["content"]} for m in self.messages]


def open_database(url: str) -> tuple[Database, bool]:
    """The database at ``url``, migrated to the shipped head; True when this call created it
    (a new SQLite file, or an empty database given its tables)."""
    db = Database(url)
    created = db._guard(db._stamped) is None
    try:
        db.upgrade()
    except DatabaseUnavailableError:
        # A server starting on the same SQLite file may be migrating it this very moment
        # (PostgreSQL takes a lock; SQLite has none): give it a moment, then check again.
        time.sleep(1.0)
        db.upgrade()
    return db, created


class Conversations:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _t(self, name: str) -> Any:
        return self.db.tables()[name]

    def create(self, model: str, system: str | None, title: str) -> Conversation:
        now = time.time()
        conv = Conversation(
            id=f"cv_{secrets.token_hex(6)}",
            model=model,
            system=system,
            title=" ".join(title.split())[:200] or "(untitled)",
            created_at=now,
            updated_at=now,
        )

        def run() -> None:
            with self.db.engine().begin() as conn:
                conn.execute(
                    self._t("conversations").insert(),
                    [
                        {
                            "id": conv.id,
                            "created_at": now,
                            "updated_at": now,
                            "model": model,
                            "system": system,
                            "title": conv.title,
                        }
                    ],
                )

        self.db._guard(run)
        return conv

    def update(self, conv: Conversation) -> None:
        """Store a changed model or system prompt (``/model``, ``/system``)."""

        def run() -> None:
            t = self._t("conversations")
            with self.db.engine().begin() as conn:
                conn.execute(
                    t.update()
                    .where(t.c.id == conv.id)
                    .values(model=conv.model, system=conv.system, updated_at=time.time())
                )

        self.db._guard(run)

    def add(self, conv: Conversation, role: str, content: str, **meta: Any) -> None:
        """Append a message (``meta``: deployment, tokens, cost, ttft, latency of an answer)."""
        now = time.time()
        row = {"conversation_id": conv.id, "ts": now, "role": role, "content": content, **meta}
        conv.messages.append(row)
        conv.updated_at = now

        def run() -> None:
            t = self._t("conversations")
            with self.db.engine().begin() as conn:
                conn.execute(self._t("conversation_messages").insert(), [row])
                conn.execute(t.update().where(t.c.id == conv.id).values(updated_at=now))

        self.db._guard(run)

    def clear(self, conv: Conversation) -> None:
        """Forget the messages (``/clear``); the conversation and its settings stay."""

        def run() -> None:
            t = self._t("conversation_messages")
            with self.db.engine().begin() as conn:
                conn.execute(t.delete().where(t.c.conversation_id == conv.id))

        self.db._guard(run)
        conv.messages.clear()

    def get(self, cid: str) -> Conversation | None:
        def run() -> Conversation | None:
            from sqlalchemy import select

            t, m = self._t("conversations"), self._t("conversation_messages")
            with self.db.engine().connect() as conn:
                row = conn.execute(select(t).where(t.c.id == cid)).first()
                if row is None:
                    return None
                msgs = conn.execute(
                    select(m).where(m.c.conversation_id == cid).order_by(m.c.id)
                ).all()
            r = row._mapping
            return Conversation(
                id=r["id"],
                model=r["model"],
                system=r["system"],
                title=r["title"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                messages=[dict(x._mapping) for x in msgs],
            )

        found: Conversation | None = self.db._guard(run)
        return found

    def latest_id(self) -> str | None:
        listed = self.list(1)
        return listed[0]["id"] if listed else None

    def list(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recently used conversations, newest first, with their message counts."""

        def run() -> list[dict[str, Any]]:
            from sqlalchemy import func, select

            t, m = self._t("conversations"), self._t("conversation_messages")
            counts = (
                select(m.c.conversation_id, func.count().label("n"))
                .group_by(m.c.conversation_id)
                .subquery()
            )
            query = (
                select(t, func.coalesce(counts.c.n, 0).label("messages"))
                .outerjoin(counts, counts.c.conversation_id == t.c.id)
                .order_by(t.c.updated_at.desc())
                .limit(limit)
            )
            with self.db.engine().connect() as conn:
                return [dict(r._mapping) for r in conn.execute(query)]

        rows: list[dict[str, Any]] = self.db._guard(run)
        return rows
