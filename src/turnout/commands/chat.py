"""``turnout chat``: one prompt (from the arguments, standard input or both), its answer
streamed, then a one-line summary on stderr. Ctrl-C ends the answer where it is, still with
the summary; a second Ctrl-C leaves at once."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ..config import STRATEGIES, Config
from ..errors import BadRequestError, ConfigError
from . import argtypes

__all__ = ["add_chat_command", "build_prompt", "request_options"]


def read_stdin() -> str | None:
    """What is piped into standard input; None on a terminal, or when nothing came."""
    if sys.stdin is None or sys.stdin.isatty():
        return None
    return sys.stdin.read() or None


def build_prompt(prompt: str | None, piped: str | None, files: list[str]) -> str:
    """The user message: attached files, then piped input, then the prompt. ``-`` as the
    prompt means standard input alone."""
    if prompt == "-":
        prompt, piped = (piped or "").rstrip("\n"), None
    parts = []
    for name in files:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--file {name}: cannot read it: {exc}") from None
        parts.append(f"File: {path.name}\n```\n{text}\n```")
    if piped and piped.strip():
        parts.append(piped.rstrip("\n"))
    if prompt:
        parts.append(prompt)
    if not parts:
        raise ConfigError("chat: no prompt: give one as an argument, or pipe text in")
    return "\n\n".join(parts)


def request_options(pairs: list[list[str]]) -> dict[str, Any]:
    """``-o key value`` pairs as request fields; a value is read as JSON when it is JSON
    (``-o temperature 0`` is the number 0, ``-o stop '["\\n"]'`` a list), else as a string."""
    options: dict[str, Any] = {}
    for key, raw in pairs:
        try:
            options[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            options[key] = raw
    return options


def _summary(
    served: Any, gateway: Any, total: float, interrupted: bool, cid: str | None = None
) -> str:
    ttft = served.time_to_first_token
    cost = gateway.cost(served)
    usage = served.usage
    return (
        f"[{served.provider} · {served.model} · {served.strategy or 'priority'} · ttft "
        f"{f'{ttft:.2f}s' if ttft is not None else 'n/a'} · total {total:.2f}s · "
        f"tokens {usage.prompt_tokens} in / {usage.completion_tokens} out · "
        f"cost {f'${cost:.6f}' if cost is not None else 'unknown'}"
        f"{f' · attempts {served.attempts}' if served.attempts > 1 else ''}"
        f"{' · interrupted' if interrupted else ''}{f' · {cid}' if cid else ''}]"
    )


def _explain(exc: BadRequestError, options: dict[str, Any]) -> BadRequestError:
    """A request the gateway refused because of a ``-o`` option names the option."""
    head = (exc.param or "").split(".")[0]
    if head in options:
        return BadRequestError(f"-o {head}: {exc.message}", param=exc.param)
    return exc


class Session:
    """One chat: the gateway, the conversation (stored when a database is configured) and
    the request settings; ``turn`` sends one user message and streams the answer."""

    def __init__(self, args: argparse.Namespace, config: Config, runner: asyncio.Runner) -> None:
        from ..gateway import Gateway

        self.args = args
        self.config = config
        self.runner = runner
        self.gateway = Gateway(config)
        self.options = request_options(args.option)
        if args.model:
            self.gateway.router.resolve(args.model)  # a typo fails before anything is made
        self.store = None if args.no_store else _open_store(config)
        self.conv: Any = None
        if args.cont or args.cid:
            self.conv = self._resume()
        self.model: str = (
            args.model
            or (self.conv.model if self.conv else None)
            or self.gateway.router.default_model()
        )
        self.gateway.router.resolve(self.model)  # an unknown model fails before any prompt
        self.system: str | None = (
            args.system if args.system is not None else (self.conv.system if self.conv else None)
        )

    def _resume(self) -> Any:
        flag = "--cid" if self.args.cid else "-c"
        if self.store is None:
            raise ConfigError(
                f"{flag}: conversations are kept in the database, and database_url is 'none'"
                if not self.args.no_store
                else f"{flag}: cannot continue a conversation with --no-store"
            )
        cid = self.args.cid or self.store.latest_id()
        conv = self.store.get(cid) if cid else None
        if conv is None:
            raise ConfigError(
                f"--cid {cid}: no such conversation (turnout chat --list shows them)"
                if self.args.cid
                else "-c: no conversation to continue yet: start one with turnout chat PROMPT"
            )
        return conv

    def _request(self, content: str) -> dict[str, Any]:
        history = self.conv.chat_messages() if self.conv else []
        history = [m for m in history if m["role"] != "system"]
        system = [{"role": "system", "content": self.system}] if self.system else []
        request: dict[str, Any] = {
            **self.options,
            "model": self.model,
            "messages": [*system, *history, {"role": "user", "content": content}],
        }
        if self.args.max_tokens:
            request["max_tokens"] = self.args.max_tokens
        if self.args.temperature is not None:
            request["temperature"] = self.args.temperature
        hints = {
            k: v
            for k, v in (("strategy", self.args.strategy), ("priority", self.args.priority))
            if v
        }
        if hints:
            request["turnout"] = hints
        return request

    def turn(self, content: str) -> bool:
        """Send ``content``, stream the answer, store both. False when Ctrl-C cut it short."""
        answer, served, interrupted, total = self.runner.run(self._ask(self._request(content)))
        if self.store is not None:
            if self.conv is None:
                self.conv = self.store.create(self.model, self.system, content)
            self.store.add(self.conv, "user", content)
            self.store.add(
                self.conv,
                "assistant",
                answer,
                deployment=served.deployment,
                input_tokens=served.usage.prompt_tokens,
                output_tokens=served.usage.completion_tokens,
                cost=self.gateway.cost(served),
                ttft=served.time_to_first_token,
                latency=total,
            )
        cid = self.conv.id if self.conv is not None else None
        print(_summary(served, self.gateway, total, interrupted, cid), file=sys.stderr)
        return not interrupted

    async def _ask(self, request: dict[str, Any]) -> tuple[str, Any, bool, float]:
        from ..streaming import ChatStream
        from ..types import TextDelta

        started = time.perf_counter()
        interrupted = False
        try:
            if self.args.no_stream:
                result = await self.gateway.chat(request)
                print(result.text)
                return result.text, result, False, time.perf_counter() - started
            stream: ChatStream = await self.gateway.stream(request)
        except BadRequestError as exc:
            raise _explain(exc, self.options) from None
        parts: list[str] = []
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
        except asyncio.CancelledError:
            interrupted = True  # Ctrl-C: end the answer here, still with its summary
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            await stream.aclose()
        sys.stdout.write("\n")
        sys.stdout.flush()
        return "".join(parts), stream, interrupted, time.perf_counter() - started

    def close(self) -> None:
        self.runner.run(self.gateway.aclose())
        if self.store is not None:
            self.store.db.dispose()


def _open_store(config: Config) -> Any:
    """The conversation store in the configured database; None when it is turned off. Says
    which database it created, the first time."""
    from ..accounting.conversations import Conversations, open_database
    from ..accounting.db import _safe, database_url

    url = database_url(config)
    if url is None:
        return None
    db, created = open_database(url)
    if created:
        print(f"turnout: created database {_safe(url)} (conversations, request log)",
              file=sys.stderr)  # fmt: skip
    return Conversations(db)


def _chat(args: argparse.Namespace, config: Config) -> int:
    if args.list:
        return _list(config)
    if args.show is not None:
        return _show(config, args.show)
    piped = read_stdin()
    interactive = args.prompt is None and sys.stdin is not None and sys.stdin.isatty()
    content = None if interactive else build_prompt(args.prompt, piped, args.file)
    with asyncio.Runner() as runner:
        session = Session(args, config, runner)
        try:
            if not interactive:
                assert content is not None
                return 0 if session.turn(content) else 130
            from .repl import repl

            return repl(session, build_prompt(None, None, args.file) if args.file else None)
        finally:
            session.close()


def _show(config: Config, cid: str) -> int:
    """Print a stored conversation: its settings, then each message."""
    from datetime import datetime

    store = _open_store(config)
    if store is None:
        raise ConfigError("--show: conversations are kept in the database: database_url is 'none'")
    try:
        cid = cid or store.latest_id() or ""
        conv = store.get(cid) if cid else None
        if conv is None:
            raise ConfigError(
                f"--show {cid}: no such conversation (turnout chat --list shows them)"
                if cid
                else "--show: no conversation yet"
            )
    finally:
        store.db.dispose()
    when = datetime.fromtimestamp(conv.created_at).strftime("%Y-%m-%d %H:%M")
    print(f"# {conv.id} · {conv.model} · started {when}")
    if conv.system:
        print(f"\n## system\n{conv.system}")
    for m in conv.messages:
        extra = ""
        if m["role"] == "assistant" and m.get("deployment"):
            extra = f" ({m['deployment']}, {m.get('output_tokens') or 0} tokens)"
        print(f"\n## {m['role']}{extra}\n{m['content']}")
    return 0


def _list(config: Config) -> int:
    from datetime import datetime

    store = _open_store(config)
    if store is None:
        raise ConfigError("--list: conversations are kept in the database: database_url is 'none'")
    rows = [("ID", "UPDATED", "MODEL", "MESSAGES", "TITLE")]
    for c in store.list(50):
        when = datetime.fromtimestamp(c["updated_at"]).strftime("%Y-%m-%d %H:%M")
        rows.append((c["id"], when, c["model"], str(c["messages"]), c["title"]))
    store.db.dispose()
    from .table import render_table, terminal_width

    print(render_table(rows, width=terminal_width()) if len(rows) > 1 else "no conversations yet")
    return 0


def add_chat_command(
    sub: argparse._SubParsersAction, load: Callable[[argparse.Namespace], Config]
) -> None:
    chat = sub.add_parser(
        "chat",
        help="send a prompt and print the answer as it streams",
        description="Send a prompt (an argument, piped standard input, or both: the piped "
        "text comes first) and stream the answer; a summary line (provider, model, TTFT, "
        "total time, tokens, cost) goes to stderr. Ctrl-C ends the answer; a second one quits.",
    )
    chat.add_argument("prompt", nargs="?", help="the prompt; '-' reads it from standard input")
    chat.add_argument(
        "--model",
        "-m",
        help="route, catalogue model or alias, or provider:model "
        "(default: default_model in the config, else the first route, else smollm2)",
    )
    chat.add_argument(
        "--file", "-f", action="append", default=[], help="attach a file as context (repeatable)"
    )
    chat.add_argument("--system", "-s", help="system prompt (default: none)")
    chat.add_argument(
        "--max-tokens",
        type=argtypes.positive,
        help="output cap in tokens (default: the model's default_max_tokens, else the provider's)",
    )
    chat.add_argument(
        "--temperature", type=argtypes.temperature, help="0 to 2 (default: the provider's)"
    )
    chat.add_argument(
        "--option",
        "-o",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="any request field, e.g. -o temperature 0 -o seed 7 (VALUE is read as JSON "
        "when it is JSON); repeatable",
    )
    chat.add_argument(
        "--no-stream", action="store_true", help="wait for the whole answer (default: stream)"
    )
    chat.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="how the route orders its deployments (default: the route's)",
    )
    chat.add_argument(
        "--priority",
        choices=["speed", "quality", "cost", "balanced"],
        help="what --strategy auto optimises for (default: the route's, else balanced)",
    )
    chat.add_argument(
        "-c",
        "--continue",
        dest="cont",
        action="store_true",
        help="continue the most recent conversation",
    )
    chat.add_argument("--cid", metavar="ID", help="continue the conversation with this id")
    chat.add_argument(
        "--list", action="store_true", help="list the stored conversations, newest first"
    )
    chat.add_argument(
        "--show",
        nargs="?",
        const="",
        metavar="ID",
        help="print a stored conversation (no ID: the most recent)",
    )
    chat.add_argument(
        "--no-store",
        action="store_true",
        help="do not keep this conversation in the database (default: kept when "
        "database_url is not 'none')",
    )
    chat.set_defaults(func=lambda args: _chat(args, load(args)))
