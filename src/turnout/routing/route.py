"""Routes: the name a client asks for, resolved to an ordered list of deployments.

A request's ``model`` is looked up in one order: a configured route name, then a catalogue id
or alias, then ``provider:model`` (a route of one deployment, made on first use and kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..catalogue import LOCAL_MODEL_ID, Catalogue, check_model_name
from ..config import (
    BalanceWeights,
    Config,
    HedgeConfig,
    LearnedConfig,
    Priority,
    RetryConfig,
    RouteConfig,
    StrategyName,
    TimeoutsConfig,
)
from ..deployment import Deployment, resolve_deployment
from ..errors import ConfigError, NotFoundError, TurnoutError
from .cascade import Verifier
from .strategies import Candidate

__all__ = ["Route", "Router"]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    deployments: tuple[Deployment, ...]
    retry: RetryConfig
    timeouts: TimeoutsConfig
    candidates: tuple[Candidate, ...] = ()
    strategy: StrategyName | None = None
    """None: the gateway's ``routing.default_strategy``."""
    priority: Priority = "balanced"
    balance: BalanceWeights = field(default_factory=BalanceWeights)
    sticky: bool = False
    adaptive: bool = False
    min_share: float = 0.05
    tasks: dict[str, list[str]] = field(default_factory=dict)
    """Task label -> example prompts declared on the route (added to the built-in ones)."""
    context_fallback: bool = True
    hedge: HedgeConfig | None = None
    learned: LearnedConfig | None = None
    """``learned`` settings, outcome file paths made absolute (beside the config file)."""
    verifier: Verifier | None = None
    """``cascade``: the checks an answer must pass before the walk stops at it."""

    def __post_init__(self) -> None:
        if not self.candidates:
            object.__setattr__(
                self,
                "candidates",
                tuple(Candidate(d, i) for i, d in enumerate(self.deployments)),
            )

    @property
    def task_labels(self) -> frozenset[str]:
        """The labels a request on this route may be classified into."""
        labels = set(self.tasks)
        for c in self.candidates:
            labels |= c.tasks
        return frozenset(labels)


class Router:
    def __init__(self, config: Config, catalogue: Catalogue) -> None:
        self._config = config
        self._catalogue = catalogue
        self._routes: dict[str, Route] = {}
        for rc in config.routes:
            deployments = []
            candidates = []
            for i, dc in enumerate(rc.deployments):
                try:
                    d = resolve_deployment(dc.model, config, catalogue, dc.params)
                except TurnoutError as exc:
                    raise ConfigError(
                        f"{config.source}: routes[{rc.name}].deployments[{i}]: {exc.message}"
                    ) from None
                deployments.append(d)
                candidates.append(Candidate(d, i, dc.weight, frozenset(dc.tasks)))
            _check_tasks(config, rc.name, rc.strategy, candidates, rc.tasks)
            _check_cascade(config, rc)
            self._routes[rc.name] = Route(
                rc.name,
                tuple(deployments),
                rc.retry or config.retry,
                rc.timeouts or config.timeouts,
                candidates=tuple(candidates),
                strategy=rc.strategy,
                priority=rc.priority,
                balance=rc.balance,
                sticky=rc.sticky,
                adaptive=rc.adaptive,
                min_share=rc.min_share,
                tasks=rc.tasks,
                context_fallback=rc.context_fallback,
                hedge=rc.hedge,
                learned=_learned(config, rc.learned),
                verifier=(
                    Verifier(rc.cascade, f"{config.source}: routes[{rc.name}].cascade")
                    if rc.cascade is not None
                    else None
                ),
            )
        self._direct: dict[str, Route] = {}

    def resolve(self, model: str) -> Route:
        """The route for a name a client chose. A name that is neither a route nor a
        catalogue model must be a well-formed ``provider:model`` (else 400), of a provider
        this gateway can reach as configured (else 404, naming what is missing)."""
        route = self._routes.get(model) or self._direct.get(model)
        if route is not None:
            return route
        target = self._config.aliases.get(model)
        if target is not None and target != model:
            return self._routes.get(target) or self.resolve_direct(target)
        return self.resolve_direct(model)

    def resolve_direct(self, model: str) -> Route:
        """A catalogue model or ``provider:model`` as a route of one deployment."""
        route = self._direct.get(model)
        if route is not None:
            return route
        known = self._catalogue.get(model) is not None
        if not known:
            check_model_name(model)
        if not known and ":" not in model:
            near = self.nearest(model)
            hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
            raise NotFoundError(
                f"model '{model}' not found: {hint}It is not a route, a catalogue model or "
                "provider:model (`turnout models` or GET /v1/models lists what is served)",
                param="model",
            )
        try:
            deployment = resolve_deployment(model, self._config, self._catalogue)
        except ConfigError as exc:
            # The client named a provider this gateway is not set up for: not a fault of the
            # server (nothing it was asked to serve is broken), so no 500.
            raise NotFoundError(
                f"model '{model}' is not available on this gateway: {exc.message}",
                param="model",
            ) from None
        route = Route(model, (deployment,), self._config.retry, self._config.timeouts)
        if len(self._direct) < 1024:
            self._direct[model] = route
        return route

    def nearest(self, model: str, n: int = 3) -> list[str]:
        """The route names, catalogue ids and aliases closest to a mistyped name."""
        import difflib

        names = [*self._routes, *self._config.aliases, *self._catalogue.names()]
        # Also match on the model part alone, so 'gpt-5-mni' finds 'openai:gpt-5-mini'.
        by_tail = {name.partition(":")[2]: name for name in names if ":" in name}
        near = difflib.get_close_matches(model, names, n=n, cutoff=0.6)
        near += [by_tail[t] for t in difflib.get_close_matches(model, list(by_tail), n=n)]
        return list(dict.fromkeys(near))[:n]

    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def default_model(self) -> str:
        if self._config.default_model:
            return self._config.default_model
        if self._routes:
            return next(iter(self._routes))
        return LOCAL_MODEL_ID


