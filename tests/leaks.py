"""The known secrets of a test set-up, and where they show up. Every secret string a test
plants contains ``MARK``, and nothing else a test sends does: finding ``MARK`` anywhere finds
a secret, or the head of one that a cut left behind.

A check of another surface (a new endpoint) collects its text and calls
``assert_no_secret(text, secrets_of(config, env))``. ``read_console`` reads everything the web
console shows (its page and assets, and every API read its pages make, each request-log
record's detail included) for the caller to check the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from turnout.config import Config
from turnout.redaction import MIN_SECRET_LENGTH, config_secrets

__all__ = ["CONSOLE_READS", "MARK", "assert_no_secret", "leaked", "read_console", "secrets_of"]

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


CONSOLE_READS = (
    "/api/console/session",
    "/v1/models",
    "/api/models",
    "/api/models/stats?window=1h",
    "/api/models/providers",
    "/api/routing",
    "/api/keys",
    "/api/config/status",
    "/api/stats/series?window=1h",
    "/api/requests?since=1h&status=error",
    "/api/requests?since=1h&message=credentials",
)
"""The API reads of the console's pages (playground, performance, models, providers and
keys, requests), beside the listing and details ``read_console`` walks."""


def read_console(get: Callable[[str], Any]) -> list[dict[str, Any]]:
    """GET, with ``get`` (which keeps each response for the caller's check), the console's
    page and its assets, every read of ``CONSOLE_READS``, the request log's newest page and
    the detail of each record on it; returns those details."""
    index = get("/")
    assert index.status_code == 200, index.text
    for asset in sorted(set(re.findall(r"/assets/[\w.-]+", index.text))):
        assert get(asset).status_code == 200, asset
    for path in CONSOLE_READS:
        assert get(path).status_code == 200, path
    page = get("/api/requests?since=1h&limit=200")
    assert page.status_code == 200, page.text
    details = []
    for record in page.json()["data"]:
        detail = get(f"/api/requests/{record['id']}")
        assert detail.status_code == 200, detail.text
        details.append(detail.json())
    return details
