"""Routing: which deployments may serve a request, in what order, and walking that order
with retries, timeouts and failover."""

from .executor import Executor
from .route import Route, Router

__all__ = ["Executor", "Route", "Router"]
