"""The web console in a real browser (Debian's Chromium through Playwright), against a real
gateway: the embedded model, a fake upstream, a failing fake upstream first in a failover
route, and a SQLite request log. Each test is one thing a person does in the console."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from turnout.config import Config
from turnout.gateway import Gateway
from turnout.server import create_app

from .conftest import MASTER_KEY, fast_retry, needs_local, provider
from .console_browser import (
    PHONE,
    Watched,
    launch,
    open_page,
    require_browser,
    screenshot,
    sign_in,
)
from .fakes.openai_upstream import Fail, FakeOpenAI
from .fakes.servers import AiohttpThread, UvicornThread

pytestmark = [needs_local, pytest.mark.local_model]

LOCAL = "local:smollm2-135m-instruct"
PAGES = [
    ("Playground", "Playground", "playground"),
    ("Performance", "Performance", "performance"),
    ("Models", "Models", "models"),
    ("Providers & keys", "Providers and keys", "providers"),
    ("Requests", "Requests", "requests"),
]


class FailingOpenAI(FakeOpenAI):
    """An upstream that answers every request with a 503."""

    async def handle(self, request: Any) -> Any:
        self.script.appendleft(Fail(503, "the failing fake is down"))
        return await super().handle(request)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture(scope="module")
def console_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway's SQLite database (request log, feedback)."""
    return tmp_path_factory.mktemp("console") / "console.db"


@pytest.fixture(scope="module")
def gateway_url(console_db: Path) -> Iterator[str]:
    require_browser()
    good, bad = FakeOpenAI(), FailingOpenAI()
    good_server, bad_server = AiohttpThread(good.app).start(), AiohttpThread(bad.app).start()
    db = console_db
    config = Config.model_validate(
        {
            "providers": {
                "up": provider(good_server.url + "/v1"),
                "flaky": provider(bad_server.url + "/v1"),
            },
            "routes": [
                {"name": "failover", "deployments": ["flaky:model-x", "up:model-a"]},
            ],
            "models": [
                {
                    "id": "up:model-a",
                    "input_price": 1.0,
                    "output_price": 2.0,
                    "context_window": 32000,
                    "tags": ["fake"],
                    "price_source": "test",
                },
                {
                    "id": "flaky:model-x",
                    "input_price": 3.0,
                    "output_price": 4.0,
                    "context_window": 8000,
                    "tags": ["fake"],
                    "price_verified": False,
                },
            ],
            "retry": fast_retry(),
            "timeouts": {"connect": 2, "first_token": 30, "total": 60},
            "server": {"master_key": MASTER_KEY, "preload_local": True},
            "database_url": f"sqlite:///{db}",
            "request_log": {"flush_interval": 0.1},
        }
    )
    server = UvicornThread(create_app(Gateway(config))).start()
    deadline = time.monotonic() + 120  # the embedded model loads in the background
    while httpx.get(server.url + "/health").json()["local_model"] == "loading":
        assert time.monotonic() < deadline, "the embedded model did not load"
        time.sleep(0.2)
    yield server.url
    server.stop()
    good_server.stop()
    bad_server.stop()


@pytest.fixture
def admin(browser: Any, gateway_url: str) -> Iterator[Watched]:
    w = open_page(browser)
    sign_in(w, gateway_url, MASTER_KEY)
    yield w
    w.page.context.close()


