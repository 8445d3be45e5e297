"""Routing: which deployments may serve a request (filters), in what order (a strategy over
live stats), and walking that order with retries, timeouts, hedging and failover."""

from .cascade import Verifier
from .executor import Executor
from .planner import Plan, Planner
from .route import Route, Router
from .state import DeploymentStats, LiveState, MemoryState
from .strategies import STRATEGIES, Candidate, Strategy

__all__ = [
    "STRATEGIES",
    "Candidate",
    "DeploymentStats",
    "Executor",
    "LiveState",
    "MemoryState",
    "Plan",
    "Planner",
    "Route",
    "Router",
    "Strategy",
    "Verifier",
]
