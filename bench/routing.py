"""Routing, measured: decision time per strategy, the task classifier's latency and accuracy,
and failover under injected upstream failures. Prints figures; not a test.

    .venv/bin/python bench/routing.py                 # everything
    .venv/bin/python bench/routing.py decisions       # µs per decision, per strategy
    .venv/bin/python bench/routing.py classifier      # latency p50/p95, accuracy vs keywords
    .venv/bin/python bench/routing.py load            # model start-up; embedding under load
    .venv/bin/python bench/routing.py failover        # 1,000 requests, one upstream 30 % failing

The classifier part reads ../shared/routing-data/llmrouter/query_train.jsonl (beside the
checkout) and needs the ``tasks`` extra and the model (``make setup`` installs both).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fakes (the loopback fake upstream)

from turnout.config import STRATEGIES, Config  # noqa: E402
from turnout.gateway import Gateway, parse_request  # noqa: E402

LABELLED = ROOT.parent / "shared" / "routing-data" / "llmrouter" / "query_train.jsonl"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# --- decisions ---------------------------------------------------------------------------------


def decision_gateway() -> Gateway:
    models = [
        {
            "id": f"p{i}:m{i}",
            "input_price": price,
            "output_price": price * 3,
            "quality": quality,
            "context_window": 128000,
            "capabilities": ["streaming", "json", "tools"],
        }
        for i, (price, quality) in enumerate([(0.2, 0.6), (1.0, 0.8), (5.0, 0.9), (0.5, 0.7)])
    ]
    deployments = [
        {"model": f"p{i}:m{i}", "weight": w, "tasks": [t]}
        for i, (w, t) in enumerate(
            [
                (40, "general_chat"),
                (30, "code_generation"),
                (20, "math_reasoning"),
                (10, "general_chat"),
            ]
        )
    ]
    config = Config.model_validate(
        {
            "providers": {
                f"p{i}": {"host": "custom", "base_url": "http://127.0.0.1:9/v1"} for i in range(4)
            },
            "models": models,
            "routes": [{"name": "r", "deployments": deployments, "sticky": True}],
        }
    )
    gw = Gateway(config)
    for i in range(4):
        s = gw.state.stats(f"p{i}:m{i}")
        s.ttft, s.latency, s.samples, s.in_flight = 0.1 * (i + 1), 0.5 * (4 - i), 20, i
    return gw


def bench_decisions(n: int) -> None:
    gw = decision_gateway()
    route = gw.router.resolve("r")
    body = {
        "model": "r",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a Python function that merges two sorted lists."},
        ],
        "user": "caller-42",
        "max_tokens": 200,
    }
    print(f"decision time (filters + strategy), 4 deployments, {n} decisions each, µs")
    print(f"{'strategy':<12} {'mean':>7} {'p50':>7} {'p99':>7}")
    for name in STRATEGIES:
        request = parse_request({**body, "turnout": {"strategy": name, "task": "code_generation"}})
        plan = gw.planner.plan
        for _ in range(500):
            plan(route, request)
        samples = []
        clock = time.perf_counter
        for _ in range(n):
            t0 = clock()
            plan(route, request)
            samples.append(clock() - t0)
        us = [s * 1e6 for s in samples]
        print(f"{name:<12} {statistics.fmean(us):7.1f} {_pct(us, 0.5):7.1f} {_pct(us, 0.99):7.1f}")
    print("(task and auto above use a caller-given task; the classifier's time is below)")


# --- classifier --------------------------------------------------------------------------------


def bench_classifier(limit: int | None, folds: int) -> None:
    import numpy as np

    from turnout.routing.classifier import TaskClassifier
    from turnout.routing.tasks import builtin_tasks, keyword_task, load_labelled

    if not LABELLED.is_file():
        print(f"classifier: {LABELLED} not found; skipped")
        return
    rows = load_labelled(LABELLED)
    random.Random(0).shuffle(rows)
    if limit:
        rows = rows[:limit]
    t0 = time.perf_counter()
    clf = TaskClassifier()
    clf.classify_sync("load")
    print(f"\ntask classifier: model and example tables loaded in {time.perf_counter() - t0:.1f}s")
    latencies, cpu, hits, baseline = [], [], 0, 0
    per: dict[str, list[int]] = {}
    for text, label in rows:
        t1, c1 = time.perf_counter(), time.thread_time()
        got, _ = clf.classify_sync(text)
        latencies.append(time.perf_counter() - t1)
        cpu.append(time.thread_time() - c1)  # onnxruntime runs on this thread (1 intra-op)
        hits += got == label
        baseline += keyword_task(text) == label
        per.setdefault(label, [0, 0])
        per[label][0] += got == label
        per[label][1] += 1
    ms = [x * 1000 for x in latencies]
    cpu_ms = [x * 1000 for x in cpu]
    print(
        f"latency per request over {len(rows)} prompts: wall p50 {_pct(ms, 0.5):.2f} ms, "
        f"p95 {_pct(ms, 0.95):.2f} ms; CPU time p50 {_pct(cpu_ms, 0.5):.2f} ms, "
        f"p95 {_pct(cpu_ms, 0.95):.2f} ms (wall = CPU on an uncontended core)"
    )

    async def through_the_loop(texts: list[str]) -> list[float]:
        out = []
        for text in texts:
            t1 = time.perf_counter()
            await clf.classify(text)
            out.append((time.perf_counter() - t1) * 1000)
        return out

    hop = asyncio.run(through_the_loop([t for t, _ in rows[:300]]))
    print(
        f"from the event loop (worker thread hop included), {len(hop)} prompts: "
        f"p50 {_pct(hop, 0.5):.2f} ms, p95 {_pct(hop, 0.95):.2f} ms"
    )
    print(
        f"accuracy, built-in examples ({sum(map(len, builtin_tasks().values()))} prompts, "
        f"{len(builtin_tasks())} labels): {hits / len(rows):.3f}"
    )
    print(f"accuracy, keyword baseline:                              {baseline / len(rows):.3f}")
    for label, (ok, total) in sorted(per.items()):
        print(f"  {label:<18} {ok / total:.3f} of {total}")

    # The route declares its own examples: k-fold, examples drawn from the training folds.
    model = clf._load()
    vectors = np.stack([model.embed(t) for t, _ in rows])
    labels = np.array([label for _, label in rows])
    order = np.random.default_rng(0).permutation(len(rows))
    for per_label in (30, 200):
        for neighbours, name in ((5, "top-5 neighbours"), (0, "centroid")):
            correct = 0
            for f in range(folds):
                test = order[f::folds]
                train = order[~np.isin(order, test)]  # keeps the shuffled order
                names = sorted(set(labels[train]))
                scores = []
                for lab in names:
                    idx = train[labels[train] == lab][:per_label]
                    ex = vectors[idx]
                    if neighbours:
                        sims = vectors[test] @ ex.T
                        k = min(neighbours, len(idx))
                        scores.append(np.sort(sims, axis=1)[:, -k:].mean(axis=1))
                    else:
                        c = ex.mean(axis=0)
                        scores.append(vectors[test] @ (c / np.linalg.norm(c)))
                pred = np.array(names)[np.stack(scores, axis=1).argmax(axis=1)]
                correct += int((pred == labels[test]).sum())
            print(
                f"accuracy, up to {per_label} route-declared examples per label drawn from the "
                f"data, {folds}-fold, {name}: {correct / len(rows):.3f}"
            )
    clf.close()


# --- start-up and embedding under load ---------------------------------------------------------

LONG_PROMPT = (
    "Here is a function that is meant to merge two sorted lists of customer records by their "
    "signup date, but it drops the last record of the second list whenever the first list is "
    "shorter. Explain the bug, fix it, and say what the complexity of the fixed version is."
)  # 64 tokens and more: cut as every long prompt is

_LOAD = r"""
import asyncio, json, sys
from bench.client import Target, open_loop
import orjson

