"""``Accounting``: the one object the server talks to for gateway keys, limits, budgets,
alerts and the request log. Built from the config; started and stopped with the server.

On the request path it costs a SHA-256 and a dict lookup (the key), one Redis round trip to
admit and one to settle when Redis is configured (none without Redis), and a ``put_nowait``
into the request log's queue. The database is only touched from background tasks, except to
look up a secret this process has never seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from ..config import Config
from ..errors import (
    AuthenticationError,
    DatabaseUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    TurnoutError,
)
from .alerts import BudgetAlerts
from .db import Database, DatabaseUnavailable, database_url, until_migrated
from .keys import GatewayKey, KeyRing, KeySpec, new_key
from .limits import Limits, LocalLimits, Verdict, check
from .log_queries import model_stats
from .periods import periods_of
from .records import UsageRecord
from .request_log import RequestLog
from .responses import ResponseStore

__all__ = ["Accounting"]

log = logging.getLogger("turnout.accounting")

_POLL_KEYS = 5.0


class Accounting:
    def __init__(self, config: Config) -> None:
        url = database_url(config)
        self.db = Database(url) if url else None
        self.request_log: RequestLog | None = None
        if self.db is not None and config.request_log.enabled:
            self.request_log = RequestLog(self.db, config.request_log, migrate=False)
        self.redis: Any = None
        self.limits: Limits
        if config.redis_url:
            from .redis_limits import RedisLimits

            self.redis = RedisLimits(config.redis_url, config.redis_prefix)
            self.limits = self.redis
        else:
            self.limits = LocalLimits()
        self._local = self.limits if self.redis is None else LocalLimits()
        self.alerts = BudgetAlerts(config.alerts)
        self.migrated = asyncio.Event()
        """Set once the database's start-up migration is done (``_maintain``)."""
        self.keys = KeyRing(self.db, self.migrated)
        self.responses = ResponseStore(self.db, self.migrated) if self.db is not None else None
        """Stored responses of ``/v1/responses`` (None without a database)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redis_down_logged = 0.0
        self._workers = config.server.workers
        self.poll_interval = _POLL_KEYS
        """Seconds between checks of the database for keys changed elsewhere."""
        self.rejections: dict[str, int] = {}
        """Requests refused by admission, by reason (rpm, tpm, budget, revoked, model)."""

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._workers > 1 and self.redis is None:
            log.warning(
                "%d worker processes without redis_url: each enforces gateway key limits and "
                "budgets on its own (up to %dx the limit); set redis_url to share them",
                self._workers,
                self._workers,
            )
        if self.db is not None:
            self._spawn(self._maintain())
        if self.request_log is not None:
            self.request_log.ready = self.migrated
            self.request_log.start()
        if self.redis is not None:
            self.redis.listen(self._on_key_change)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _maintain(self) -> None:
        """Migrate (retrying while the database is down), load the keys, then poll for
        changes made elsewhere (the CLI, another replica without Redis notices)."""
        assert self.db is not None
        delay, warned = 0.5, False
        while not self.migrated.is_set():
            try:
                await asyncio.to_thread(self.db.upgrade)
                self.migrated.set()
            except DatabaseUnavailable as exc:
                if not warned:
                    log.warning("database unavailable, will retry: %s", exc)
                    warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        while True:
            try:
                if await self.keys.poll():
                    await self._seed()
            except DatabaseUnavailable as exc:
                log.debug("key refresh skipped: %s", exc)
            await asyncio.sleep(self.poll_interval)

    async def _seed(self) -> None:
        """Start spend counters from the database for keys with a budget."""
        assert self.db is not None
        keys = [k for k in self.keys.all() if k.budgets() and not k.revoked]
        if not keys:
            return
        rows = await asyncio.to_thread(self.db.spend, periods_of(time.time()))
        for key in keys:
            spent = {p: v for (kid, p), v in rows.items() if kid == key.id}
            if spent:
                await self._call("seed", key.id, spent)

    async def _on_key_change(self, key_id: str) -> None:
        try:
            await self.keys.reload(key_id)
        except DatabaseUnavailable as exc:
            log.warning("cannot refresh key %s after a change notice: %s", key_id, exc)

    async def aclose(self) -> None:
        if self.request_log is not None:
            await self.request_log.aclose()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.alerts.aclose()
        await self.limits.aclose()
        if self.db is not None:
            await asyncio.to_thread(self.db.dispose)

    # --- the request path -----------------------------------------------------------------

    async def authenticate(self, secret: str) -> GatewayKey | None:
        """The live key this secret belongs to; None when unknown. A revoked key known here
        is refused at once (401 ``key_revoked``, counted like admission's refusals), on
        every route; ``admit`` still checks the shared revocation list of other replicas."""
        key = await self.keys.find(secret)
        if key is not None and key.revoked:
            self._rejected("revoked")
            raise AuthenticationError("this API key has been revoked", code="key_revoked")
        return key

    async def _call(self, method: str, *args: Any) -> Any:
        """Call the shared limits; when Redis fails, fall back to this process's counters
        (limits then hold per replica) and say so, rather than refuse every request."""
        try:
            return await getattr(self.limits, method)(*args)
        except TurnoutError:
            raise
        except Exception as exc:
            if self.redis is None or not _is_redis_error(exc):
                raise
            now = time.monotonic()
            if now - self._redis_down_logged > 10:
                log.warning("Redis unavailable, limits are per replica until it is back: %s", exc)
                self._redis_down_logged = now
            return await getattr(self._local, method)(*args)

    async def admit(self, key: GatewayKey, model: str, now: float) -> dict[str, str]:
        """Admit a request for ``model`` (a route or model name) or raise the refusal;
        returns the rate-limit headers for the response."""
        if key.revoked:
            self._rejected("revoked")
            return check(key, Verdict("revoked"), now)
        if not key.allows(model):
            self._rejected("model")
            raise PermissionDeniedError(
                f"gateway key '{key.name or key.id}' may not use '{model}'", param="model"
            )
        if self.redis is None and not key.limited:
            return {}
        verdict = await self._call("admit", key, now)
        if verdict.outcome != "ok":
            self._rejected(verdict.outcome)
        return check(key, verdict, now)

    def _rejected(self, reason: str) -> None:
        self.rejections[reason] = self.rejections.get(reason, 0) + 1

    async def settle(
        self, key: GatewayKey | None, record: UsageRecord, others: Sequence[UsageRecord] = ()
    ) -> None:
        """After a request: log it and the records of its other calls (failed attempts, a
        cascade's rejected steps and judge), count their tokens and spend, fire budget
        alerts."""
        if self.request_log is not None:
            for other in others:
                self.request_log.submit(other)
            self.request_log.submit(record)
        if key is None:
            return
        every = (*others, record)
        tokens = sum(r.input_tokens + r.output_tokens for r in every)
        cost = sum(r.cost or 0.0 for r in every)
        if not cost and not (key.tpm and tokens):
            return
        spend = await self._call("settle", key, tokens, cost, record.ts)
        if spend:
            self.alerts.check(key, spend, record.ts)

    def settle_soon(
        self, key: GatewayKey | None, record: UsageRecord, others: Sequence[UsageRecord] = ()
    ) -> None:
        """``settle`` from a place that must not wait (a stream's closing)."""
        if key is None:
            if self.request_log is not None:
                for other in others:
                    self.request_log.submit(other)
                self.request_log.submit(record)
            return
        self._spawn(self.settle(key, record, others))

    # --- administration -------------------------------------------------------------------

    def _need_db(self) -> Database:
        if self.db is None:
            raise DatabaseUnavailableError(
                "gateway keys and the request log need a database: database_url is 'none'",
                code="no_database",
            )
        return self.db

    async def create_key(self, spec: KeySpec) -> tuple[GatewayKey, str]:
        db = self._need_db()
        await self.migrated.wait()
        row, secret = new_key(spec)
        await asyncio.to_thread(db.insert_key, row)
        key = self.keys.put_row(row)
        await self._announce(key.id)
        return key, secret

    async def get_key(self, key_id: str) -> GatewayKey:
        db = self._need_db()
        rows = await asyncio.to_thread(db.keys, key_id=key_id)
        if not rows:
            raise NotFoundError(f"no gateway key '{key_id}'", param="id", code="key_not_found")
        return self.keys.put_row(rows[0])

    async def update_key(self, key_id: str, spec: KeySpec) -> GatewayKey:
        db = self._need_db()
        values = {**spec.columns(), "updated_at": time.time()}
        if not await asyncio.to_thread(db.update_key, key_id, values):
            raise NotFoundError(f"no gateway key '{key_id}'", param="id", code="key_not_found")
        key = await self.get_key(key_id)
        await self._announce(key_id)
        return key

    async def revoke_key(self, key_id: str) -> GatewayKey:
        """Revoke at once: this process's ring, Redis's revoked set (checked by every
        replica's admission), the database, then a change notice."""
        db = self._need_db()
        now = time.time()
        await self._call("revoke", key_id)
        await self._local.revoke(key_id)
        if not await asyncio.to_thread(
            db.update_key, key_id, {"revoked_at": now, "updated_at": now}
        ):
            raise NotFoundError(f"no gateway key '{key_id}'", param="id", code="key_not_found")
        key = await self.get_key(key_id)
        await self._announce(key_id)
        return key

    async def _announce(self, key_id: str) -> None:
        """Tell the other replicas (they also poll the database, so a lost notice only
        delays a change to limits; revocation does not depend on it)."""
        if self.redis is not None:
            try:
                await self.redis.announce(key_id)
            except Exception as exc:
                if not _is_redis_error(exc):
                    raise
                log.warning("could not announce a change to key %s: %s", key_id, exc)

    async def spend(self, key: GatewayKey) -> dict[str, float]:
        values: dict[str, float] = await self._call("spend", key, time.time())
        return {k: round(v, 6) for k, v in values.items()}

    async def list_keys(self) -> list[GatewayKey]:
        db = self._need_db()
        rows = await asyncio.to_thread(db.keys)
        return [self.keys.put_row(r) for r in rows]

    async def model_stats(self, window: float) -> list[dict[str, Any]]:
        db = self._need_db()
        await until_migrated(self.migrated)  # then try anyway: a failure is a 503
        return await asyncio.to_thread(model_stats, db, time.time() - window)


def _is_redis_error(exc: BaseException) -> bool:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, RedisError | OSError)
