"""One guard for every parser of upstream stream events: whatever an upstream sends, its
parser returns well-typed events or raises the gateway's own error.

Stream parsers read JSON the upstream chose: a ``choices`` that is a number, a ``delta`` that is
a list, a token count that is a word. Without this guard such a shape surfaced as a
``TypeError`` (a 500 that blames the gateway) or, worse, as an event carrying the wrong type,
which failed later while the answer was assembled. ``stream_parser`` turns both into
``UpstreamServerError`` (a 502, retried and failed over like any upstream fault); the property
tests (tests/test_properties_wire.py) check every parser against arbitrary input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec

from ..deployment import Deployment
from ..errors import UpstreamServerError
from ..types import Finish, StreamEvent, TextDelta, ThinkingDelta, ToolCallDelta, UsageUpdate

__all__ = ["stream_parser"]

P = ParamSpec("P")

_SHAPE_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError)
"""What reading an unexpected JSON shape raises (``.get`` on a list, iterating a number,
``int("many")``)."""


def _check(event: StreamEvent) -> None:
    """Raise TypeError unless the event's fields have their declared types."""
    ok: bool
    if isinstance(event, TextDelta):
        ok = isinstance(event.text, str) and type(event.choice) is int
    elif isinstance(event, ToolCallDelta):
        ok = (
            type(event.index) is int
            and type(event.choice) is int
            and isinstance(event.arguments, str)
            and (event.id is None or isinstance(event.id, str))
            and (event.name is None or isinstance(event.name, str))
        )
    elif isinstance(event, ThinkingDelta):
        ok = (
            isinstance(event.thinking, str)
            and type(event.block) is int
            and type(event.choice) is int
            and (event.signature is None or isinstance(event.signature, str))
            and (event.redacted is None or isinstance(event.redacted, str))
        )
    elif isinstance(event, Finish):
        ok = (
            isinstance(event.reason, str)
            and type(event.choice) is int
            and (event.stop_sequence is None or isinstance(event.stop_sequence, str))
        )
    elif isinstance(event, UsageUpdate):
        u = event.usage
        ok = (
            type(u.prompt_tokens) is int
            and type(u.completion_tokens) is int
            and type(u.cached_tokens) is int
            and type(u.reasoning_tokens) is int
            and type(u.cache_write_tokens) is int
            and type(u.cache_write_1h_tokens) is int
        )
    else:
        ok = False
    if not ok:
        raise TypeError(f"{type(event).__name__} with a field of the wrong type")


def _deployment(args: tuple[Any, ...]) -> Deployment | None:
    for arg in args:
        if isinstance(arg, Deployment):
            return arg
    found = getattr(args[0], "_d", None) if args else None  # a parser object's deployment
    return found if isinstance(found, Deployment) else None


def stream_parser(fn: Callable[P, list[StreamEvent]]) -> Callable[P, list[StreamEvent]]:
    """Decorate a function (or method) that turns one upstream stream event into events: an
    unexpected shape, or an event field of the wrong type, becomes ``UpstreamServerError``.
    The deployment is the first ``Deployment`` argument, or the parser object's ``_d``."""

    @functools.wraps(fn)
    def parse(*args: P.args, **kwargs: P.kwargs) -> list[StreamEvent]:
        try:
            events = fn(*args, **kwargs)
            for event in events:
                # Most events are text: checked here, without a call per event.
                if not (
                    type(event) is TextDelta
                    and type(event.text) is str
                    and type(event.choice) is int
                ):
                    _check(event)
        except _SHAPE_ERRORS as exc:
            d = _deployment(args)
            detail = f"{type(exc).__name__}: {exc}"
            raise UpstreamServerError(
                f"malformed upstream stream event ({detail[:200]})",
                provider=d.provider if d else None,
                model=d.model if d else None,
            ) from None
        return events

    return parse
