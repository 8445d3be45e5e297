"""The routing decision: filters, then a strategy, giving the ordered plan the executor walks.

    route.candidates --filters (capability, context, budget hooks)--> able
        --health (cooling down dropped unless all are)--> eligible
        --strategy.order(eligible, live stats)--> Plan.deployments

Which strategy: the request's (``x-turnout-strategy`` header or ``turnout.strategy``), else
the route's ``strategy``, else ``routing.default_strategy``. ``task``, ``auto`` and
``learned`` embed the request first (off the event loop, once, shared): the task classifier
reads the vector when the route declares task labels, ``learned`` looks it up in the route's
outcome store.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ..config import RoutingConfig
from ..deployment import Deployment
from ..errors import (
    BadRequestError,
    ContextWindowExceededError,
    MissingCredentialsError,
    MissingDependencyError,
    TurnoutError,
)
from ..logs import REQUEST_ID
from ..types import ChatRequest
from .filters import (
    Filter,
    Needs,
    capability_filter,
    context_filter,
    credentials_filter,
    request_needs,
)
from .route import Route
from .state import LiveState
from .strategies import STRATEGIES, Candidate, Context

if TYPE_CHECKING:
    from .cascade import Verifier
    from .classifier import TaskClassifier
    from .learned import FeedbackOutcomes, LearnedRoute, OutcomeFiles

__all__ = ["Plan", "Planner", "last_user_text"]

log = logging.getLogger("turnout.routing")


@dataclass(slots=True)
class Plan:
    """The decision for one request: what to try, in order, and why."""

    strategy: str
    deployments: list[Deployment]
    task: str | None = None
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """(deployment id, reason) for every candidate left out."""
    estimates: str | None = None
    """``learned``: each candidate's estimated chance of a good answer and cost."""
    verifier: Verifier | None = None
    """``cascade``: the route's checks; the executor stops at the first answer passing them."""


def last_user_text(request: ChatRequest) -> str:
    """The text of the last user message: what the task classifier reads."""
    for m in reversed(request.messages):
        if m.role != "user":
            continue
        if isinstance(m.content, str):
            return m.content
        return " ".join(t for p in m.content if (t := getattr(p, "text", None)))
    return ""


