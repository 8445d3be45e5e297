"""The argument types of every ``turnout`` subcommand: each parses one flag's text or raises
``argparse.ArgumentTypeError`` with what was expected (argparse adds the flag's name), so that
a bad value is one line, never a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

__all__ = ["port", "positive", "positive_seconds", "temperature"]

_N = TypeVar("_N", int, float)


def _parse(
    text: str, cast: Callable[[str], _N], ok: Callable[[_N], bool], unreadable: str, outside: str
) -> _N:
    """``cast(text)`` if it reads and ``ok`` accepts it. The messages are ``str.format``
    templates: ``unreadable`` gets ``text``, ``outside`` gets ``text`` and ``value``."""
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(unreadable.format(text=text)) from None
    if not ok(value):
        raise argparse.ArgumentTypeError(outside.format(text=text, value=value))
    return value


def positive(text: str) -> int:
    """A whole number of at least 1."""
    return _parse(
        text,
        int,
        lambda v: v >= 1,
        "expected a whole number, got '{text}'",
        "must be at least 1, got {value}",
    )


def positive_seconds(text: str) -> float:
    return _parse(
        text,
        float,
        lambda v: v > 0,
        "expected seconds, got {text!r}",
        "must be more than 0, got {text}",
    )


def port(text: str) -> int:
    return _parse(
        text,
        int,
        lambda v: 0 <= v <= 65535,
        "expected a port number, got '{text}'",
        "expected 0 to 65535, got {value}",
    )


def temperature(text: str) -> float:
    return _parse(
        text,
        float,
        lambda v: 0 <= v <= 2,
        "expected a number from 0 to 2, got '{text}'",
        "expected a number from 0 to 2, got {value:g}",
    )
