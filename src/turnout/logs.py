"""Logging set-up for the server and CLI: one line per record, no secrets (keys never reach a
log record: deployments show only ``key_hint``)."""

from __future__ import annotations

import logging

__all__ = ["setup_logging"]


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("turnout").setLevel(level.upper())