class Planner:
    def __init__(
        self,
        settings: RoutingConfig,
        state: LiveState,
        *,
        classifier: Callable[[], TaskClassifier] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.state = state
        self.filters: list[Filter] = [credentials_filter, capability_filter, context_filter]
        """Hard filters, in order. The accounting layer appends its budget checks here; a
        filter may also raise a ``TurnoutError`` to refuse the request outright."""
        self._classifier_factory = classifier
        self._classifier: TaskClassifier | None = None
        self.rand = rand
        self._warned = False
        self.learned: dict[str, LearnedRoute] = {}
        """Route name -> its outcome store and price of quality (``learned``), once loaded."""
        self.outcome_files: OutcomeFiles | None = None
        """Loaded outcome files, handed from one gateway to the next on reload."""
        from .learned import FeedbackOutcomes

        self.feedback: FeedbackOutcomes = FeedbackOutcomes()
        """Outcomes from feedback, the recent requests' vectors they need (``learned``) and
        each adaptive experiment's arm counts; handed on at reload."""

    def add_filter(self, f: Filter) -> None:
        self.filters.append(f)

    def needs_classifier(self, routes: list[Route]) -> list[Route]:
        """The routes whose strategy embeds requests (for preloading the model): those that
        classify them, and those with an outcome store."""
        return [
            r
            for r in routes
            if (
                r.task_labels
                and (r.strategy or self.settings.default_strategy) in ("task", "auto", "learned")
            )
            or r.learned is not None
        ]

    async def preload(self, routes: list[Route]) -> bool:
        """Load the classifier and its example tables, and the outcome stores, for these
        routes now (start-up, reload), so the first request does not wait for them. False
        when none needs them. A bad outcome file raises ``ConfigError`` naming its line."""
        wanted = self.needs_classifier(routes)
        for route in wanted:
            if route.task_labels:
                await self.classifier.preload(route.task_labels, route.tasks)
        await self.load_outcomes(routes)
        return bool(wanted)

    async def load_outcomes(self, routes: list[Route]) -> None:
        """Build each ``learned`` route's index from its outcome files (unchanged files are
        reused from ``outcome_files``), on the classifier's worker thread."""
        from .learned import LearnedRoute, OutcomeFiles
        from .outcomes import OutcomeIndex

        files = self.outcome_files = self.outcome_files or OutcomeFiles()
        clf = self.classifier
        embed = partial(clf.embed_texts, cache=True)  # embedded once, then read from disk
        for route in routes:
            settings = route.learned
            if settings is None:
                continue
            index = None
            for path in settings.outcomes:
                part = await clf.run(files.load, path, embed, clf.embedding_id)
                index = part if index is None else index.merged(part)
            if index is None:  # feedback only
                index = OutcomeIndex.empty()
            self.learned[route.name] = await clf.run(
                LearnedRoute, index, settings, route.candidates, self.feedback
            )
            log.info(
                "route %s: outcome store of %d prompts, %d models (%s)",
                route.name,
                len(index),
                len(index.models),
                index.source,
            )

    async def aclose(self) -> None:
        if self._classifier is not None:
            self._classifier.close()

    def strategy_name(self, route: Route, request: ChatRequest) -> str:
        hints = request.turnout
        if hints is not None and hints.strategy:
            return hints.strategy
        return route.strategy or self.settings.default_strategy

    @property
    def classifier(self) -> TaskClassifier:
        if self._classifier is None:
            if self._classifier_factory is None:
                from .classifier import TaskClassifier

                self._classifier = TaskClassifier(
                    self.settings.task_model,
                    threshold=self.settings.task_threshold,
                    neighbours=self.settings.task_neighbours,
                    queue=self.settings.task_queue,
                    max_tokens=self.settings.task_tokens,
                )
            else:
                self._classifier = self._classifier_factory()
        return self._classifier

    async def aplan(self, route: Route, request: ChatRequest, needs: Needs | None = None) -> Plan:
        """``plan``, after classifying the request when its strategy needs the task."""
        name = self.strategy_name(route, request)
        hints = request.turnout
        task = hints.task if hints is not None else None
        classify = task is None and name in ("task", "auto", "learned") and route.task_labels
        learned = name == "learned" and route.name in self.learned
        vector = None
        if classify or learned:
            text = last_user_text(request)
            if text:
                try:
                    vector, label = await self.classifier.embed_and_classify(
                        text, route.task_labels if classify else None, route.tasks
                    )
                    task = label if classify else task
                    request_id = REQUEST_ID.get()
                    if request_id and route.learned is not None and vector is not None:
                        self.feedback.remember(request_id, vector)
                except MissingDependencyError as exc:
                    # Routing must not fail a request the route can serve: go unclassified
                    # (route order), and say why once.
                    if not self._warned:
                        self._warned = True
                        log.warning("task routing is unclassified: %s", exc.message)
        return self.plan(route, request, task=task, strategy=name, needs=needs, embedding=vector)

    def plan(
        self,
        route: Route,
        request: ChatRequest,
        *,
        task: str | None = None,
        strategy: str | None = None,
        needs: Needs | None = None,
        embedding: Any = None,
    ) -> Plan:
        """``needs`` defaults to what the chat request needs (an embeddings request says its
        own); ``embedding`` is the request's vector when ``aplan`` computed one."""
        name = strategy or self.strategy_name(route, request)
        if name == "cascade" and route.verifier is None:
            raise BadRequestError(
                f"strategy 'cascade' needs a verifier on route '{route.name}' "
                f"(routes[].cascade in the config); this route has none",
                param="turnout.strategy",
            )
        needs = needs or request_needs(request)
        able: list[Candidate] = []
        dropped: list[tuple[str, str]] = []
        unkeyed = 0
        for c in route.candidates:
            for f in self.filters:
                reason = f(c.deployment, request, needs)
                if reason is not None:
                    dropped.append((c.id, reason))
                    unkeyed += f is credentials_filter
                    break
            else:
                able.append(c)
        if not able:
            raise _nothing_fits(route, dropped, only_unkeyed=unkeyed == len(dropped))
        usable = self.state.usable
        # manual: the caller named the deployment; a cooldown is not ours to overrule it with
        eligible = able if name == "manual" else [c for c in able if usable(c.id)]
        if not eligible:
            eligible = able  # all cooling down: try them anyway rather than refuse
        elif len(eligible) < len(able):
            dropped.extend((c.id, "cooling down") for c in able if not usable(c.id))
        estimates = None
        if len(eligible) == 1 and name != "manual":
            ordered = eligible
        else:
            hints = request.turnout
            ctx = Context(
                route=route.name,
                request=request,
                needs=needs,
                state=self.state,
                settings=self.settings,
                rand=self.rand,
                priority=(hints.priority if hints and hints.priority else route.priority),
                balance=route.balance,
                sticky=route.sticky,
                caller=(hints.caller if hints and hints.caller else request.user),
                deployment=hints.deployment if hints else None,
                task=task,
                embedding=embedding,
                learned=self.learned.get(route.name),
                arms=self.feedback.arms.setdefault(route.name, {}) if route.adaptive else None,
                min_share=route.min_share,
            )
            ordered = STRATEGIES[name].order(eligible, ctx)
            estimates = ctx.estimates
        plan = Plan(name, [c.deployment for c in ordered], task, dropped, estimates)
        if name == "cascade":
            plan.verifier = route.verifier
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "route %s strategy %s task %s: kept %s; dropped %s; order %s%s",
                route.name,
                name,
                task,
                [c.id for c in eligible],
                [f"{d} ({why})" for d, why in dropped] or "none",
                [d.id for d in plan.deployments],
                f"; estimates {estimates}" if estimates else "",
            )
        return plan


def _nothing_fits(
    route: Route, dropped: list[tuple[str, str]], *, only_unkeyed: bool
) -> TurnoutError:
    reasons = "; ".join(f"{d}: {why}" for d, why in dropped)
    if only_unkeyed:
        return MissingCredentialsError(
            f"no deployment of '{route.name}' has a provider key configured: {reasons}"
        )
    message = f"no deployment of '{route.name}' can serve this request: {reasons}"
    if all(why.startswith("context window") for _, why in dropped):
        return ContextWindowExceededError(message)
    if any(why.endswith(" support") for _, why in dropped):
        message += " (remove the field, use another model, or set drop_params: true)"
    return BadRequestError(message, code="no_capable_deployment")
