"""The web console's figures: page weight, time to a usable playground, and the console's
log queries over a large request log.

    python -m bench.console [--runs 10] [--rows 1000000] [--postgres URL] [--skip-queries]

1. Page weight: the JS and CSS that ``/`` loads, raw and gzipped (level 9, as the server
   sends them), from the built assets in the package.
2. Time to usable: Debian's Chromium (Playwright, headless) opens ``/`` on a gateway on
   loopback (no master key, embedded model not preloaded) in a fresh browser context (cold
   cache) each run, and waits until the playground's model selector has its choices (the
   session, /v1/models and the catalogue answered and rendered). The figure is
   ``performance.now()`` at that moment: milliseconds since navigation started.
3. Queries: ``rows`` synthetic request-log records over 7 days written to SQLite (and to
   PostgreSQL with ``--postgres``), then each console query timed (p50 and max of 5 runs):
   the log's first page, filtered pages, the time series for 1 h / 24 h / 7 d, and
   ``/api/models/stats`` for 1 h, 24 h and 7 d (and, for comparison, 24 h summarised from
   every record, as before the roll-ups of migration 0004).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from turnout.console import STATIC

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def page_weight() -> dict[str, int]:
    index = (STATIC / "index.html").read_text()
    out = {"js": 0, "css": 0, "js_gz": 0, "css_gz": 0}
    for name in re.findall(r'/assets/([\w.-]+\.(js|css))"', index):
        body = (STATIC / "assets" / name[0]).read_bytes()
        out[name[1]] += len(body)
        out[name[1] + "_gz"] += len(gzip.compress(body, 9, mtime=0))
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_to_usable(runs: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "turnout.yaml"
        config.write_text(
            "server: {preload_local: false}\nkey_health: {enabled: false}\n"
            f"database_url: sqlite:///{tmp}/bench.db\n"
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "turnout.cli", "serve", "--config", str(config),
             "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            import httpx

            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the gateway did not start") from None
                    time.sleep(0.1)
            times = []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for _ in range(runs + 1):
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(f"http://127.0.0.1:{port}/", wait_until="commit")
                    handle = page.wait_for_function(
                        "() => document.querySelectorAll('#model-choices option').length > 0"
                        " && performance.now()",
                        timeout=30_000,
                    )
                    times.append(float(handle.json_value()))
                    context.close()
                browser.close()
            return times[1:]  # the first run also starts the browser's own machinery
        finally:
            server.terminate()
            server.wait(10)


# --- the gateway's latency with the console open --------------------------------------------------


def console_overhead(requests: int, blocks: int) -> dict[str, list[float]]:
    """Per-request wall time of the gateway on the bench's mock upstream, in alternating
    blocks with no browser and with the console's performance page open (it polls three
    endpoints every 5 s, and the stats read the request log), so machine load hits both
    alike. Returns the latencies in ms per condition."""
    import httpx
    from playwright.sync_api import sync_playwright

    from .gateways import MASTER_KEY, start_mock, start_turnout

    out: dict[str, list[float]] = {"closed": [], "open": []}
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        mock = start_mock(logs)
        gw = start_turnout(mock.port, 1, logs, {"database_url": f"sqlite:///{tmp}/log.db"})
        base = f"http://127.0.0.1:{gw.port}"
        body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        try:
            with httpx.Client(base_url=base, headers=auth) as client, sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for _ in range(50):  # warm-up
                    client.post("/v1/chat/completions", json=body)
                for block in range(blocks * 2):
                    condition = "open" if block % 2 else "closed"
                    context = None
                    if condition == "open":
                        context = browser.new_context()
                        page = context.new_page()
                        page.goto(base + "/")
                        page.get_by_label("Master key or gateway key").fill(MASTER_KEY)
                        page.get_by_role("button", name="Sign in").click()
                        page.goto(base + "/#/performance")
                        page.get_by_role("heading", name="Performance").wait_for()
                    for _ in range(requests):
                        t = time.perf_counter()
                        client.post("/v1/chat/completions", json=body).raise_for_status()
                        out[condition].append((time.perf_counter() - t) * 1000)
                    if context is not None:
                        context.close()
                browser.close()
        finally:
            gw.stop()
            mock.stop()
    return out


# --- queries over a large log -----------------------------------------------------------------


def _rows(n: int, now: float, start: int = 0, total: int | None = None) -> list[tuple[Any, ...]]:
    """Records ``start`` to ``start + n`` of ``total`` spread evenly over the 7 days to ``now``,
    oldest first (ids grow with time, as in a real log)."""
    from turnout.accounting.records import COLUMNS

    total = total or n
    rnd = random.Random(7 + start)
    providers = [("openai", "gpt-4o-mini"), ("groq", "llama-3.1-8b"), ("local", "smollm2")]
    routes = ["fast", "smart", "cheap", "gpt-4o-mini"]
    errors = [
        (429, "RateLimitError"),
        (502, "AllAttemptsFailedError"),
        (504, "UpstreamTimeoutError"),
    ]
    out = []
    for i in range(n):
        ts = now - 7 * 86400 * (total - start - i) / total
        provider, model = rnd.choice(providers)
        failed = rnd.random() < 0.03
        status, error = rnd.choice(errors) if failed else (200, None)
        ttft = rnd.uniform(0.05, 0.8)
        values = {
            "ts": ts, "request_id": f"req-{i}", "key_id": f"key_{i % 20}",
            "route": rnd.choice(routes), "strategy": "priority", "provider": provider,
            "model": model, "deployment": f"{provider}:{model}", "stream": i % 2 == 0,
            "status": status, "error": error, "attempts": 2 if failed else 1,
            "ttft": None if failed else ttft, "latency": None if failed else ttft + 1.0,
            "input_tokens": 200, "output_tokens": 0 if failed else 150, "cached_tokens": 0,
            "cost": None if failed else 0.0002, "attempt": None,
            "error_message": f"upstream said {error} (synthetic)" if failed else None,
            "prompt": None, "answer": None,
        }  # fmt: skip
        out.append(tuple(values[c] for c in COLUMNS))
    return out


def _timed(fn: Any, repeat: int = 5) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def query_figures(url: str, rows: int) -> list[tuple[str, float, float]]:
    from turnout.accounting.db import Database
    from turnout.accounting.log_queries import (
        LogQuery,
        bucket_for,
        list_records,
        model_stats,
        series,
    )
    from turnout.accounting.stats import COLUMNS, summarise

    db = Database(url)
    db.upgrade()
    now = time.time()
    batch = 50_000
    t0 = time.perf_counter()
    for start in range(0, rows, batch):
        db.write_records(_rows(min(batch, rows - start), now, start, rows))
    if db.dialect == "postgresql":  # what autovacuum does after a bulk load like this one
        from sqlalchemy import text

        with db.engine().begin() as conn:
            conn.execute(text("ANALYZE request_log"))
            conn.execute(text("ANALYZE request_rollup"))
            conn.execute(text("ANALYZE request_stats"))
            conn.execute(text("ANALYZE request_histogram"))
            conn.execute(text("ANALYZE request_stats_coarse"))
            conn.execute(text("ANALYZE request_histogram_coarse"))
    print(f"  wrote {rows:,} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    day, hour, week = now - 86400, now - 3600, now - 7 * 86400
    cases = {
        "log: first page (24 h)": lambda: list_records(db, LogQuery(since=day)),
        "log: status=error (24 h)": lambda: list_records(db, LogQuery(since=day, status="error")),
        "log: status=429 (7 d)": lambda: list_records(db, LogQuery(since=week, status="429")),
        "log: route=fast, provider=groq (24 h)": lambda: list_records(
            db, LogQuery(since=day, route="fast", provider="groq")
        ),
        "series: 1 h": lambda: series(db, LogQuery(since=hour), now, bucket_for(3600)),
        "series: 24 h": lambda: series(db, LogQuery(since=day), now, bucket_for(86400)),
        "series: 7 d": lambda: series(db, LogQuery(since=week), now, bucket_for(7 * 86400)),
        "log: message contains 'Timeout' (24 h)": lambda: list_records(
            db, LogQuery(since=day, message="Timeout")
        ),
        "stats: 1 h": lambda: model_stats(db, hour),
        "stats: 24 h": lambda: model_stats(db, day),
        "stats: 7 d": lambda: model_stats(db, week),
        "stats: 24 h, every record (before 0004)": lambda: summarise(
            db.records_since(day, COLUMNS)
        ),
    }  # fmt: skip
    out = [(name, *_timed(fn)) for name, fn in cases.items()]
    db.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--postgres", help="a PostgreSQL URL with an empty schema to fill")
    ap.add_argument("--skip-queries", action="store_true")
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument(
        "--overhead",
        type=int,
        default=0,
        metavar="N",
        help="also: N requests per block, console open vs closed (6 blocks each)",
    )
    args = ap.parse_args(argv)

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    w = page_weight()
    print("\npage weight (what / loads):")
    print(f"  JS  {w['js'] / 1024:7.1f} KB raw  {w['js_gz'] / 1024:6.1f} KB gzipped")
    print(f"  CSS {w['css'] / 1024:7.1f} KB raw  {w['css_gz'] / 1024:6.1f} KB gzipped")
    print(f"  total gzipped {(w['js_gz'] + w['css_gz']) / 1024:.1f} KB (target <= 150 KB)")
    if not args.skip_browser:
        times = time_to_usable(args.runs)
        print(f"\ntime to a usable playground, {len(times)} cold loads on loopback:")
        print(
            f"  p50 {statistics.median(times):.0f} ms, min {min(times):.0f} ms, "
            f"max {max(times):.0f} ms (target < 1000 ms)"
        )
    if args.overhead:
        lat = console_overhead(args.overhead, 6)
        print("\ngateway wall time per request (ms), console closed vs open:")
        for name, values in lat.items():
            q = statistics.quantiles(values, n=100)
            print(
                f"  {name:7s} n={len(values)} p50 {statistics.median(values):6.2f}  "
                f"p99 {q[98]:6.2f}"
            )
    if not args.skip_queries:
        targets = []
        with tempfile.TemporaryDirectory() as tmp:
            targets.append(("SQLite", f"sqlite:///{tmp}/log.db"))
            if args.postgres:
                targets.append(("PostgreSQL", args.postgres))
            for name, url in targets:
                print(f"\nqueries over {args.rows:,} rows, {name} (ms, 5 runs; target p50 < 200):")
                for label, p50, worst in query_figures(url, args.rows):
                    print(f"  {label:40s} p50 {p50:8.1f}  max {worst:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