class Prompted(Target):
    def request(self, *, stream=False):
        body = orjson.dumps({"model": self.model, "max_tokens": 64,
                             "messages": [{"role": "user", "content": sys.argv[4]}]})
        head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {self.api_key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        return head.encode() + body

target = Prompted("turnout", "127.0.0.1", int(sys.argv[1]), model="tasks")
print(json.dumps(asyncio.run(open_loop(target, float(sys.argv[2]), float(sys.argv[3]))).summary()))
"""


def bench_startup() -> None:
    """The model's start-up in a fresh process: built (empty cache) and from the cache."""
    import os
    import subprocess
    import tempfile

    code = (
        "import time; t = time.perf_counter()\n"
        "from turnout.routing.classifier import TaskClassifier\n"
        "c = TaskClassifier(); c._load().embed('warm'); m = time.perf_counter() - t\n"
        "c.classify_sync('warm'); print(m, time.perf_counter() - t)"
    )
    print(
        "\nstart-up in a fresh process, s: the model (import, load, one embedding); the "
        "classifier ready (its 125 examples embedded too)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TURNOUT_CACHE_DIR": tmp}
        for label in ("first run (built, then cached)", "cached", "cached", "cached"):
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            model, ready = map(float, out.stdout.split())
            print(
                f"  {label:<32} model {model:.2f}  classifier {ready:.2f}  "
                f"(load average {os.getloadavg()[0]:.1f})"
            )


def bench_under_load(rates: list[float], duration: float) -> None:
    """Embedding time as a request waits for it (the hop to the worker thread, the queue
    there and the model), with the gateway idle and while it answers chat requests on a
    ``task`` route at each rate: the gateway runs in this process under uvicorn as ``turnout
    serve`` runs it (SQLite request log included), the load comes from another process
    (bench.client, open loop), the upstream is the bench's mock."""
    import os
    import tempfile

    import uvicorn

    from bench.gateways import start_mock, turnout_config
    from turnout.server.app import create_app
    from turnout.server.protocol import uvicorn_options

    waits: list[float] = []
    computes: list[float] = []
    cpu: list[float] = []

    async def run(tmp: Path, mock_port: int) -> None:
        overlay = {
            "database_url": f"sqlite:///{tmp}/log.db",
            "routes": [
                {
                    "name": "tasks",
                    "strategy": "task",
                    "deployments": [
                        {"model": "mock:mock-model", "tasks": ["code_review"]},
                        {"model": "mock:other-model", "tasks": ["general_chat"]},
                    ],
                }
            ],
        }
        gw = Gateway(Config.model_validate(turnout_config(mock_port, overlay)))
        app = create_app(gw)
        clf = gw.planner.classifier
        await clf.preload()
        model = clf._load()
        # The planner's one trip to the worker per request (classifier and ``learned``).
        embed_and_classify, embed_counted = clf.embed_and_classify, model.embed_counted
        labels = frozenset({"code_review", "general_chat"})

        async def timed_classify(*args: Any, **kw: Any) -> Any:
            t, admitted = time.perf_counter(), clf.waiting < clf.queue  # routing.task_queue
            try:
                return await embed_and_classify(*args, **kw)
            finally:
                if admitted:
                    waits.append((time.perf_counter() - t) * 1000)

        def timed_embed(*args: Any, **kw: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return embed_counted(*args, **kw)
            finally:
                computes.append((time.perf_counter() - t) * 1000)
                cpu.append((time.thread_time() - c) * 1000)

        clf.embed_and_classify = timed_classify  # type: ignore[method-assign]
        model.embed_counted = timed_embed  # type: ignore[method-assign]
        from bench.gateways import free_port

        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, "127.0.0.1", port, log_level="warning", **uvicorn_options())
        )
        busy_seen = 0
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)

        def report(label: str, extra: str = "") -> None:
            nonlocal busy_seen
            if clf.unclassified_busy > busy_seen:
                extra += f"; {clf.unclassified_busy - busy_seen} unclassified (queue full)"
                busy_seen = clf.unclassified_busy
            print(
                f"  {label:<24} n={len(waits):5d}  wait p50 {_pct(waits, 0.5):6.2f} "
                f"p95 {_pct(waits, 0.95):6.2f}  model p50 {_pct(computes, 0.5):5.2f} "
                f"p95 {_pct(computes, 0.95):5.2f}  CPU p50 {_pct(cpu, 0.5):5.2f}{extra}"
            )
            for values in (waits, computes, cpu):
                values.clear()

        print(
            f"\nembedding time per request, ms ({len(model._ids(LONG_PROMPT, None, False))} "
            f"tokens; load average {os.getloadavg()[0]:.1f} at the start):"
        )
        short = "Write a Python function that merges two sorted lists."
        for _ in range(300):
            await clf.embed_and_classify(short, labels, {})
        report(f"idle, {len(model._ids(short, None, False))} tokens")
        for _ in range(300):
            await clf.embed_and_classify(LONG_PROMPT, labels, {})
        report("idle, one at a time")
        for rate in rates:
            load = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _LOAD, str(port), str(rate), str(duration), LONG_PROMPT,
                cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await load.communicate()
            summary = __import__("json").loads(out)
            report(
                f"under load, {rate:g} req/s",
                f"  (served {summary['achieved_rps']} req/s, HTTP p50 {summary['p50_ms']} ms, "
                f"errors {summary['error_rate']:.1%}; load average {os.getloadavg()[0]:.1f})",
            )
        server.should_exit = True
        await serving
        await gw.aclose()

    with tempfile.TemporaryDirectory() as tmp:
        mock = start_mock(Path(tmp))
        try:
            asyncio.run(run(Path(tmp), mock.port))
        finally:
            mock.stop()


