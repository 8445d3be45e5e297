"""Gateway keys (virtual keys): what a key may do, how its secret is made and stored, and the
in-process ring that finds a key from a presented secret without touching the database.

A secret is ``sk-tn-`` plus 32 random bytes (256 bits), shown once at creation and stored only
as its SHA-256. A fast unsalted hash is enough here, unlike for passwords: with 256 bits of
entropy no dictionary or brute-force attack applies, and a slow hash (bcrypt, argon2) would add
tens of milliseconds to every cache miss for no gain.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from .db import Database, DatabaseUnavailable, until_migrated

__all__ = ["BudgetSpec", "GatewayKey", "KeyRing", "KeySpec", "hash_secret", "new_key"]

log = logging.getLogger("turnout.keys")

SECRET_PREFIX = "sk-tn-"
_NEGATIVE_TTL = 2.0
_NEGATIVE_MAX = 10_000
_DB_DOWN_PAUSE = 5.0


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


MAX_PER_MINUTE = 2**31 - 1
"""The largest rpm or tpm: what the database's INTEGER column holds on every backend."""
MAX_BUDGET_USD = 1e12


class BudgetSpec(BaseModel):
    """USD per UTC day, per UTC month and in total; None is no limit."""

    # strict: true is not a budget of 1 USD (numbers only; an integer counts as a number)
    model_config = ConfigDict(extra="forbid", strict=True)
    daily: float | None = Field(default=None, gt=0, le=MAX_BUDGET_USD, allow_inf_nan=False)
    monthly: float | None = Field(default=None, gt=0, le=MAX_BUDGET_USD, allow_inf_nan=False)
    total: float | None = Field(default=None, gt=0, le=MAX_BUDGET_USD, allow_inf_nan=False)


class KeySpec(BaseModel):
    """A key's settings as the admin API and the CLI accept them. On update, only the fields
    sent change, and null clears a limit. Every number is bounded (by what the database
    stores) and strictly typed: ``"10"`` or ``true`` is not a limit."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(default="", max_length=200)
    budget: BudgetSpec | None = None
    rpm: int | None = Field(
        default=None, ge=1, le=MAX_PER_MINUTE, description="requests per minute"
    )
    tpm: int | None = Field(default=None, ge=1, le=MAX_PER_MINUTE, description="tokens per minute")
    models: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None,
        max_length=1000,
        description="allowed routes or models; glob patterns like 'openai:*'",
    )

    def columns(self) -> dict[str, Any]:
        """The database columns this spec sets (only the fields that were sent)."""
        out: dict[str, Any] = {}
        sent = self.model_fields_set
        if "name" in sent:
            out["name"] = self.name
        if "budget" in sent:
            budget = self.budget or BudgetSpec()
            for kind in ("daily", "monthly", "total"):
                if self.budget is None or kind in budget.model_fields_set:
                    out[f"budget_{kind}"] = getattr(budget, kind)
        if "rpm" in sent:
            out["rpm"] = self.rpm
        if "tpm" in sent:
            out["tpm"] = self.tpm
        if "models" in sent:
            out["allowed_models"] = self.models
        return out


@dataclass(frozen=True, slots=True)
class GatewayKey:
    id: str
    name: str
    last4: str
    created_at: float
    updated_at: float
    revoked_at: float | None = None
    budget_daily: float | None = None
    budget_monthly: float | None = None
    budget_total: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    allowed_models: tuple[str, ...] | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> GatewayKey:
        models = row.get("allowed_models")
        return cls(
            id=row["id"],
            name=row["name"],
            last4=row["last4"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            revoked_at=row.get("revoked_at"),
            budget_daily=row.get("budget_daily"),
            budget_monthly=row.get("budget_monthly"),
            budget_total=row.get("budget_total"),
            rpm=row.get("rpm"),
            tpm=row.get("tpm"),
            allowed_models=tuple(models) if models is not None else None,
        )

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def budgets(self) -> dict[str, float]:
        """The budgets set on this key, by period kind."""
        out = {}
        for kind, value in (
            ("daily", self.budget_daily),
            ("monthly", self.budget_monthly),
            ("total", self.budget_total),
        ):
            if value is not None:
                out[kind] = value
        return out

    @property
    def limited(self) -> bool:
        """Whether admission has anything to count for this key."""
        return bool(self.rpm or self.tpm or self.budgets())

    def allows(self, model: str) -> bool:
        if self.allowed_models is None:
            return True
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models)

    def public(self, spend: dict[str, float] | None = None) -> dict[str, Any]:
        """What the admin API and CLI show: never the secret, only its last 4 characters."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "key_hint": f"{SECRET_PREFIX}...{self.last4}",
            "created_at": self.created_at,
            "revoked": self.revoked,
            "revoked_at": self.revoked_at,
            "budget": {
                "daily": self.budget_daily,
                "monthly": self.budget_monthly,
                "total": self.budget_total,
            },
            "rpm": self.rpm,
            "tpm": self.tpm,
            "models": list(self.allowed_models) if self.allowed_models is not None else None,
        }
        if spend is not None:
            out["spend"] = spend
        return out


