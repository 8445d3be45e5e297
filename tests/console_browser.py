"""What the console's browser tests share: Debian's Chromium through Playwright (never a
downloaded browser), a page that records console errors and failed requests, and signing in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "console"


def require_browser() -> None:
    """Skip (with the reason) when the browser is absent, except on CI, where it must run."""
    on_ci = os.environ.get("CI", "").lower() == "true"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if on_ci:
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        if on_ci:
            pytest.fail(
                f"{CHROMIUM} is missing on CI: .ci/run installs it (apt-get install chromium)"
            )
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests")


def launch() -> Iterator[Any]:
    """Chromium for one test module (its ``browser`` fixture)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@dataclass
class Watched:
    """A page and what went wrong on it: console errors, uncaught exceptions, requests that
    failed or answered 4xx/5xx."""

    page: Any
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.errors.clear()
        self.failed.clear()


def watch(page: Any) -> Watched:
    w = Watched(page)
    page.on("console", lambda m: w.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: w.errors.append(str(e)))
    page.on("requestfailed", lambda r: w.failed.append(f"{r.url} {r.failure}"))
    page.on(
        "response", lambda r: w.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    return w


def open_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Watched:
    context = browser.new_context(viewport=viewport)
    return watch(context.new_page())


def sign_in(w: Watched, base: str, key: str) -> None:
    page = w.page
    page.goto(base + "/")
    page.get_by_label("Master key or gateway key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Playground").wait_for()


def screenshot(w: Watched, name: str) -> None:
    """Into docs/console/ when TURNOUT_SCREENSHOTS=1 (how docs/console.md's pictures are
    made), else nowhere: a test run does not rewrite committed files."""
    if os.environ.get("TURNOUT_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        w.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
