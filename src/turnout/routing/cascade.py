"""The verifier of the ``cascade`` strategy: is a step's answer good enough to stop at?

The planner orders a cascade's deployments cheapest first and hands the route's settings to
the executor in the plan; the executor calls ``Verifier.check`` on each answer but the last
step's (returned whatever a check says) and moves on to the next deployment when it raises
``VerificationFailedError``. The checks run in a fixed
order, cheapest first: valid JSON, a JSON Schema, a regular expression, a minimum length, then
the judge (another route of the gateway asked for a yes or no, billed with the request).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import CascadeConfig
from ..errors import ConfigError, MissingDependencyError, TurnoutError, VerificationFailedError
from ..types import ChatRequest, ChatResult

__all__ = ["Judge", "Verifier", "describe", "schema_validator"]

log = logging.getLogger("turnout.routing")

Judge = Callable[[ChatRequest], Awaitable[ChatResult]]
"""Sends a request through the gateway (the judge's route is its ``model``)."""

REASON_LIMIT = 160
"""Characters of a reason kept for the header and the log (an answer may be quoted)."""


def schema_validator(schema: dict[str, Any], where: str) -> Any:
    """A jsonschema validator for ``schema``; ``ConfigError`` naming ``where`` when the schema
    is not one, ``MissingDependencyError`` when jsonschema is not installed."""
    try:
        import jsonschema
    except ImportError:
        raise MissingDependencyError(
            f"{where}: a JSON Schema check needs jsonschema: pip install 'turnout[schema]'"
        ) from None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"{where}: not a valid JSON Schema: {exc.message}") from None
    return cls(schema)


def describe(settings: CascadeConfig) -> list[str]:
    """The checks, in the order they run (for ``GET /api/routing``)."""
    out = []
    if settings.json_valid and settings.json_schema is None:
        out.append("json")
    if settings.json_schema is not None:
        out.append("schema")
    if settings.regex is not None:
        out.append(f"regex {settings.regex}")
    if settings.min_length is not None:
        out.append(f"min_length {settings.min_length}")
    if settings.judge is not None:
        out.append(f"judge {settings.judge.route}")
    return out


class Verifier:
    """One route's checks, compiled once when the route is built."""

    __slots__ = ("_regex", "_schema", "settings")

    def __init__(self, settings: CascadeConfig, where: str = "cascade") -> None:
        self.settings = settings
        self._regex = re.compile(settings.regex) if settings.regex is not None else None
        self._schema = (
            schema_validator(settings.json_schema, f"{where}.schema")
            if settings.json_schema is not None
            else None
        )

    def local_failure(self, text: str) -> str | None:
        """Why the answer fails a check that needs no model, or None when it passes."""
        s = self.settings
        stripped = text.strip()
        if s.json_valid or self._schema is not None:
            try:
                value = json.loads(stripped)
            except ValueError as exc:
                return f"not valid JSON ({exc})"
            if self._schema is not None:
                error = next(iter(self._schema.iter_errors(value)), None)
                if error is not None:
                    where = "/".join(str(p) for p in error.absolute_path) or "the answer"
                    return f"not valid against the schema at {where}: {error.message}"
        if self._regex is not None and self._regex.search(text) is None:
            return f"does not match {s.regex}"
        if s.min_length is not None and len(stripped) < s.min_length:
            return f"{len(stripped)} characters, fewer than {s.min_length}"
        return None

    async def check(
        self,
        request: ChatRequest,
        answer: ChatResult,
        cost: float | None,
        judge: Judge | None,
        judged: list[ChatResult],
    ) -> None:
        """Raise ``VerificationFailedError`` (carrying the answer, its usage and cost) when
        the answer fails a check. The judge's answers are appended to ``judged``: they are
        billed with the request."""
        reason = self.local_failure(answer.text)
        if reason is None and self.settings.judge is not None:
            reason = await self._judge(request, answer, judge, judged)
        if reason is not None:
            raise VerificationFailedError(
                _cut(reason),
                answer=answer,
                usage=answer.usage,
                cost=cost,
                provider=answer.provider,
                model=answer.model,
            )

    async def _judge(
        self,
        request: ChatRequest,
        answer: ChatResult,
        judge: Judge | None,
        judged: list[ChatResult],
    ) -> str | None:
        from ..accounting.records import prompt_text

        settings = self.settings.judge
        assert settings is not None
        if judge is None:
            return "no judge available"
        fill = {"prompt": prompt_text(request), "answer": answer.text}
        # One pass, so an answer that says "{prompt}" stays as it is.
        content = re.sub(r"\{(prompt|answer)\}", lambda m: fill[m.group(1)], settings.prompt)
        ask = ChatRequest.model_validate(
            {"model": settings.route, "messages": [{"role": "user", "content": content}]}
        )
        try:
            verdict = await judge(ask)
        except TurnoutError as exc:
            # No verdict is no pass: escalating costs money, a wrong answer may cost more.
            log.warning("cascade judge %s failed: %s", settings.route, exc)
            return f"judge {settings.route} failed: {type(exc).__name__}"
        judged.append(verdict)
        if re.match(r"\W*yes\b", verdict.text.strip().lower()):
            return None
        return f"judge {settings.route} said: {_cut(verdict.text.strip())}"


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"