# --- failover ----------------------------------------------------------------------------------


def bench_failover(requests: int, concurrency: int, failure_rate: float) -> None:
    from tests.fakes.openai_upstream import Fail, FakeOpenAI, Reply, Reset
    from tests.fakes.servers import AiohttpThread

    rng = random.Random(1)
    flaky, healthy = FakeOpenAI(), FakeOpenAI()
    kinds = [
        lambda: Fail(500, "boom"),
        lambda: Fail(503, "overloaded"),
        lambda: Fail(429, "slow down", headers={"Retry-After": "1"}),
        lambda: Reset(),
    ]
    flaky.then(
        *[
            rng.choice(kinds)() if rng.random() < failure_rate else Reply()
            for _ in range(requests * 2)
        ]
    )
    servers = [AiohttpThread(flaky.app).start(), AiohttpThread(healthy.app).start()]
    try:
        for strategy, breaker in (("priority", True), ("round_robin", True), ("priority", False)):
            flaky_calls_before = len(flaky.calls)
            healthy_calls_before = len(healthy.calls)
            config = Config.model_validate(
                {
                    "providers": {
                        "flaky": {"host": "custom", "base_url": servers[0].url + "/v1"},
                        "healthy": {"host": "custom", "base_url": servers[1].url + "/v1"},
                    },
                    "routes": [
                        {
                            "name": "r",
                            "strategy": strategy,
                            "deployments": ["flaky:m", "healthy:m"],
                        }
                    ],
                    "retry": {"retries": 1, "backoff_base": 0.01, "backoff_max": 0.05},
                    "health": {"enabled": breaker},
                }
            )
            failed, attempts, elapsed = asyncio.run(_drive(config, requests, concurrency))
            print(
                f"\nfailover, strategy {strategy}, breaker {'on' if breaker else 'off'}: "
                f"{requests} requests, {concurrency} at a "
                f"time; upstream 'flaky' fails {failure_rate:.0%} (500/503/429/reset), "
                f"'healthy' answers"
            )
            print(f"  failed client requests: {failed} of {requests}")
            print(
                f"  upstream calls: flaky {len(flaky.calls) - flaky_calls_before}, "
                f"healthy {len(healthy.calls) - healthy_calls_before}; "
                f"mean attempts {statistics.fmean(attempts):.3f}; {elapsed:.1f}s"
            )
    finally:
        for s in servers:
            s.stop()


