"""The web console's built assets (``static/``, made by ``make console`` from ``ui/``; not in
git). The server module that serves them is ``turnout.server.console``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC"]

STATIC = Path(__file__).parent / "static"
