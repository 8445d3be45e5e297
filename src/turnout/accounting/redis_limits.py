"""Limits shared by every replica through Redis: one Lua script per admission and one per
settlement, each atomic and one round trip, so N replicas enforce exactly the limit one would
(a counter per replica would multiply it by N).

Keys, under the configured prefix: ``revoked`` (a set of key ids), ``rl:{id}:req`` and
``rl:{id}:tok`` (60 s windows, expiring), ``spend:{id}:{period}`` (USD, as Redis floats;
daily and monthly ones expire after their period). Key changes are announced on the
``keys`` channel so other replicas refresh their key ring at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import MissingDependencyError
from .keys import GatewayKey
from .limits import WINDOW, Verdict
from .periods import PERIODS, period_name

__all__ = ["RedisLimits"]

log = logging.getLogger("turnout.redis")

_ADMIT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {'revoked'} end
for i = 1, 3 do
  local limit = tonumber(ARGV[3 + i])
  if limit then
    local spent = tonumber(redis.call('GET', KEYS[3 + i]) or '0')
    if spent >= limit then return {'budget', i, tostring(spent)} end
  end
end
local tokens, tok_ttl = 0, -2
if tonumber(ARGV[3]) > 0 then
  tokens = tonumber(redis.call('GET', KEYS[3]) or '0')
  tok_ttl = redis.call('PTTL', KEYS[3])
  if tokens >= tonumber(ARGV[3]) then return {'tpm', 0, -2, tokens, tok_ttl} end
end
local n, req_ttl = 0, -2
if tonumber(ARGV[2]) > 0 then
  n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[7]) end
  req_ttl = redis.call('PTTL', KEYS[2])
  if n > tonumber(ARGV[2]) then return {'rpm', n, req_ttl, tokens, tok_ttl} end
end
return {'ok', n, req_ttl, tokens, tok_ttl}
"""

_SETTLE = """
if tonumber(ARGV[1]) > 0 then
  redis.call('INCRBY', KEYS[1], ARGV[1])
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
end
local out = {}
if tonumber(ARGV[2]) > 0 then
  for i = 2, 4 do
    out[i - 1] = redis.call('INCRBYFLOAT', KEYS[i], ARGV[2])
    local ttl = tonumber(ARGV[2 + i])
    if ttl > 0 and redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end
  end
end
return out
"""

# Daily and monthly spend outlive their period a little, for the API's spend figures.
_TTL = {"daily": 2 * 86400, "monthly": 32 * 86400, "total": 0}


class RedisLimits:
    def __init__(self, url: str, prefix: str) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise MissingDependencyError(
                "redis_url is set: install the extra with pip install 'turnout[redis]'"
            ) from None
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
        )
        self._url = url
        self.prefix = prefix
        self._admit = self._redis.register_script(_ADMIT)
        self._settle = self._redis.register_script(_SETTLE)
        self._listener: asyncio.Task[None] | None = None

    @property
    def client(self) -> Any:
        return self._redis

    def _spend_keys(self, key_id: str, now: float) -> list[str]:
        return [f"{self.prefix}spend:{key_id}:{period_name(k, now)}" for k in PERIODS]

    async def admit(self, key: GatewayKey, now: float) -> Verdict:
        budgets = key.budgets()
        keys = [
            f"{self.prefix}revoked",
            f"{self.prefix}rl:{key.id}:req",
            f"{self.prefix}rl:{key.id}:tok",
            *self._spend_keys(key.id, now),
        ]
        args: list[str | int | float] = [
            key.id,
            key.rpm or 0,
            key.tpm or 0,
            *(repr(budgets[k]) if k in budgets else "" for k in PERIODS),
            int(WINDOW * 1000),
        ]
        raw = await self._admit(keys=keys, args=args)
        outcome = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
        if outcome == "revoked":
            return Verdict("revoked")
        if outcome == "budget":
            return Verdict("budget", budget_kind=PERIODS[int(raw[1]) - 1], spent=float(raw[2]))
        n, req_ttl, tokens, tok_ttl = (int(v) for v in raw[1:5])
        return Verdict(
            outcome,
            requests=n,
            requests_reset=req_ttl / 1000 if req_ttl >= 0 else WINDOW,
            tokens=tokens,
            tokens_reset=tok_ttl / 1000 if tok_ttl >= 0 else WINDOW,
        )

    async def settle(
        self, key: GatewayKey, tokens: int, cost: float, now: float
    ) -> dict[str, tuple[float, float]]:
        if not (key.tpm and tokens) and not cost:
            return {}
        keys = [f"{self.prefix}rl:{key.id}:tok", *self._spend_keys(key.id, now)]
        args: list[str | int | float] = [
            tokens if key.tpm else 0,
            repr(cost) if cost else "0",
            int(WINDOW * 1000),
            *(_TTL[k] for k in PERIODS),
        ]
        raw = await self._settle(keys=keys, args=args)
        return {
            kind: (float(after) - cost, float(after))
            for kind, after in zip(PERIODS, raw, strict=False)
        }

    async def revoke(self, key_id: str) -> None:
        await self._redis.sadd(f"{self.prefix}revoked", key_id)

    async def spend(self, key: GatewayKey, now: float) -> dict[str, float]:
        values = await self._redis.mget(self._spend_keys(key.id, now))
        return {k: float(v or 0.0) for k, v in zip(PERIODS, values, strict=True)}

    async def seed(self, key_id: str, spent: dict[str, float]) -> None:
        """Start Redis counters from the database's record when Redis has none (first start,
        or Redis was emptied); a counter another replica already keeps is left alone."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for period, value in spent.items():
                kind = (
                    "daily"
                    if period.startswith("d:")
                    else ("monthly" if period.startswith("m:") else "total")
                )
                name = f"{self.prefix}spend:{key_id}:{period}"
                pipe.set(name, repr(value), nx=True, ex=_TTL[kind] or None)
            await pipe.execute()

    # --- change notices between replicas -------------------------------------------------

    async def announce(self, key_id: str) -> None:
        await self._redis.publish(f"{self.prefix}keys", key_id)

    def listen(self, on_change: Callable[[str], Awaitable[None]]) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(on_change), name="turnout-keys-sub")

    async def _listen(self, on_change: Callable[[str], Awaitable[None]]) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        # Its own connection without a read timeout: a quiet channel is not an error.
        client = aioredis.Redis.from_url(self._url, socket_connect_timeout=2)
        delay = 0.5
        while True:
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(f"{self.prefix}keys")
                    delay = 0.5
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            await on_change(data.decode() if isinstance(data, bytes) else data)
            except (RedisError, OSError) as exc:
                log.warning("key change notices from Redis interrupted: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except asyncio.CancelledError:
                await client.aclose()
                raise

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._redis.aclose()
