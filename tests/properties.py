"""What the property-based tests share: JSON-like values drawn from a wire format's own
vocabulary (so that generated objects reach deep into a parser instead of failing its first
check), a check that parsed stream events are well typed, and a guard that turns a hang into
a failure.

The hypothesis profile (deterministic, bounded) is registered in ``conftest.py``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hypothesis import strategies as st

from turnout.types import Finish, StreamEvent, TextDelta, ToolCallDelta, UsageUpdate

SECRET = "sk-upstream-secret-property-7f3a9c"
"""The deployment's key in property tests: no error may carry it."""

# orjson reads integers up to 64 bits; wider ones are the JSON decoder's business.
INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)


def json_like(
    keys: Sequence[str], words: Sequence[str] = (), max_leaves: int = 24, secret: bool = True
) -> Any:
    """JSON values whose object keys and strings come mostly from ``keys`` and ``words`` (and
    ``SECRET`` among the strings, unless ``secret`` is false)."""
    text = st.sampled_from([*keys, *words, *([SECRET] if secret else [])]) | st.text(max_size=12)
    scalars = st.none() | st.booleans() | INTS | FLOATS | text
    key = st.sampled_from(list(keys)) | st.text(max_size=6)
    return st.recursive(
        scalars,
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(key, kids, max_size=6),
        max_leaves=max_leaves,
    )


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points, as network reads deliver it."""
    cuts = sorted(draw(st.sets(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def check_events(events: Iterable[StreamEvent]) -> None:
    """Every event is of the declared types: what ``ChatStream`` and the wire writers assume."""
    for event in events:
        if isinstance(event, TextDelta):
            assert isinstance(event.text, str) and type(event.choice) is int, event
        elif isinstance(event, ToolCallDelta):
            assert type(event.index) is int and type(event.choice) is int, event
            assert isinstance(event.arguments, str), event
            assert event.id is None or isinstance(event.id, str), event
            assert event.name is None or isinstance(event.name, str), event
        elif isinstance(event, Finish):
            assert isinstance(event.reason, str) and type(event.choice) is int, event
        else:
            assert isinstance(event, UsageUpdate), event
            u = event.usage
            counts = (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens)
            assert all(type(n) is int for n in counts), event


@contextmanager
def no_hang(seconds: float = 60) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the body runs longer than ``seconds``."""

    def fire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds:g}s: a parser hangs")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