def new_key(spec: KeySpec, now: float | None = None) -> tuple[dict[str, Any], str]:
    """A database row for a new key, and its secret (to show once)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = time.time() if now is None else now
    row: dict[str, Any] = {
        "id": "key_" + secrets.token_hex(8),
        "name": spec.name,
        "secret_hash": hash_secret(secret),
        "last4": secret[-4:],
        "created_at": now,
        "updated_at": now,
        "revoked_at": None,
        "budget_daily": None,
        "budget_monthly": None,
        "budget_total": None,
        "rpm": None,
        "tpm": None,
        "allowed_models": None,
    }
    row.update(spec.columns())
    return row, secret


class KeyRing:
    """Every key in memory, by secret hash and by id: a request finds its key with one hash
    and one dict lookup. Loaded at start-up and refreshed when keys change (by this process,
    by a Redis notice from another replica, or by polling the database). An unknown secret is
    looked up in the database once (new keys work at once everywhere) and then remembered as
    unknown for two seconds, so a flood of bad keys cannot flood the database.

    A lookup the database cannot answer is never a refusal: a valid key would be refused. It
    waits (bounded) for the start-up migration, whose tables it reads, and otherwise raises
    ``DatabaseUnavailable`` (503 with ``Retry-After``). After a failure the database is left
    alone (503 at once) for five seconds, or until the keys load again, or (a failure before
    the migration was done: likely a missing table) until the migration is done."""

    def __init__(self, db: Database | None, migrated: asyncio.Event | None = None) -> None:
        self._db = db
        self._migrated = migrated
        """Set once the database's start-up migration is done (None: nothing to wait for)."""
        self._by_hash: dict[str, GatewayKey] = {}
        self._by_id: dict[str, GatewayKey] = {}
        self._hash_of: dict[str, str] = {}
        self._unknown: dict[str, float] = {}
        self._db_down_until = 0.0
        self._down_while_migrating = False
        self.version = 0.0
        self.loaded = False

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, key_id: str) -> GatewayKey | None:
        return self._by_id.get(key_id)

    def all(self) -> list[GatewayKey]:
        return sorted(self._by_id.values(), key=lambda k: k.created_at)

    def put_row(self, row: dict[str, Any]) -> GatewayKey:
        key = GatewayKey.from_row(row)
        old_hash = self._hash_of.get(key.id)
        if old_hash is not None and old_hash != row["secret_hash"]:
            self._by_hash.pop(old_hash, None)
        self._by_hash[row["secret_hash"]] = key
        self._hash_of[key.id] = row["secret_hash"]
        self._by_id[key.id] = key
        self._unknown.pop(row["secret_hash"], None)
        self.version = max(self.version, key.updated_at)
        return key

    async def load(self) -> None:
        """Read every key from the database (raises ``DatabaseUnavailable``)."""
        if self._db is None:
            return
        rows = await asyncio.to_thread(self._db.keys)
        self._by_hash.clear()
        self._by_id.clear()
        self._hash_of.clear()
        for row in rows:
            self.put_row(row)
        self.loaded = True
        self._db_down_until = 0.0  # it answers again

    async def reload(self, key_id: str) -> GatewayKey | None:
        if self._db is None:
            return None
        rows = await asyncio.to_thread(self._db.keys, key_id=key_id)
        return self.put_row(rows[0]) if rows else None

    async def find(self, secret: str) -> GatewayKey | None:
        """The key of ``secret``, None when there is none; ``DatabaseUnavailable`` when the
        database must be asked and cannot answer (not migrated yet, or down)."""
        digest = hash_secret(secret)
        key = self._by_hash.get(digest)
        if key is not None or self._db is None or not secret.startswith(SECRET_PREFIX):
            return key  # every gateway key has the prefix: no other secret is worth a query
        if self._unknown.get(digest, 0.0) > time.monotonic():
            return None
        if self._migrated is not None and not self._migrated.is_set():
            # The tables may not exist yet: wait (bounded), rather than refuse a valid key.
            log.debug("a gateway key lookup waits for the start-up migration")
            await until_migrated(self._migrated)
        paused = self._paused()
        if paused is not None:
            raise paused
        try:
            rows = await asyncio.to_thread(self._db.keys, secret_hash=digest)
        except DatabaseUnavailable as exc:
            # Do not make every request with an unknown key wait on a dead database.
            log.warning(
                "cannot look up a gateway key (lookups answer 503 for %g s): %s",
                _DB_DOWN_PAUSE,
                exc,
            )
            self._db_down_until = time.monotonic() + _DB_DOWN_PAUSE
            self._down_while_migrating = self._migrating()
            paused = self._paused()
            assert paused is not None
            raise paused from exc
        if rows:
            return self.put_row(rows[0])
        now = time.monotonic()
        if len(self._unknown) >= _NEGATIVE_MAX:
            self._unknown = {h: t for h, t in self._unknown.items() if t > now}
            if len(self._unknown) >= _NEGATIVE_MAX:
                self._unknown.clear()
        self._unknown[digest] = now + _NEGATIVE_TTL
        return None

    def _migrating(self) -> bool:
        return self._migrated is not None and not self._migrated.is_set()

    def _paused(self) -> DatabaseUnavailable | None:
        """The 503 of a lookup while the database is left alone after a failure (a failure
        before the migration was done, likely a missing table, ends with the migration). Its
        message names no URL or driver error: a client reads it, the log has them."""
        left = self._db_down_until - time.monotonic()
        if left <= 0 or (self._down_while_migrating and not self._migrating()):
            return None
        if self._migrating():
            why, left = "is being migrated at start-up", 1.0
        else:
            why = "is unavailable"
        return DatabaseUnavailable(
            f"gateway keys cannot be checked now: the key database {why}; retry shortly",
            retry_after=left,
        )

    async def poll(self) -> bool:
        """Reload everything when the database says a key changed; True if it did."""
        if self._db is None:
            return False
        version = await asyncio.to_thread(self._db.keys_version)
        if version > self.version or not self.loaded:
            await self.load()
            return True
        return False
