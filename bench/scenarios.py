"""The measurements, each an async function over ``Target``s that returns plain figures.

- ``added_latency``: concurrency 1, interleaved rounds (direct, then each gateway, order
  rotating every round), warm-up discarded; per round the gateway's time minus the direct time.
- ``added_ttft``: the same for streams: time to the first content event.
- ``chunk_gaps``: paced streams (64 deltas, 20 ms apart) through every target at once; the
  percentiles of the gaps between content events, minus the direct gaps.
- ``max_rate``: the highest open-loop rate with at most 1 % errors that the server keeps up
  with (achieved >= 97 % of offered), found by stepping up then bisecting.
- ``max_streams``: the most concurrent paced streams delivered without a stall.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

from .client import Conn, LoadResult, Target, open_loop, percentile, streams_held

__all__ = ["added_latency", "added_ttft", "chunk_gaps", "max_rate", "max_streams"]


def _ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 3)


async def _interleaved(
    direct: Target, gateways: list[Target], rounds: int, warmup: int, stream: bool
) -> dict[str, Any]:
    targets = [direct, *gateways]
    conns = {t.name: await Conn.open(t.host, t.port) for t in targets}
    raws = {t.name: t.request(stream=stream) for t in targets}
    times: dict[str, list[float]] = {t.name: [] for t in targets}
    gc.disable()  # the client's collector must not land inside one target's sample
    try:
        for n in range(warmup + rounds):
            shift = n % len(targets)
            for t in targets[shift:] + targets[:shift]:
                reply = await conns[t.name].send(raws[t.name])
                if reply.status != 200:
                    raise RuntimeError(f"{t.name} answered HTTP {reply.status}")
                if stream and not reply.events:
                    raise RuntimeError(f"{t.name} streamed no content events")
                if n >= warmup:
                    times[t.name].append(reply.ttft if stream else reply.latency)
            if n % 50 == 0:
                gc.collect()
    finally:
        gc.enable()
        for conn in conns.values():
            conn.close()
    base = times[direct.name]
    out: dict[str, Any] = {
        "rounds": rounds,
        "warmup": warmup,
        direct.name: {"p50_ms": _ms(base, 50), "p99_ms": _ms(base, 99)},
    }
    for g in gateways:
        diffs = [a - b for a, b in zip(times[g.name], base, strict=True)]
        out[g.name] = {
            "p50_ms": _ms(times[g.name], 50),
            "p99_ms": _ms(times[g.name], 99),
            "added_p50_ms": _ms(diffs, 50),
            "added_p99_ms": _ms(diffs, 99),
        }
    return out


async def added_latency(
    direct: Target, gateways: list[Target], rounds: int, warmup: int
) -> dict[str, Any]:
    return await _interleaved(direct, gateways, rounds, warmup, stream=False)


async def added_ttft(
    direct: Target, gateways: list[Target], rounds: int, warmup: int
) -> dict[str, Any]:
    return await _interleaved(direct, gateways, rounds, warmup, stream=True)


async def chunk_gaps(
    direct: Target, gateways: list[Target], rounds: int, expect: int
) -> dict[str, Any]:
    targets = [direct, *gateways]
    gaps: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(rounds):
        conns = [await Conn.open(t.host, t.port) for t in targets]
        replies = await asyncio.gather(
            *[c.send(t.request(stream=True)) for c, t in zip(conns, targets, strict=True)]
        )
        for conn in conns:
            conn.close()
        for t, reply in zip(targets, replies, strict=True):
            if reply.status != 200 or len(reply.events) != expect:
                raise RuntimeError(
                    f"{t.name}: HTTP {reply.status}, {len(reply.events)} of {expect} events"
                )
            gaps[t.name].extend(reply.gaps)
    base = gaps[direct.name]
    out: dict[str, Any] = {
        "rounds": rounds,
        "chunks": expect,
        direct.name: {"gap_p50_ms": _ms(base, 50), "gap_p99_ms": _ms(base, 99)},
    }
    for g in gateways:
        mine = gaps[g.name]
        out[g.name] = {
            "gap_p50_ms": _ms(mine, 50),
            "gap_p99_ms": _ms(mine, 99),
            "added_p50_ms": round(_ms(mine, 50) - _ms(base, 50), 3),
            "added_p99_ms": round(_ms(mine, 99) - _ms(base, 99), 3),
        }
    return out


def _sustained(r: LoadResult) -> bool:
    return r.error_rate <= 0.01 and r.achieved >= 0.97 * r.rate


async def _recover(target: Target, limit: float = 60.0) -> float:
    """After an overload, wait until the server answers one request within 200 ms again
    (abandoned requests can keep it busy for a while); returns the seconds waited."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    raw = target.request()
    while loop.time() - start < limit:
        conn = None
        try:
            conn = await Conn.open(target.host, target.port)
            reply = await asyncio.wait_for(conn.send(raw), 5)
            if reply.status == 200 and reply.latency < 0.2:
                return loop.time() - start
        except (TimeoutError, OSError):
            pass
        finally:
            if conn is not None:
                conn.close()
        await asyncio.sleep(0.5)
    return loop.time() - start


async def max_rate(
    target: Target,
    *,
    start: float,
    duration: float,
    bisect: int = 3,
    ceiling: float = 50_000,
    on_step: Callable[[LoadResult], None] | None = None,
    cpu_seconds: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Step the offered rate up by 1.5x until it is not sustained, then bisect. With
    ``cpu_seconds`` (the server's CPU time so far), each step also records the server's CPU
    microseconds per answered request: a figure that a busy machine disturbs far less than
    the rate itself."""
    steps: list[dict[str, Any]] = []
    best: LoadResult | None = None
    low, high = 0.0, 0.0
    rate = start

    async def step(rate: float) -> LoadResult:
        before = cpu_seconds() if cpu_seconds else 0.0
        result = await open_loop(target, rate, duration)
        entry = {**result.summary(), "sustained": _sustained(result)}
        if cpu_seconds is not None and result.ok:
            entry["cpu_us_per_request"] = round((cpu_seconds() - before) / result.ok * 1e6, 1)
        steps.append(entry)
        if on_step is not None:
            on_step(result)
        await asyncio.sleep(1.0)  # let queues drain before the next step
        if not entry["sustained"]:
            entry["recovery_s"] = round(await _recover(target), 1)
        return result

    while rate <= ceiling:
        result = await step(rate)
        if not _sustained(result):
            high = rate
            break
        best, low = result, rate
        rate *= 1.5
    for _ in range(bisect if high else 0):
        mid = (low + high) / 2
        result = await step(mid)
        if _sustained(result):
            best, low = result, mid
        else:
            high = mid
    at_rate = next((s for s in steps if best and s["offered_rps"] == round(best.rate, 1)), None)
    return {
        "max_rps": round(best.achieved, 1) if best else 0.0,
        "at_rate": at_rate,
        "steps": steps,
        "method": "open loop, fixed arrival rate; latency from each request's due time",
    }


async def max_streams(
    target: Target, ladder: list[int], *, expect: int, stall: float
) -> dict[str, Any]:
    """The largest count on ``ladder`` whose streams all completed without a stall."""
    steps = []
    held = 0
    for count in ladder:
        step = await streams_held(target, count, expect=expect, stall=stall)
        steps.append(step)
        if not step["held"]:
            break
        held = count
        await asyncio.sleep(0.5)
    return {"held": held, "stall_ms": stall * 1000, "steps": steps}
