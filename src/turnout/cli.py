"""The ``turnout`` command: serve, chat, bench, models, keys, db."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .config import CAPABILITIES, STRATEGIES, Config, load_config
from .errors import ConfigError, TurnoutError

__all__ = ["main"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


# ``turnout serve`` flags that set a ``server:`` key. They go through the key's environment
# variable, so that every worker process (which loads the config itself) sees them too.
_SERVE_FLAGS = {
    "header_timeout": "TURNOUT_HEADER_TIMEOUT",
    "body_timeout": "TURNOUT_BODY_TIMEOUT",
    "keep_alive_timeout": "TURNOUT_KEEP_ALIVE_TIMEOUT",
    "max_connections": "TURNOUT_MAX_CONNECTIONS",
}


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .gateway import Gateway
    from .logs import setup_logging
    from .redaction import Redactor
    from .server import create_app
    from .server.protocol import uvicorn_options

    for name, var in _SERVE_FLAGS.items():
        if getattr(args, name) is not None:
            os.environ[var] = str(getattr(args, name))
    # Flags reach the config through its environment variables, so that a reload (which
    # reads the file and the environment again) sees the same values.
    if args.host:
        os.environ["TURNOUT_HOST"] = args.host
    if args.port is not None:
        os.environ["TURNOUT_PORT"] = str(args.port)
    if args.workers is not None:
        os.environ["TURNOUT_WORKERS"] = str(args.workers)
    config = _config(args)
    workers = config.server.workers
    options = {
        "host": config.server.host,
        "port": config.server.port,
        "log_level": config.log_level,
        "access_log": args.access_log,
        "loop": "auto",
        "http": "auto",
        "ws": "none",  # no WebSocket routes: do not import a WebSocket stack
        # The app cuts what is still running at shutdown_timeout after SIGTERM (with an
        # explicit error, see server/lifecycle.py); uvicorn's own limit is only a backstop.
        "timeout_graceful_shutdown": max(
            1, round(config.server.shutdown_timeout - config.server.shutdown_grace_period + 5)
        ),
        **uvicorn_options(),
        # uvicorn's records go to the root handlers, where the redacting filter sits.
        "log_config": None,
    }
    if workers > 1:
        # Each worker process builds its own gateway from the same file and environment.
        if config.source != "<defaults>":
            os.environ["TURNOUT_CONFIG"] = str(Path(config.source).resolve())
        os.environ["TURNOUT_WORKERS"] = str(workers)  # so each worker knows it has siblings
        from .server.workers import run_workers

        setup_logging(config.log_level, config.log_format, redactor=Redactor.from_config(config))
        run_workers(workers, options)
        return 0
    gateway = Gateway(config)
    setup_logging(config.log_level, config.log_format, redactor=gateway.redactor)
    uvicorn.run(create_app(gateway), **options)
    return 0


def _prompt_with_files(prompt: str, files: list[str]) -> str:
    parts = []
    for name in files:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot attach {name}: {exc}") from None
        parts.append(f"File: {path.name}\n```\n{text}\n```")
    parts.append(prompt)
    return "\n\n".join(parts)


async def _chat(args: argparse.Namespace) -> int:
    from .gateway import Gateway
    from .streaming import ChatStream
    from .types import ChatResult

    gateway = Gateway(_config(args))
    model = args.model or gateway.router.default_model()
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": _prompt_with_files(args.prompt, args.file)})
    request: dict[str, object] = {"model": model, "messages": messages}
    if args.max_tokens:
        request["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        request["temperature"] = args.temperature
    hints = {k: v for k, v in (("strategy", args.strategy), ("priority", args.priority)) if v}
    if hints:
        request["turnout"] = hints
    started = time.perf_counter()
    try:
        if args.no_stream:
            result = await gateway.chat(request)
            print(result.text)
            served: ChatResult | ChatStream = result
        else:
            stream = await gateway.stream(request)
            from .types import TextDelta

            async for event in stream:
                if isinstance(event, TextDelta):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
            sys.stdout.write("\n")
            served = stream
        total = time.perf_counter() - started
        ttft = served.time_to_first_token
        cost = gateway.cost(served)
        usage = served.usage
        print(
            f"[{served.provider} · {served.model} · {served.strategy or 'priority'} · ttft "
            f"{f'{ttft:.2f}s' if ttft is not None else 'n/a'} · total {total:.2f}s · "
            f"tokens {usage.prompt_tokens} in / {usage.completion_tokens} out · "
            f"cost {f'${cost:.6f}' if cost is not None else 'unknown'}"
            f"{f' · attempts {served.attempts}' if served.attempts > 1 else ''}]",
            file=sys.stderr,
        )
    finally:
        await gateway.aclose()
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    return asyncio.run(_chat(args))


class _Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per tenth otherwise.
    Hand-written (a dozen lines) rather than adding a progress-bar dependency to the core."""

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.done = self.errors = 0
        self._tty = sys.stderr.isatty()
        self._last_tenth = -1

    def __call__(self, sample: object) -> None:
        self.done += 1
        self.errors += getattr(sample, "error", None) is not None
        errors = f" · {self.errors} error{'s' if self.errors != 1 else ''}" if self.errors else ""
        filled = 30 * self.done // self.total
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} requests{errors}"
        if self._tty:
            end = "\n" if self.done == self.total else ""
            sys.stderr.write(f"\r{line}{end}")
        elif (tenth := 10 * self.done // self.total) != self._last_tenth:
            self._last_tenth = tenth
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


async def _bench(args: argparse.Namespace) -> int:
    import datetime

    import orjson

    from . import benchmark
    from .gateway import Gateway

    prompts = benchmark.load_prompts(args.prompts) if args.prompts else benchmark.BUILTIN_PROMPTS
    gateway = Gateway(_config(args))
    models = args.model or [gateway.router.default_model()]
    for model in models:
        gateway.router.resolve(model)  # an unknown model fails now, before any request
    total = len(models) * len(prompts) * args.samples
    print(
        f"turnout bench: {len(models)} model(s) x {len(prompts)} prompt(s) x "
        f"{args.samples} sample(s) = {total} requests, concurrency {args.concurrency}",
        file=sys.stderr,
    )
    try:
        samples = await benchmark.run(
            gateway,
            models,
            prompts,
            samples=args.samples,
            concurrency=args.concurrency,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            system=args.system,
            on_done=_Progress(total),
        )
    finally:
        await gateway.aclose()
    summaries = benchmark.summarise(samples)
    print(benchmark.table(summaries))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date_utc": stamp,
        "models": models,
        "prompts": list(prompts),
        "samples_per_prompt": args.samples,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
    }
    path = out / f"bench-{stamp}.json"
    data = benchmark.to_json(summaries, samples, meta)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    written = [str(path)]
    if not args.no_chart:
        title = f"turnout bench · {len(prompts)} prompts x {args.samples} samples"
        written.append(str(benchmark.chart(summaries, out / f"bench-{stamp}.png", title)))
    print(f"wrote {' and '.join(written)}", file=sys.stderr)
    return 1 if all(s.error is not None for s in samples) else 0


