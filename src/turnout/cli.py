"""The ``turnout`` command: serve, chat, bench, models, keys, db; the parser and dispatch
(the larger commands live in ``turnout.commands``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from .commands import argtypes
from .commands.table import render_table, terminal_width
from .config import Config, load_config
from .errors import TurnoutError

__all__ = ["main"]


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


def _banner(config: Config, gateway: Any, app: Any, workers: int) -> None:
    """What serve is about to serve, before uvicorn's own lines: plain text on stderr, or log
    records when the logs are JSON."""
    import logging

    from .commands.banner import serve_banner

    log = logging.getLogger("turnout.serve")
    for line in serve_banner(config, gateway, app, workers):
        if config.log_format != "json":
            print(line, file=sys.stderr)
        elif line.startswith("warning: "):
            log.warning(line.removeprefix("warning: "))
        else:
            log.info(line)


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
    gateway = Gateway(config)
    redactor = gateway.redactor if workers == 1 else Redactor.from_config(config)
    setup_logging(config.log_level, config.log_format, redactor=redactor)
    app = create_app(gateway) if workers == 1 else None
    _banner(config, gateway, app, workers)
    options = {
        "host": config.server.host,
        "port": config.server.port,
        "log_level": config.log_level,
        "access_log": args.access_log,
        "loop": "auto",
        "ws": "none",  # no WebSocket routes: do not import a WebSocket stack
        # The app cuts what is still running at shutdown_timeout after SIGTERM (with an
        # explicit error, see server/lifecycle.py); uvicorn's own limit is only a backstop.
        "timeout_graceful_shutdown": max(
            1, round(config.server.shutdown_timeout - config.server.shutdown_grace_period + 5)
        ),
        **uvicorn_options(),  # the HTTP protocol that bounds connections (server/protocol.py)
        # uvicorn's records go to the root handlers, where the redacting filter sits.
        "log_config": None,
    }
    if workers > 1:
        # Each worker process builds its own gateway from the same file and environment.
        if config.source != "<defaults>":
            os.environ["TURNOUT_CONFIG"] = str(Path(config.source).resolve())
        os.environ["TURNOUT_WORKERS"] = str(workers)  # so each worker knows it has siblings
        from .server.workers import run_workers

        run_workers(workers, options)
        return 0
    assert app is not None
    uvicorn.run(app, **options)
    return 0


class _Progress:
    """A progress bar on stderr with an ETA: redrawn in place on a terminal, a line at each
    quarter otherwise (a log file gets four lines, not a stream of carriage returns).
    Hand-written (a dozen lines) rather than adding a progress-bar dependency to the core."""

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.done = self.errors = 0
        self._tty = sys.stderr.isatty()
        self._last_quarter = 0
        self._started = time.monotonic()

    def __call__(self, sample: object) -> None:
        self.done += 1
        self.errors += getattr(sample, "error", None) is not None
        errors = f" · {self.errors} error{'s' if self.errors != 1 else ''}" if self.errors else ""
        elapsed = time.monotonic() - self._started
        left = elapsed / self.done * (self.total - self.done)
        eta = f" · {elapsed:.0f}s elapsed" if self.done == self.total else f" · ETA {left:.0f}s"
        filled = 30 * self.done // self.total
        line = (
            f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} requests{errors}{eta}"
        )
        if self._tty:
            end = "\n" if self.done == self.total else ""
            sys.stderr.write(f"\r{line}\033[K{end}")
        elif (quarter := 4 * self.done // self.total) != self._last_quarter:
            self._last_quarter = quarter
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
    print(render_table(rows, width=terminal_width()))
    return 0 if all(s.status == "valid" for s in statuses) else 1


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it says it or has none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default in (None, False, [], argparse.SUPPRESS)
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line that names the command and the flag, then a pointer to
    ``--help`` (argparse's default prints the whole usage block first)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _with_config_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand ``--config`` (``-c`` too, except on ``chat``, where ``-c``
    continues the last conversation), so it may come anywhere on the line."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, child in action.choices.items():
            if "--config" not in child._option_string_actions:
                flags = (
                    ["--config"]
                    if name == "chat" or "-c" in child._option_string_actions
                    else [
                        "--config",
                        "-c",
                    ]
                )
                child.add_argument(
                    *flags,
                    dest="config",
                    default=argparse.SUPPRESS,
                    metavar="FILE",
                    help="YAML config file (default: $TURNOUT_CONFIG, else ./turnout.yaml, "
                    "else built-in defaults)",
                )
            _with_config_everywhere(child)


def build_parser() -> argparse.ArgumentParser:
    from .commands.chat import add_chat_command
    from .commands.models import add_models_command

    parser = _Parser(prog="turnout", description="Turnout LLM gateway")
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="YAML config file (default: $TURNOUT_CONFIG, else ./turnout.yaml, else built-in "
        "defaults)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the OpenAI- and Anthropic-compatible server")
    serve.add_argument("--host", help="bind address (default: server.host, else 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=argtypes.port,
        help="port (default: server.port, else 4000; 0: any free port)",
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log every request line (default: off)"
    )
    serve.add_argument(
        "--workers",
        type=argtypes.positive,
        help="worker processes sharing the port (default: server.workers, else 1)",
    )
    serve.add_argument(
        "--header-timeout",
        type=argtypes.positive_seconds,
        metavar="SECONDS",
        help="time a client has to send a request's headers (default 10, server.header_timeout)",
    )
    serve.add_argument(
        "--body-timeout",
        type=argtypes.positive_seconds,
        metavar="SECONDS",
        help="time from a request's headers to the end of its body (default 30)",
    )
    serve.add_argument(
        "--keep-alive-timeout",
        type=argtypes.positive_seconds,
        metavar="SECONDS",
        help="how long an idle connection waits for its next request (default 5)",
    )
    serve.add_argument(
        "--max-connections",
        type=argtypes.positive,
        metavar="N",
        help="open connections per worker process; more get 503 (default 2048)",
    )
    serve.set_defaults(func=cmd_serve)

    add_chat_command(sub, _config)

    bench = sub.add_parser(
        "bench",
        help="time the same prompts against several models: TTFT, total, tokens/s, cost",
    )
    bench.add_argument(
        "--model",
        "-m",
        action="append",
        help="model, route or provider:model; repeat for several (default: the default model)",
    )
    bench.add_argument(
        "--prompts",
        "-p",
        help="file of prompts: one per line, a JSON array or JSON Lines (default: built-in set)",
    )
    bench.add_argument(
        "--samples", "-n", type=argtypes.positive, default=3, help="runs of each prompt"
    )
    bench.add_argument("--concurrency", type=argtypes.positive, default=1, help="requests at once")
    bench.add_argument(
        "--max-tokens", type=argtypes.positive, default=256, help="output cap per answer"
    )
    bench.add_argument("--temperature", type=float, help="0 to 2 (default: the provider's)")
    bench.add_argument("--system", "-s", help="system prompt for every request (default: none)")
    bench.add_argument("--out", "-o", default="turnout-bench", help="folder for JSON and chart")
    bench.add_argument(
        "--no-chart", action="store_true", help="write the JSON only (default: JSON and PNG)"
    )
    bench.set_defaults(func=cmd_bench)

    add_models_command(sub, _config)

    from .accounting.cli import add_db_commands, add_key_commands
    from .commands.user import add_alias_commands, add_provider_key_commands

    keys = sub.add_parser(
        "keys",
        help="provider keys: set once, list (with where each comes from), check, remove",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    add_provider_key_commands(keys_sub, _config)
    check = keys_sub.add_parser(
        "check", help="validate every configured provider key with a cheap real call"
    )
    check.set_defaults(func=cmd_keys_check)
    add_key_commands(keys_sub, _config, deprecated="turnout gateway-keys")
    gateway_keys = sub.add_parser(
        "gateway-keys",
        help="keys for the clients of turnout serve: create, list, update, revoke",
    )
    gk_sub = gateway_keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    add_key_commands(gk_sub, _config)
    add_alias_commands(sub, _config)
    from .commands.logs import add_logs_command

    add_logs_command(sub, _config)
    add_db_commands(sub, _config)
    _with_config_everywhere(parser)
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
