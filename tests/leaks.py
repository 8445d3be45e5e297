"""The known secrets of a test set-up, and where they show up. Every secret string a test
plants contains ``MARK``, and nothing else a test sends does: finding ``MARK`` anywhere finds
a secret, or the head of one that a cut left behind.

A check of another surface (the console's pages, a new endpoint) collects its text and calls
``assert_no_secret(text, secrets_of(config, env))``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from turnout.config import Config
from turnout.redaction import MIN_SECRET_LENGTH, config_secrets

__all__ = ["MARK", "assert_no_secret", "leaked", "secrets_of"]

MARK = "SECRET"


def secrets_of(config: Config, environ: Mapping[str, str] | None = None, *extra: str) -> list[str]:
    """Every secret ``config`` gives the gateway (master key, provider keys, secret settings,
    URL passwords, webhook), plus ``extra`` ones the test made (gateway keys, bearer tokens)."""
    found = config_secrets(config, os.environ if environ is None else environ)
    return sorted({s for s in (*found, *extra) if s and len(s) >= MIN_SECRET_LENGTH})


def leaked(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets (or ``MARK``) that appear in ``text``."""
    out = [s for s in secrets if s in text]
    if MARK in text and not out:
        out.append(MARK)
    return out


def assert_no_secret(text: str, secrets: Iterable[str], where: str = "") -> None:
    found = leaked(text, secrets)
    if found:
        at = text.find(MARK)
        context = text[max(0, at - 200) : at + 100] if at >= 0 else ""
        raise AssertionError(f"secret(s) {found} in {where or 'output'}: ...{context}...")