def cmd_bench(args: argparse.Namespace) -> int:
    return asyncio.run(_bench(args))


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


async def _provider_models(config: Config, provider: str) -> int:
    """What one provider serves, asked of the provider itself: Blaxel's control API (with
    sandbox flags), else the model listing key health uses."""
    from .blaxel import client_for
    from .catalogue import Catalogue
    from .deployment import resolve_deployment
    from .http import HttpPool
    from .keyhealth import upstream_models

    d = resolve_deployment(f"{provider}:-", config, Catalogue.default(config.models))
    http = HttpPool()
    try:
        if d.host.name != "blaxel":
            names = await upstream_models(d, http, config.key_health.timeout)
            _table([("NAME",), *((f"{provider}:{n}",) for n in names)])
            return 0
        models = await client_for(d, http).models()
    finally:
        await http.aclose()
    table: list[tuple[str, ...]] = [("NAME", "TYPE", "SERVES", "SANDBOX", "ENABLED", "STATUS")]
    table += [
        (
            f"{provider}:{m.name}",
            m.type,
            m.upstream,
            "yes (not callable)" if m.sandbox else "no",
            "yes" if m.enabled else "no",
            m.status,
        )
        for m in models
    ]
    _table(table)
    return 0


def _price(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def cmd_models(args: argparse.Namespace) -> int:
    import orjson

    from .gateway import Gateway

    if args.provider:
        return asyncio.run(_provider_models(_config(args), args.provider))
    gateway = Gateway(_config(args))
    entries = gateway.catalogue.query(
        capabilities=args.capability,
        tags=args.tag,
        provider=args.by,
        max_input_price=args.max_input_price,
        max_output_price=args.max_output_price,
        min_context=args.min_context,
    )
    filters = (args.capability, args.tag, args.by, args.max_input_price, args.max_output_price,
               args.min_context)  # fmt: skip
    routes = [] if any(v is not None and v != [] for v in filters) else gateway.router.routes()
    if args.json:
        listing = {
            "models": [e.to_dict() for e in entries],
            "routes": [
                {"name": r.name, "deployments": [d.id for d in r.deployments]} for r in routes
            ],
        }
        print(orjson.dumps(listing, option=orjson.OPT_INDENT_2).decode())
        return 0
    rows = [
        ("NAME", "CONTEXT", "MAX OUT", "$/M IN", "$/M OUT", "$/M CACHED", "CAPABILITIES", "TAGS")
    ]
    for e in entries:
        cached = e.cached_input_price if e.cached_input_price is not None else e.input_price
        rows.append(
            (
                e.id + ("" if e.price_verified is not False else " *"),
                str(e.context_window or ""),
                str(e.max_output or ""),
                _price(e.input_price),
                _price(e.output_price),
                _price(cached),
                ",".join(sorted(e.capabilities)),
                ",".join(sorted(e.tags)),
            )
        )
    for route in routes:
        chain = " -> ".join(d.id for d in route.deployments)
        rows.append((route.name, "", "", "", "", "", "route: " + chain, ""))
    _table(rows)
    if any(e.price_verified is False for e in entries):
        print("* price not confirmed at its source: see `turnout models --json` (price_note)")
    return 0


def cmd_keys_check(args: argparse.Namespace) -> int:
    from .keyhealth import check_keys

    statuses = asyncio.run(check_keys(_config(args)))
    if not statuses:
        print("no provider keys configured (providers: in the config, or *_API_KEY variables)")
        return 0
    rows = [("PROVIDER", "HOST", "KEY", "STATUS", "LATENCY", "DETAIL")]
    for s in statuses:
        latency = f"{s.latency * 1000:.0f}ms" if s.latency is not None else ""
        rows.append((s.provider, s.host, s.key, s.status, latency, s.last_error or s.detail or ""))
    _table(rows)
    return 0 if all(s.status == "valid" for s in statuses) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turnout", description="Turnout LLM gateway")
    parser.add_argument(
        "--config", "-c", help="YAML config file (default: $TURNOUT_CONFIG or ./turnout.yaml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the OpenAI-compatible server")
    serve.add_argument("--config", "-c", dest="config", default=argparse.SUPPRESS)
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 4000)")
    serve.add_argument("--access-log", action="store_true", help="log every request line")
    serve.add_argument(
        "--workers",
        type=_positive,
        help="worker processes sharing the port (default 1, or server.workers)",
    )
    serve.add_argument(
        "--header-timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="time a client has to send a request's headers (default 10, server.header_timeout)",
    )
    serve.add_argument(
        "--body-timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="time from a request's headers to the end of its body (default 30)",
    )
    serve.add_argument(
        "--keep-alive-timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="how long an idle connection waits for its next request (default 5)",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive,
        metavar="N",
        help="open connections per worker process; more get 503 (default 2048)",
    )
    serve.set_defaults(func=cmd_serve)

    chat = sub.add_parser("chat", help="send one prompt and print the answer as it streams")
    chat.add_argument("prompt")
    chat.add_argument("--config", "-c", dest="config", default=argparse.SUPPRESS)
    chat.add_argument("--model", "-m", help="route, catalogue model or provider:model")
    chat.add_argument("--file", "-f", action="append", default=[], help="attach a file as context")
    chat.add_argument("--system", "-s", help="system prompt")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    chat.add_argument("--strategy", choices=STRATEGIES, help="how the route orders its deployments")
    chat.add_argument(
        "--priority",
        choices=["speed", "quality", "cost", "balanced"],
        help="what --strategy auto optimises for",
    )
    chat.set_defaults(func=cmd_chat)

    bench = sub.add_parser(
        "bench",
        help="time the same prompts against several models: TTFT, total, tokens/s, cost",
    )
    bench.add_argument("--config", "-c", dest="config", default=argparse.SUPPRESS)
    bench.add_argument(
        "--model",
        "-m",
        action="append",
        help="model, route or provider:model; repeat for several (default: the default model)",
    )
    bench.add_argument(
        "--prompts", "-p", help="file of prompts: one per line, a JSON array or JSON Lines"
    )
    bench.add_argument("--samples", "-n", type=_positive, default=3, help="runs of each prompt")
    bench.add_argument("--concurrency", type=_positive, default=1, help="requests at once")
    bench.add_argument("--max-tokens", type=_positive, default=256)
    bench.add_argument("--temperature", type=float)
    bench.add_argument("--system", "-s", help="system prompt for every request")
    bench.add_argument("--out", "-o", default="turnout-bench", help="folder for JSON and chart")
    bench.add_argument("--no-chart", action="store_true", help="write the JSON only")
    bench.set_defaults(func=cmd_bench)

    models = sub.add_parser(
        "models", help="list the model catalogue (prices in USD per million tokens) and routes"
    )
    models.add_argument("--config", "-c", dest="config", default=argparse.SUPPRESS)
    models.add_argument(
        "--provider", "-p", help="ask one provider what it serves (Blaxel: its control API)"
    )
    models.add_argument(
        "--capability",
        action="append",
        default=[],
        choices=CAPABILITIES,
        help="only catalogue models with this capability (repeatable)",
    )
    models.add_argument("--tag", action="append", default=[], help="only models with this tag")
    models.add_argument("--by", metavar="PROVIDER", help="only this provider's catalogue models")
    models.add_argument("--max-input-price", type=float, help="USD per million input tokens")
    models.add_argument("--max-output-price", type=float, help="USD per million output tokens")
    models.add_argument("--min-context", type=int, help="context window, at least (tokens)")
    models.add_argument("--json", action="store_true", help="print JSON (every field)")
    models.set_defaults(func=cmd_models)

    from .accounting.cli import add_db_commands, add_key_commands

    keys = sub.add_parser(
        "keys", help="gateway keys (create, list, update, revoke) and provider keys (check)"
    )
    keys.add_argument("--config", "-c", dest="config", default=argparse.SUPPRESS)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    add_key_commands(keys_sub, _config)
    check = keys_sub.add_parser(
        "check", help="validate every configured provider key with a cheap real call"
    )
    check.add_argument("--config", "-c", dest="config", default=argparse.SUPPRESS)
    check.set_defaults(func=cmd_keys_check)
    add_db_commands(sub, _config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TurnoutError as exc:
        print(f"turnout: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