def client(base: str, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def go(w: Watched, link: str, heading: str) -> None:
    page = w.page
    if not page.get_by_role("link", name=link).is_visible():
        page.get_by_role("button", name="Menu").click()  # the phone's collapsed bar
    page.get_by_role("link", name=link).click()
    page.get_by_role("heading", name=heading, exact=True).wait_for()


def field(scope: Any, name: str) -> Any:
    return scope.locator(f'[data-field="{name}"]')


def ask(page: Any, model: str, message: str, wait: float = 30_000) -> Any:
    """Send ``message`` to ``model`` from the playground; the answer's column once done."""
    page.get_by_label("Model, route or provider:model").fill(model)
    page.get_by_label("Message").fill(message)
    page.get_by_role("button", name="Send").click()
    answer = page.locator('[data-column="0"]')
    field(answer, "status").filter(has_text="done").wait_for(timeout=wait)
    return answer


def test_every_page_loads_without_errors_or_failed_requests(admin: Watched) -> None:
    page = admin.page
    for link, heading, name in PAGES:
        go(admin, link, heading)
        page.wait_for_load_state("networkidle")
        screenshot(admin, f"{name}-desktop")
    assert admin.errors == []
    assert admin.failed == []
    # The key lives in session storage only: never a cookie, never in the URL.
    assert page.context.cookies() == []
    assert MASTER_KEY not in page.url
    assert page.evaluate("sessionStorage.getItem('turnout.key')") == MASTER_KEY


def test_a_healthy_key_shows_its_check_beside_its_status_and_no_last_error(
    admin: Watched,
) -> None:
    page = admin.page
    go(admin, "Providers & keys", "Providers and keys")
    page.get_by_role("button", name="Check now").click()
    row = page.locator("tr", has=page.get_by_role("cell", name="up", exact=True))
    field(row, "status").filter(has_text="valid").wait_for()
    assert "1 model" in field(row, "status").inner_text()  # the check's detail
    assert field(row, "last-error").inner_text() == "—"
    assert admin.errors == []


def test_playground_streams_the_embedded_model_with_live_figures(admin: Watched) -> None:
    page = admin.page
    page.get_by_label("Max tokens").fill("12")
    answer = ask(page, LOCAL, "Say hello.", wait=60_000)
    assert field(answer, "provider").inner_text() == "local"
    assert field(answer, "deployment").inner_text() == LOCAL
    assert re.fullmatch(r"\d+ ms|\d+\.\d s", field(answer, "ttft").inner_text())
    assert field(answer, "cost").inner_text().startswith("$")
    assert field(answer, "speed").inner_text().endswith("tok/s")
    assert field(answer, "text").inner_text().strip()
    screenshot(admin, "playground-answer")
    assert admin.errors == []


def test_a_thumb_on_a_playground_answer_is_stored_as_feedback(
    admin: Watched, console_db: Path
) -> None:
    page = admin.page
    answer = ask(page, "up:model-a", "Rate me.")
    with page.expect_response("**/api/feedback") as posted:
        answer.get_by_role("button", name="Thumbs down").click()
    request_id = posted.value.request.post_data_json["request_id"]
    field(answer, "feedback").filter(has_text="Feedback stored: score 0").wait_for()
    with page.expect_response("**/api/feedback"):
        answer.get_by_role("button", name="Thumbs up").click()  # a change of mind replaces it
    field(answer, "feedback").filter(has_text="Feedback stored: score 1 for up:model-a").wait_for()
    assert answer.get_by_role("button", name="Thumbs up").get_attribute("aria-pressed") == "true"
    with sqlite3.connect(console_db) as db:
        rows = db.execute(
            "SELECT score, deployment, key_id FROM request_feedback WHERE request_id = ?",
            (request_id,),
        ).fetchall()
    assert rows == [(1.0, "up:model-a", None)]  # the master key's score, once
    screenshot(admin, "playground-feedback")
    assert admin.errors == [] and admin.failed == []


def test_compare_mode_fills_both_columns_and_the_summary(admin: Watched) -> None:
    page = admin.page
    page.get_by_label("Compare 2–4 models").check()
    page.get_by_label("Model 1").fill(LOCAL)
    page.get_by_label("Model 2").fill("up:model-a")
    page.get_by_label("Max tokens").fill("12")
    page.get_by_label("Message").fill("Name a colour.")
    page.get_by_role("button", name="Compare").click()
    for i, provider_name in enumerate(["local", "up"]):
        column = page.locator(f'[data-column="{i}"]')
        field(column, "status").filter(has_text="done").wait_for(timeout=60_000)
        assert field(column, "provider").inner_text() == provider_name
        assert field(column, "text").inner_text().strip()
    rows = page.get_by_role("table", name="Comparison summary").locator("tbody tr")
    assert rows.count() == 2
    assert "$" in rows.nth(1).inner_text()  # the fake's model has a price: a cost shows
    screenshot(admin, "compare-desktop")


def test_failover_shows_in_the_playground_and_the_performance_page(admin: Watched) -> None:
    page = admin.page
    answer = ask(page, "failover", "Hello?")
    assert field(answer, "provider").inner_text() == "up"
    assert field(answer, "attempts").inner_text() == "2 (1 failed, failed over)"
    go(admin, "Performance", "Performance")
    # The failed attempt is in the statistics, though the request succeeded elsewhere.
    stats = page.locator('[data-row="flaky:model-x"]')
    stats.wait_for()
    assert "OverloadedError" in field(stats, "errors").inner_text()
    flaky = page.locator('[data-deployment="flaky:model-x"]')
    flaky.wait_for()
    assert re.search(r"\d+ / [1-9]\d*", field(flaky, "outcomes").inner_text())
    assert field(flaky, "last-error").inner_text() == "overloaded"  # the fake's 503


def test_performance_page_updates_without_a_reload(admin: Watched, gateway_url: str) -> None:
    page = admin.page
    ask = client(gateway_url).chat.completions.create
    ask(model="up:model-a", messages=[{"role": "user", "content": "hi"}])
    go(admin, "Performance", "Performance")
    row = page.locator('[data-row="up:model-a"]')
    row.wait_for()  # the table has loaded, with the request just made
    before = int(field(row, "requests").inner_text())
    marker = page.evaluate("window.__marker = Math.random()")
    for _ in range(2):
        ask(model="up:model-a", messages=[{"role": "user", "content": "hi"}])
    page.wait_for_function(
        """n => { const row = document.querySelector('[data-row="up:model-a"]');
                  const c = row && row.querySelector('[data-field="requests"]');
                  return c && Number(c.textContent) >= n; }""",
        arg=before + 2,
        timeout=15_000,
    )
    assert page.evaluate("window.__marker") == marker  # same document: no reload happened
    screenshot(admin, "performance-live")


def test_models_filter_sort_and_compare(admin: Watched) -> None:
    page = admin.page
    go(admin, "Models", "Models")
    page.get_by_label("Tag").select_option("fake")
    rows = page.locator("table.models tbody tr")
    assert rows.count() == 2
    assert "unverified" in rows.filter(has_text="flaky:model-x").inner_text()
    page.get_by_role("button", name="Input").click()  # sort by input price, ascending
    assert (
        rows.first.inner_text().startswith("up:model-a") or "up:model-a" in rows.first.inner_text()
    )
    page.get_by_label("compare up:model-a").check()
    page.get_by_label("compare flaky:model-x").check()
    page.get_by_label("Input tokens").fill("1000000")
    page.get_by_label("Output tokens").fill("1000000")
    costs = page.get_by_role("region", name="Comparison").locator('[data-field="prompt-cost"]')
    assert costs.all_inner_texts() == ["$3.00", "$7.00"]
    screenshot(admin, "models-compare")


def test_gateway_key_created_seen_once_then_revoked_is_refused(
    admin: Watched, gateway_url: str
) -> None:
    page = admin.page
    go(admin, "Providers & keys", "Providers and keys")
    page.get_by_text("Create a key").click()
    page.get_by_label("Name").fill("browser-test")
    page.get_by_label("Requests/min").fill("100")
    page.get_by_role("button", name="Create key").click()
    secret = field(page, "secret").inner_text()
    assert secret.startswith("sk-")
    reply = client(gateway_url, secret).chat.completions.create(
        model="up:model-a", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    page.get_by_role("button", name="I have saved it").click()
    page.reload()
    page.get_by_role("heading", name="Providers and keys").wait_for()
    item = page.locator("li", has_text="browser-test")
    item.wait_for()
    assert secret not in page.content()  # shown once: never again
    page.once("dialog", lambda d: d.accept())
    item.get_by_role("button", name="Revoke").click()
    item.get_by_text("revoked").wait_for()
    with pytest.raises(openai.AuthenticationError):
        client(gateway_url, secret).chat.completions.create(
            model="up:model-a", messages=[{"role": "user", "content": "hi"}]
        )


def test_request_log_filters_by_status(admin: Watched, gateway_url: str) -> None:
    sdk = client(gateway_url)
    sdk.chat.completions.create(model="up:model-a", messages=[{"role": "user", "content": "x"}])
    sdk.chat.completions.create(model="failover", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    time.sleep(0.5)  # the log is written in batches every 0.1 s
    page = admin.page
    go(admin, "Requests", "Requests")
    rows = page.locator("table.log tbody tr")
    for choice, ok in (("error", False), ("success", True)):
        page.get_by_label("Status").select_option(label=choice)
        page.get_by_role("button", name="Filter").click()
        # The table is replaced when the filtered page arrives: wait for rows of one kind.
        page.wait_for_function(
            """ok => { const rs = [...document.querySelectorAll('table.log tbody tr')];
                       return rs.length > 0 && rs.every(r => (r.dataset.status < 400) === ok); }""",
            arg=ok,
        )
        statuses = [int(s) for s in rows.evaluate_all("rs => rs.map(r => r.dataset.status)")]
        assert statuses and all((s < 400) == ok for s in statuses), statuses
    page.get_by_label("Route or model asked for").fill("failover")
    page.get_by_label("Status").select_option(label="success")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('table.log tbody tr')].length > 0 && "
        "[...document.querySelectorAll('table.log tbody tr')].every("
        "r => r.textContent.includes('failover'))"
    )
    rows.first.get_by_role("button", name="Details").click()
    detail = page.get_by_role("region", name=re.compile(r"Request \d+"))
    attempt = detail.locator('[data-attempt="1"]')
    attempt.wait_for()
    assert "flaky:model-x: 503 OverloadedError" in attempt.inner_text()
    screenshot(admin, "requests-detail")


def test_request_log_searches_the_error_message(admin: Watched, gateway_url: str) -> None:
    sdk = client(gateway_url)
    sdk.chat.completions.create(model="up:model-a", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="gone-model", messages=[{"role": "user", "content": "x"}])
    time.sleep(0.5)  # the log is written in batches every 0.1 s
    page = admin.page
    go(admin, "Requests", "Requests")
    page.get_by_label("Error message contains").fill("GONE-MODEL")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function(
        "() => { const rs = [...document.querySelectorAll('table.log tbody tr')];"
        " return rs.length > 0 && rs.every(r => r.dataset.status === '404'); }"
    )
    page.locator("table.log tbody tr").first.get_by_role("button", name="Details").click()
    detail = page.get_by_role("region", name=re.compile(r"Request \d+"))
    detail.get_by_text("Error message").wait_for()
    assert "gone-model" in detail.inner_text()


def test_phone_width_has_no_horizontal_scroll_on_any_page(browser: Any, gateway_url: str) -> None:
    w = open_page(browser, PHONE)
    try:
        sign_in(w, gateway_url, MASTER_KEY)
        page = w.page
        assert not page.get_by_role("link", name="Models").is_visible()  # the bar is collapsed
        for link, heading, name in PAGES:
            go(w, link, heading)
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name}: {width} px wide at {PHONE['width']} px"
            screenshot(w, f"{name}-phone")
        assert w.errors == []
    finally:
        w.page.context.close()


