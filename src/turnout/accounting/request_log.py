"""The request log's writer: records leave the request path through a bounded queue and reach
the database in batches, from one background task.

When the database is down or slow, records wait in the queue (the batch being written is held
and retried with backoff); when the queue is full, new records are dropped, counted in
``dropped`` (and the ``turnout_log_records_dropped_total`` metric) and logged. Memory is bounded
by ``queue_size + batch_size`` records whatever the database does. On shutdown the queue is
flushed for up to ``drain_timeout`` seconds; what cannot be written then is counted as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial

from ..config import RequestLogConfig
from .db import Database, DatabaseUnavailable
from .records import UsageRecord

__all__ = ["RequestLog"]

log = logging.getLogger("turnout.request_log")

_PRUNE_EVERY = 3600.0
_BACKOFF_MAX = 30.0


class RequestLog:
    def __init__(
        self,
        db: Database,
        config: RequestLogConfig,
        *,
        on_drop: Callable[[int], None] | None = None,
        on_write: Callable[[int], None] | None = None,
        migrate: bool = True,
    ) -> None:
        self._db = db
        self._config = config
        self._queue: asyncio.Queue[UsageRecord] = asyncio.Queue(config.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._on_drop = on_drop
        self._on_write = on_write
        self._held: list[UsageRecord] = []
        self._full = asyncio.Event()
        self._last_drop_log = 0.0
        self._unlogged_drops = 0
        self._healthy = True
        self._migrate = migrate
        self.dropped = 0
        self.written = 0
        self.ready = asyncio.Event()
        """Set once the schema is migrated (by this log, or by its owner when ``migrate`` is
        False) and writing can start."""

    @property
    def depth(self) -> int:
        """Records waiting: in the queue plus the batch being written."""
        return self._queue.qsize() + len(self._held)

    def submit(self, record: UsageRecord) -> None:
        """Queue a record; never blocks, never raises."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._drop(1, "the queue is full (the database is down or slow)")
            return
        if self._queue.qsize() >= self._config.batch_size:
            self._full.set()

    def _drop(self, n: int, why: str) -> None:
        self.dropped += n
        self._unlogged_drops += n
        if self._on_drop is not None:
            self._on_drop(n)
        now = time.monotonic()
        # One warning per 10 s with the count since the last one: loud but not a log flood.
        if now - self._last_drop_log >= 10.0:
            log.warning(
                "request log dropped %d record(s): %s (%d dropped in total)",
                self._unlogged_drops,
                why,
                self.dropped,
            )
            self._unlogged_drops = 0
            self._last_drop_log = now

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="turnout-request-log")

    async def _run(self) -> None:
        if self._migrate:
            await self._retry(self._db.upgrade, "migrate the database")
            self.ready.set()
        await self.ready.wait()
        next_prune = 0.0
        while True:
            if not self._held:
                await self._take()
            if self._config.retention_days and time.monotonic() >= next_prune:
                before = time.time() - self._config.retention_days * 86400
                with contextlib.suppress(DatabaseUnavailable):
                    deleted = await asyncio.to_thread(self._db.prune, before)
                    if deleted:
                        log.info("request log: pruned %d record(s) past retention", deleted)
                next_prune = time.monotonic() + _PRUNE_EVERY
            rows = [r.values() for r in self._held]
            try:
                await self._retry(partial(self._db.write_records, rows), "write the request log")
            except Exception:  # a bug, not an outage: retrying would loop forever
                log.exception("request log: a batch of %d record(s) was refused", len(rows))
                self._drop(len(rows), "the database refused the batch")
            else:
                self._written(len(rows))
            self._held = []

    async def _take(self) -> None:
        """Wait for a record, then let more gather until a batch is full or the flush
        interval has passed, and take up to a batch. The writer wakes once per batch, not
        once per record (a wake-up per record would cost more than the insert). Records
        move straight into ``_held`` so ``depth`` never misses one in transit."""
        batch = self._held
        batch.append(await self._queue.get())
        if self._queue.qsize() < self._config.batch_size - 1:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.flush_interval):
                    await self._full.wait()
        while len(batch) < self._config.batch_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _retry(self, step: Callable[[], object], what: str) -> None:
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(step)
            except DatabaseUnavailable as exc:
                if self._healthy:
                    log.warning("request log cannot %s, will retry: %s", what, exc)
                    self._healthy = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            if not self._healthy:
                log.warning("request log: the database is back (%d waiting)", self.depth)
                self._healthy = True
            return

    def _written(self, n: int) -> None:
        self.written += n
        if self._on_write is not None:
            self._on_write(n)

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written; False if that took over ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.depth and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return not self.depth

    async def aclose(self, drain_timeout: float = 5.0) -> None:
        """Write what is queued (for at most ``drain_timeout`` s), then stop."""
        if self._task is None:
            return
        if self.ready.is_set():
            await self.flush(drain_timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        left = self.depth
        if left:
            self._last_drop_log = 0.0
            self._drop(left, "the database was unavailable at shutdown")
        self._held = []
        while not self._queue.empty():
            self._queue.get_nowait()
