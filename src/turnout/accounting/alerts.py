"""Budget alerts: when a key's spend crosses a configured fraction of one of its budgets, a
structured log event (logger ``turnout.alerts``) and, when ``alerts.webhook_url`` is set, a
JSON POST to it.

Once per threshold and period: the spend counters are atomic (in process or in Redis), so
exactly one request's settlement sees ``before < threshold <= after``, on whichever replica
served it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from ..config import AlertsConfig
from .keys import GatewayKey
from .periods import period_name

__all__ = ["BudgetAlerts", "crossed"]

log = logging.getLogger("turnout.alerts")


def crossed(thresholds: list[float], limit: float, before: float, after: float) -> list[float]:
    """The thresholds (fractions of ``limit``) that the spend passed going from before to
    after."""
    return [t for t in thresholds if before < t * limit <= after]


class BudgetAlerts:
    def __init__(self, config: AlertsConfig) -> None:
        self._config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: Any = None
        self.sent: list[dict[str, Any]] = []
        """Events emitted by this process, newest last (the last 100)."""

    def check(
        self, key: GatewayKey, spend: dict[str, tuple[float, float]], now: float
    ) -> list[dict[str, Any]]:
        events = []
        for kind, limit in key.budgets().items():
            if kind not in spend:
                continue
            before, after = spend[kind]
            for threshold in crossed(self._config.thresholds, limit, before, after):
                event = {
                    "event": "budget_alert",
                    "key_id": key.id,
                    "key_name": key.name,
                    "period": kind,
                    "period_id": period_name(kind, now),
                    "threshold": threshold,
                    "budget_usd": limit,
                    "spent_usd": round(after, 6),
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                }
                events.append(event)
                self._emit(event)
        return events

    def _emit(self, event: dict[str, Any]) -> None:
        log.warning("budget alert %s", orjson.dumps(event).decode(), extra={"alert": event})
        self.sent = [*self.sent[-99:], event]
        if self._config.webhook_url:
            task = asyncio.create_task(self._post(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        import aiohttp

        url = self._config.webhook_url
        assert url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.post(
                url, data=orjson.dumps(event), headers={"content-type": "application/json"}
            ) as resp:
                if resp.status >= 400:
                    log.warning("budget alert webhook answered %d", resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("budget alert webhook failed: %s", exc)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._session is not None:
            await self._session.close()
            self._session = None