def test_a_gateway_key_sees_only_the_playground(browser: Any, gateway_url: str) -> None:
    created = httpx.post(
        gateway_url + "/api/keys",
        json={"name": "playground-only", "models": ["up:*"]},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    ).json()
    w = open_page(browser)
    try:
        sign_in(w, gateway_url, created["key"])
        page = w.page
        nav = page.get_by_role("navigation", name="Pages")
        assert nav.get_by_role("link").all_inner_texts() == ["Playground"]
        page.locator("#model-choices option").first.wait_for(state="attached")
        options = page.locator("#model-choices option").evaluate_all("os => os.map(o => o.value)")
        assert options and all(o.startswith("up:") for o in options)
        page.goto(gateway_url + "/#/providers")
        page.get_by_text("This page needs the master key.").wait_for()
        for path in ("/api/keys", "/api/models", "/api/requests", "/api/models/stats"):
            status = page.evaluate(
                """p => fetch(p, {headers: {Authorization:
                       'Bearer ' + sessionStorage.getItem('turnout.key')}}).then(r => r.status)""",
                path,
            )
            assert status == 403, path
    finally:
        w.page.context.close()


def test_a_wrong_key_is_refused_at_sign_in(browser: Any, gateway_url: str) -> None:
    w = open_page(browser)
    try:
        page = w.page
        page.goto(gateway_url + "/")
        page.get_by_label("Master key or gateway key").fill("sk-wrong")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("alert").filter(has_text="invalid API key").wait_for()
        assert page.evaluate("sessionStorage.getItem('turnout.key')") is None
    finally:
        w.page.context.close()


def test_without_a_master_key_the_console_opens_without_login(
    browser: Any, serve: Any, tmp_path: Any
) -> None:
    config = Config.model_validate(
        {"server": {"preload_local": False}, "database_url": f"sqlite:///{tmp_path / 'o.db'}"}
    )
    w = open_page(browser)
    try:
        page = w.page
        page.goto(serve(config) + "/")
        page.get_by_role("heading", name="Playground").wait_for()
        assert page.get_by_text("Open: no master key configured").is_visible()
        page.wait_for_load_state("networkidle")
        assert w.errors == [] and w.failed == []
    finally:
        w.page.context.close()


def test_every_page_is_reachable_with_the_keyboard(admin: Watched) -> None:
    """Tab through the bar to each page's link and press Enter: no mouse needed."""
    page = admin.page
    for link, heading, _ in PAGES:
        page.locator("body").focus()
        page.evaluate("document.activeElement && document.activeElement.blur()")
        for _ in range(20):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == link:
                break
        else:
            raise AssertionError(f"Tab never reached the '{link}' link")
        page.keyboard.press("Enter")
        page.get_by_role("heading", name=heading, exact=True).wait_for()
