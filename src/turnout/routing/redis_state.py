"""``LiveState`` shared by every replica through Redis: the moving averages of TTFT and
latency, success and failure counts, and the circuit breaker (cooldown), so that a deployment
failing on one replica cools down on all of them, and performance-based strategies on every
replica see the same measurements.

Reads and writes stay local and synchronous (a strategy decides in microseconds, never waiting
on the network): this class is a ``MemoryState`` whose writes are also queued, and a
background task sends them to Redis every ``interval`` seconds in one Lua call per deployment
(atomic: averages and failure windows are updated in Redis, not overwritten with a replica's
view), then reads the shared record of every deployment back into the local snapshot. So a
replica sees another's measurements within about ``interval`` (0.5 s by default).

Redis keys: ``{prefix}dep:{deployment}``, a hash with ``ttft``, ``latency``, ``samples``,
``successes``, ``failures``, ``window_start``, ``window_fails``, ``open_until`` (UNIX seconds)
and ``last_error``. Times cross replicas as wall-clock seconds and are turned back into the
local clock when read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..config import HealthConfig
from ..errors import MissingDependencyError
from .state import MemoryState

__all__ = ["RedisState"]

log = logging.getLogger("turnout.routing.redis")

# ARGV: alpha, now (wall), allowed_fails, window, cooldown, health_enabled, then events as
# triples (kind, value, extra): kind t=ttft, l=latency, f=failure (value=class, extra=retry
# after or ''), c=circuit closed by a successful probe.
_APPLY = """
local k = KEYS[1]
local alpha = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local allowed, window, cooldown = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local health = ARGV[6] == '1'
local function ewma(field, x)
  local old = tonumber(redis.call('HGET', k, field))
  if old then x = old + alpha * (x - old) end
  redis.call('HSET', k, field, tostring(x))
end
for i = 7, #ARGV, 3 do
  local kind, value, extra = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if kind == 't' then
    ewma('ttft', tonumber(value))
  elseif kind == 'l' then
    ewma('latency', tonumber(value))
    redis.call('HINCRBY', k, 'samples', 1)
    redis.call('HINCRBY', k, 'successes', 1)
  elseif kind == 'c' then
    redis.call('HSET', k, 'open_until', '0', 'window_fails', '0', 'last_error', '')
  elseif kind == 'f' then
    redis.call('HINCRBY', k, 'failures', 1)
    redis.call('HSET', k, 'last_error', value)
    if health then
      local open_until = tonumber(redis.call('HGET', k, 'open_until') or '0')
      if value == 'rate_limit' then
        local wait = tonumber(extra) or cooldown
        if now + wait > open_until then
          redis.call('HSET', k, 'open_until', tostring(now + wait))
        end
      else
        local start = tonumber(redis.call('HGET', k, 'window_start') or '0')
        local fails = tonumber(redis.call('HGET', k, 'window_fails') or '0')
        if now - start > window then start, fails = now, 0 end
        fails = fails + 1
        if fails >= allowed then
          redis.call('HSET', k, 'open_until', tostring(math.max(open_until, now + cooldown)))
          fails = 0
        end
        redis.call('HSET', k, 'window_start', tostring(start), 'window_fails', fails)
      end
    end
  end
end
redis.call('EXPIRE', k, 86400)
return redis.call('HGETALL', k)
"""

_MAX_PENDING = 10_000


class RedisState(MemoryState):
    def __init__(
        self,
        url: str,
        prefix: str,
        health: HealthConfig | None = None,
        *,
        alpha: float = 0.3,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(health, alpha=alpha, clock=clock)
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise MissingDependencyError(
                "redis_url is set: install the extra with pip install 'turnout[redis]'"
            ) from None
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._apply = self._redis.register_script(_APPLY)
        self.prefix = prefix
        self.interval = interval
        self._pending: dict[str, list[str]] = {}
        self._queued = 0
        self._known: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._failing_since = 0.0

    # --- writes: local at once, queued for Redis -----------------------------------------

    def _queue(self, deployment: str, *event: str) -> None:
        self._known.add(deployment)
        if self._queued >= _MAX_PENDING:
            return  # Redis has been down a while: keep local state, do not grow without bound
        self._pending.setdefault(deployment, []).extend(event)
        self._queued += 1

    def first_token(self, deployment: str, ttft: float | None) -> None:
        s = self.stats(deployment)
        probing = s.half_open or s.probing
        super().first_token(deployment, ttft)
        if probing:
            self._queue(deployment, "c", "", "")
        if ttft is not None:
            self._queue(deployment, "t", repr(ttft), "")

    def end(
        self,
        deployment: str,
        *,
        latency: float | None = None,
        failure: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().end(deployment, latency=latency, failure=failure, retry_after=retry_after)
        if failure is None:
            if latency is not None:
                self._queue(deployment, "l", repr(latency), "")
        else:
            extra = "" if retry_after is None else repr(retry_after)
            self._queue(deployment, "f", failure, extra)

    # --- sync with Redis -----------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="turnout-routing-state")

    async def _run(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sync()
            except (RedisError, OSError) as exc:
                now = time.monotonic()
                if now - self._failing_since > 30:
                    log.warning("routing state not shared (Redis unavailable): %s", exc)
                    self._failing_since = now

    async def sync(self) -> None:
        """Send queued events and read back every known deployment's shared record."""
        pending, self._pending, self._queued = self._pending, {}, 0
        h = self.health
        head = [
            repr(self.alpha),
            repr(time.time()),
            str(h.allowed_fails),
            repr(h.window),
            repr(h.cooldown),
            "1" if h.enabled else "0",
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            names = sorted(self._known.union(self.snapshot()))
            for name in names:
                await self._apply(
                    keys=[f"{self.prefix}dep:{name}"],
                    args=head + pending.get(name, []),
                    client=pipe,
                )
            results = await pipe.execute()
        for name, flat in zip(names, results, strict=True):
            self._merge(name, flat)

    def _merge(self, deployment: str, flat: list[Any]) -> None:
        shared = {
            (flat[i].decode() if isinstance(flat[i], bytes) else flat[i]): (
                flat[i + 1].decode() if isinstance(flat[i + 1], bytes) else flat[i + 1]
            )
            for i in range(0, len(flat), 2)
        }
        s = self.stats(deployment)
        if shared.get("ttft"):
            s.ttft = float(shared["ttft"])
        if shared.get("latency"):
            s.latency = float(shared["latency"])
        s.samples = int(shared.get("samples") or s.samples)
        s.successes = int(shared.get("successes") or s.successes)
        s.failures = int(shared.get("failures") or s.failures)
        open_wall = float(shared.get("open_until") or 0.0)
        wall = time.time()
        if open_wall > wall:
            local = self.clock() + (open_wall - wall)
            if local > s.open_until and not s.probing:
                s.open_until = local
                s.half_open = False
        s.last_error = shared.get("last_error") or s.last_error

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._redis.aclose()
