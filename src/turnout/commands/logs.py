"""``turnout logs``: the request log of ``turnout serve`` from the command line, newest first,
filtered by model, status and age, as a table or JSON."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..config import Config
from ..errors import ConfigError
from . import argtypes
from .table import render_table, terminal_width

__all__ = ["add_logs_command", "parse_since", "parse_status"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """UNIX seconds from ``30m``, ``2h``, ``7d`` (ago) or an ISO date/time (local time)."""
    now = time.time() if now is None else now
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an age like 30m, 2h, 7d or a date like 2026-11-30T09:00, got '{text}'"
        ) from None


def parse_status(text: str) -> tuple[int, int]:
    """An inclusive range of statuses from ``200``, ``4xx``, ``5xx`` or ``error`` (>= 400)."""
    t = text.strip().lower()
    if t == "error":
        return 400, 599
    if t == "ok":
        return 200, 299
    if re.fullmatch(r"[1-5]xx", t):
        base = int(t[0]) * 100
        return base, base + 99
    if re.fullmatch(r"[1-5]\d\d", t):
        return int(t), int(t)
    raise argparse.ArgumentTypeError(f"expected 200, 4xx, 5xx, ok or error, got '{text}'")


COLUMNS = (
    "ts", "key_id", "route", "provider", "model", "status", "error", "ttft", "latency",
    "input_tokens", "output_tokens", "cost", "attempts", "stream", "prompt", "answer",
)  # fmt: skip


def query_logs(config: Config, args: argparse.Namespace) -> list[dict[str, Any]]:
    from sqlalchemy import or_, select

    from ..accounting.db import Database, database_url

    url = database_url(config)
    if url is None:
        raise ConfigError(f"{config.source}: database_url is 'none': there is no request log")
    db = Database(url)
    if url.startswith("sqlite:///") and not _sqlite_exists(url):
        raise ConfigError(
            f"no request log at {url.removeprefix('sqlite:///')}: turnout serve creates it "
            "(or pass the server's --config)"
        )

    def run() -> list[dict[str, Any]]:
        t = db.tables()["request_log"]
        query = select(*(t.c[c] for c in COLUMNS)).order_by(t.c.ts.desc()).limit(args.n)
        if args.model:
            like = f"%{args.model}%"
            query = query.where(
                or_(t.c.model.like(like), t.c.route.like(like), t.c.deployment.like(like))
            )
        if args.status:
            low, high = args.status
            query = query.where(t.c.status >= low, t.c.status <= high)
        if args.since is not None:
            query = query.where(t.c.ts >= args.since)
        if args.key:
            query = query.where(t.c.key_id == args.key)
        with db.engine().connect() as conn:
            return [{c: r._mapping[c] for c in COLUMNS} for r in conn.execute(query)]

    try:
        rows: list[dict[str, Any]] = db._guard(run)
    finally:
        db.dispose()
    return rows


def _sqlite_exists(url: str) -> bool:
    from pathlib import Path

    return Path(url.removeprefix("sqlite:///")).is_file()


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


def cmd_logs(args: argparse.Namespace, config: Config) -> int:
    import orjson

    rows = query_logs(config, args)
    if args.json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return 0
    if not rows:
        print("no requests logged match", file=sys.stderr)
        return 0
    table = [("TIME", "KEY", "ROUTE", "PROVIDER", "MODEL", "STATUS", "TTFT", "LATENCY", "TOKENS",
              "COST")]  # fmt: skip
    for r in reversed(rows):  # oldest at the top, newest next to the prompt
        status = str(r["status"]) + (f" {r['error']}" if r["error"] else "")
        table.append(
            (
                _time(r["ts"]),
                r["key_id"] or "-",
                r["route"] or "",
                r["provider"] or "",
                r["model"] or "",
                status,
                _seconds(r["ttft"]),
                _seconds(r["latency"]),
                f"{r['input_tokens']}/{r['output_tokens']}",
                "" if r["cost"] is None else f"${r['cost']:.6f}",
            )
        )
    # Narrow terminals lose KEY, then TTFT, then PROVIDER.
    print(render_table(table, width=terminal_width(), optional=(1, 6, 3)))
    # Prompt and answer text, when the server keeps it (request_log.store_content).
    for r in reversed(rows):
        if r["prompt"] or r["answer"]:
            print(f"\n{_time(r['ts'])} {r['route'] or ''}")
            for name in ("prompt", "answer"):
                if r[name]:
                    print(f"  {name}: " + r[name].replace("\n", "\n    "))
    return 0


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%m-%d %H:%M:%S")


def add_logs_command(
    sub: argparse._SubParsersAction, load: Callable[[argparse.Namespace], Config]
) -> None:
    logs = sub.add_parser(
        "logs",
        help="recent requests from the request log of turnout serve",
        description="The request log (written by turnout serve to the configured database): "
        "time, gateway key, route, provider, model, status, TTFT, latency, tokens in/out, "
        "cost. Newest last. Prompt and answer text follow the table when the server keeps "
        "them (request_log.store_content: true).",
    )
    logs.add_argument("-n", type=argtypes.positive, default=20, help="how many requests")
    logs.add_argument("--model", "-m", help="only requests whose route, model or deployment "
                      "contains this (default: all)")  # fmt: skip
    logs.add_argument(
        "--status", type=parse_status, help="200, 4xx, 5xx, ok or error (default: all)"
    )
    logs.add_argument(
        "--since", type=parse_since, help="an age (30m, 2h, 7d) or a date (default: any time)"
    )
    logs.add_argument("--key", help="only this gateway key id (default: all)")
    logs.add_argument("--json", action="store_true", help="one JSON object per line")
    logs.set_defaults(func=lambda args: cmd_logs(args, load(args)))