async def _drive(config: Config, requests: int, concurrency: int) -> tuple[int, list[int], float]:
    gw = Gateway(config)
    failed = 0
    attempts: list[int] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def worker() -> None:
        nonlocal failed
        while not queue.empty():
            i = queue.get_nowait()
            try:
                if i % 2:
                    result: Any = await gw.chat(
                        model="r", messages=[{"role": "user", "content": "hi"}]
                    )
                    attempts.append(result.attempts)
                else:
                    stream = await gw.stream(
                        model="r", messages=[{"role": "user", "content": "hi"}]
                    )
                    await stream.collect()
                    attempts.append(stream.attempts)
            except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
                failed += 1
                print(f"  request {i} failed: {exc}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await gw.aclose()
    return failed, attempts, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=["decisions", "classifier", "load", "failover"])
    parser.add_argument("--rates", default="25,50,100", help="load: requests per second")
    parser.add_argument("--duration", type=float, default=10, help="load: seconds per rate")
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--prompts", type=int, default=0, help="limit the labelled prompts")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--failure-rate", type=float, default=0.3)
    args = parser.parse_args()
    if args.part in (None, "decisions"):
        bench_decisions(args.decisions)
    if args.part in (None, "classifier"):
        bench_classifier(args.prompts or None, args.folds)
    if args.part in (None, "load"):
        bench_startup()
        bench_under_load([float(r) for r in args.rates.split(",")], args.duration)
    if args.part in (None, "failover"):
        bench_failover(args.requests, args.concurrency, args.failure_rate)


if __name__ == "__main__":
    main()
