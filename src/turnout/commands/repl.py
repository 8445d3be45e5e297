"""The interactive ``turnout chat``: a prompt per turn, the conversation kept across turns.

Input: one line per message; a line ending in a backslash continues on the next, and a line of
three double quotes (``\"\"\"``) starts and ends a block of several lines. Commands: ``/exit``
(or ``/quit``, Ctrl-D), ``/model NAME``, ``/system TEXT`` (no text: none), ``/clear``,
``/help``. Ctrl-C during an answer ends that answer; Ctrl-C at the prompt leaves. Line editing
and a history of what was typed (``$XDG_STATE_HOME/turnout/history``) come from readline when
Python has it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import TurnoutError

__all__ = ["repl"]

HELP = """\
  /model NAME    switch model (route, catalogue model, alias or provider:model)
  /system TEXT   set the system prompt (no text: remove it)
  /clear         forget this conversation's messages
  /exit          leave (also /quit, Ctrl-D; Ctrl-C at the prompt)
  \"\"\"            start or end a message of several lines; or end a line with \\\
"""


def _history_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "turnout" / "history"


def _readline() -> Any:
    """readline with the saved history loaded, or None where Python lacks it."""
    try:
        import readline
    except ImportError:  # pragma: no cover - e.g. Windows
        return None
    with contextlib.suppress(OSError):  # no history yet
        readline.read_history_file(_history_file())
    readline.set_history_length(1000)
    return readline


def _save_history(readline: Any) -> None:
    if readline is None:
        return
    path = _history_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)
    except OSError as exc:
        print(f"turnout: history not saved: {exc}", file=sys.stderr)


def read_message(prompt: str = "> ") -> str:
    """One message from the terminal (see the module docstring); raises EOFError on Ctrl-D
    and KeyboardInterrupt on Ctrl-C."""
    first = input(prompt)
    if first.strip() == '"""':
        lines = []
        while (line := input("... ")).strip() != '"""':
            lines.append(line)
        return "\n".join(lines)
    lines = [first]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(input("... "))
    return "\n".join(lines)


def repl(session: Any, attached: str | None) -> int:
    """Run the interactive session until /exit, Ctrl-D or Ctrl-C at the prompt."""
    readline = _readline()
    where = f"conversation {session.conv.id}" if session.conv else "a new conversation"
    print(
        f"turnout chat with {session.model}, {where}. /help for commands, /exit to leave.",
        file=sys.stderr,
    )
    pending = attached  # files given with -f go with the first message
    try:
        while True:
            try:
                text = read_message()
            except (EOFError, KeyboardInterrupt):
                print(file=sys.stderr)
                return 0
            command, _, rest = text.strip().partition(" ")
            if command in ("/exit", "/quit"):
                return 0
            if command == "/help":
                print(HELP, end="", file=sys.stderr)
                continue
            if command == "/model":
                _switch_model(session, rest.strip())
                continue
            if command == "/system":
                session.system = rest.strip() or None
                if session.conv is not None and session.store is not None:
                    session.conv.system = session.system
                    session.store.update(session.conv)
                print(f"system prompt {'set' if session.system else 'removed'}", file=sys.stderr)
                continue
            if command == "/clear":
                if session.conv is not None and session.store is not None:
                    session.store.clear(session.conv)
                elif session.conv is not None:
                    session.conv.messages.clear()
                print("conversation cleared", file=sys.stderr)
                continue
            if command.startswith("/"):
                print(f"unknown command {command}: /help lists them", file=sys.stderr)
                continue
            if not text.strip():
                continue
            if pending:
                text, pending = f"{pending}\n\n{text}", None
            try:
                session.turn(text)
            except TurnoutError as exc:
                print(f"turnout: {exc}", file=sys.stderr)
    finally:
        _save_history(readline)


def _switch_model(session: Any, name: str) -> None:
    if not name:
        print(f"model: {session.model}", file=sys.stderr)
        return
    try:
        session.gateway.router.resolve(name)
    except TurnoutError as exc:
        print(f"turnout: {exc}", file=sys.stderr)
        return
    session.model = name
    if session.conv is not None and session.store is not None:
        session.conv.model = name
        session.store.update(session.conv)
    print(f"model: {name}", file=sys.stderr)