def _learned(config: Config, learned: LearnedConfig | None) -> LearnedConfig | None:
    if learned is None:
        return None
    beside = Path(config.source).parent if config.source != "<defaults>" else Path.cwd()
    paths = [str((beside / Path(p).expanduser()).resolve()) for p in learned.outcomes]
    return learned.model_copy(update={"outcomes": paths})


def _check_cascade(config: Config, rc: RouteConfig) -> None:
    """A cascade needs its verifier; a judge must be another route of this config, and
    following judges from route to route must never come back to a route already on the way
    (a loop would judge each answer by asking the judge, whose answer is judged by asking...:
    without end, each call billed). A judge route may itself be a cascade with a judge."""
    where = f"{config.source}: routes[{rc.name}]"
    if rc.strategy == "cascade" and rc.cascade is None:
        raise ConfigError(
            f"{where}.cascade: the cascade strategy needs a verifier "
            f"(e.g. cascade: {{json: true}}; see docs/routing.md)"
        )
    routes = {r.name: r for r in config.routes}
    chain = [rc.name]
    current = rc
    while (judge := current.cascade.judge if current.cascade is not None else None) is not None:
        target = routes.get(judge.route)
        if target is None or target.name == current.name:
            place = where if current is rc else f"{config.source}: routes[{current.name}]"
            raise ConfigError(
                f"{place}.cascade.judge.route: '{judge.route}' is not another route of this "
                f"config (routes: {', '.join(routes)})"
            )
        if target.name in chain:
            loop = chain[chain.index(target.name) :] + [target.name]
            raise ConfigError(
                f"{where}.cascade.judge.route: the judges go round in a loop: "
                f"{' -> judge '.join(loop)} (a judge route must not lead back to a cascade "
                "it judges)"
            )
        chain.append(target.name)
        current = target


def _check_tasks(
    config: Config,
    name: str,
    strategy: str | None,
    candidates: list[Candidate],
    declared: dict[str, list[str]],
) -> None:
    from .tasks import builtin_tasks

    where = f"{config.source}: routes[{name}]"
    for c in candidates:
        for label in sorted(c.tasks):
            if label not in builtin_tasks() and not declared.get(label):
                raise ConfigError(
                    f"{where}.deployments[{c.index}].tasks: unknown task '{label}' "
                    f"(built in: {', '.join(builtin_tasks())}; or give example prompts under "
                    f"routes[{name}].tasks.{label})"
                )
    if strategy == "task" and not any(c.tasks for c in candidates):
        raise ConfigError(
            f"{where}.strategy: 'task' needs task labels on the deployments "
            f"(e.g. tasks: [code_generation])"
        )
