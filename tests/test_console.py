"""The console's server side over real HTTP: the built app at ``/`` with its security and
cache headers, ``server.console: false``, and the API written for the console (session,
request log with filters and cursor paging, time series, "check provider keys now"), each
answer validated against the served OpenAPI description."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from turnout.console import STATIC

from .conftest import MASTER_KEY, make_config
from .fakes.openai_upstream import Fail, FakeOpenAI
from .test_management import check

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
HI = [{"role": "user", "content": "hi"}]

built = pytest.mark.skipif(
    not (STATIC / "index.html").is_file() and os.environ.get("CI", "").lower() != "true",
    reason="the console is not built: run 'make console' (make test does)",
)


@pytest.fixture
def url(serve: Any, fake_url: str, tmp_path: Any) -> str:
    return serve(
        make_config(
            fake_url,
            server={"master_key": MASTER_KEY, "preload_local": False},
            database_url=f"sqlite:///{tmp_path / 'log.db'}",
            request_log={"flush_interval": 0.05},
            models=[{"id": "primary:model-a", "input_price": 2.0, "output_price": 8.0}],
        )
    )


@pytest.fixture
def spec(url: str) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(url + "/openapi.json").json()
    return doc


# --- the app itself -------------------------------------------------------------------------


@built
def test_console_page_has_strict_security_and_is_never_cached(url: str) -> None:
    r = httpx.get(url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp  # no inline code, no remote origin
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text  # every script is a file
    assert re.search(r'<script type="module" crossorigin src="/assets/[\w-]+\.js">', r.text)


@built
def test_hashed_assets_are_cached_for_a_year_and_gzipped(url: str) -> None:
    page = httpx.get(url + "/").text
    names = re.findall(r"/assets/([\w.-]+\.(?:js|css))", page)
    assert {n.rsplit(".", 1)[1] for n in names} == {"js", "css"}
    for name in names:
        r = httpx.get(url + "/assets/" + name, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["x-content-type-options"] == "nosniff"
        plain = httpx.get(url + "/assets/" + name, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == r.content
    assert httpx.get(url + "/assets/nope.js").status_code == 404
    assert httpx.get(url + "/assets/..%2Findex.html").status_code == 404


def test_console_false_leaves_only_the_api(serve: Any, fake_url: str) -> None:
    """With the setting exactly as docs/console.md shows it."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "console.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert block is not None
    shown = yaml.safe_load(block.group(1))
    assert shown == {"server": {"console": False}}
    shown["server"]["preload_local"] = False
    url = serve(make_config(fake_url, **shown))
    r = httpx.get(url + "/")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert httpx.get(url + "/v1/models").status_code == 200


# --- session --------------------------------------------------------------------------------


def test_session_says_who_the_key_is(url: str, spec: dict[str, Any]) -> None:
    anonymous = httpx.get(url + "/api/console/session")
    assert anonymous.status_code == 200 and anonymous.json()["role"] == "none"
    assert (
        httpx.get(url + "/api/console/session", headers={"Authorization": "Bearer x"}).json()[
            "error"
        ]["message"]
        == "invalid API key"
    )
    admin = httpx.get(url + "/api/console/session", headers=AUTH).json()
    check(spec, "ConsoleSession", admin)
    assert admin["role"] == "admin" and admin["open"] is False and admin["key"] is None
    assert "auto" in admin["strategies"] and "cost" in admin["priorities"]

    made = httpx.post(url + "/api/keys", headers=AUTH, json={"name": "k", "models": ["single"]})
    secret = made.json()["key"]
    mine = httpx.get(url + "/api/console/session", headers={"Authorization": f"Bearer {secret}"})
    check(spec, "ConsoleSession", mine.json())
    assert mine.json()["role"] == "key"
    assert mine.json()["key"]["models"] == ["single"] and "spend" in mine.json()["key"]
    assert secret not in mine.text  # the secret is never sent back
    httpx.delete(url + f"/api/keys/{made.json()['id']}", headers=AUTH)
    gone = httpx.get(url + "/api/console/session", headers={"Authorization": f"Bearer {secret}"})
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "key_revoked"


def test_session_on_an_open_server(serve: Any, fake_url: str) -> None:
    url = serve(make_config(fake_url))
    r = httpx.get(url + "/api/console/session")
    assert r.status_code == 200 and r.json()["open"] is True and r.json()["role"] == "admin"


# --- the request log ------------------------------------------------------------------------


def _traffic(url: str, fake: FakeOpenAI) -> None:
    """Three successes on `single`, one 503 (both deployments overloaded) on `chain`, one 404."""
    sdk = openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0)
    for _ in range(3):
        sdk.chat.completions.create(model="single", messages=HI)
    fake.then(*[Fail(503)] * 4)
    with pytest.raises(openai.APIStatusError):
        sdk.chat.completions.create(model="chain", messages=HI)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="no-such-model", messages=HI)


def _wait_for_log(url: str, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(httpx.get(url + "/api/requests", headers=AUTH).json()["data"]) < n:
        assert time.monotonic() < deadline, "the request log was not written"
        time.sleep(0.05)


def test_request_log_lists_filters_and_pages(
    url: str, spec: dict[str, Any], fake: FakeOpenAI
) -> None:
    _traffic(url, fake)
    _wait_for_log(url, 5)
    page = httpx.get(url + "/api/requests", headers=AUTH).json()
    check(spec, "LogPage", page)
    ids = [r["id"] for r in page["data"]]
    assert ids == sorted(ids, reverse=True) and page["next_cursor"] is None  # newest first
    assert page["data"][0]["route"] == "no-such-model" and page["data"][0]["status"] == 404

    def listed(**params: Any) -> list[dict[str, Any]]:
        r = httpx.get(url + "/api/requests", headers=AUTH, params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    assert sorted(r["status"] for r in listed(status="error")) == [404, 503]
    assert [r["status"] for r in listed(status="ok")] == [200, 200, 200]
    assert [r["status"] for r in listed(status="404")] == [404]
    assert len(listed(route="single")) == 3
    assert len(listed(provider="primary", route="single")) == 3
    assert len(listed(error="notfound")) == 1  # the error class, case-insensitive
    assert listed(error="%") == []  # a LIKE wildcard is matched literally

    # Cursor paging: pages of 2 walk the whole log once, newest first.
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = httpx.get(url + "/api/requests", headers=AUTH, params=params).json()
        seen += [r["id"] for r in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    one = httpx.get(url + f"/api/requests/{ids[-1]}", headers=AUTH)
    check(spec, "LogRecord", one.json())
    assert one.json()["route"] == "single" and one.json()["provider"] == "primary"
    missing = httpx.get(url + "/api/requests/999999", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "bad"}, "status"),
        ({"cursor": "abc"}, "cursor"),
        ({"limit": "-1"}, "limit"),
        ({"since": "forever"}, "window"),
        ({"since": "365d"}, "window"),
    ],
)
def test_request_log_bad_filters_are_400(url: str, params: dict[str, str], param: str) -> None:
    r = httpx.get(url + "/api/requests", headers=AUTH, params=params)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


def test_request_log_and_series_need_the_master_key(url: str) -> None:
    made = httpx.post(url + "/api/keys", headers=AUTH, json={"name": "k"}).json()
    theirs = {"Authorization": f"Bearer {made['key']}"}
    for path in ("/api/requests", "/api/requests/1", "/api/stats/series"):
        assert httpx.get(url + path).status_code == 401
        assert httpx.get(url + path, headers=theirs).status_code == 403
    assert httpx.post(url + "/api/models/providers/check", headers=theirs).status_code == 403


def test_series_buckets_requests_errors_ttft_and_spend(
    url: str, spec: dict[str, Any], fake: FakeOpenAI
) -> None:
    _traffic(url, fake)
    _wait_for_log(url, 5)
    r = httpx.get(url + "/api/stats/series", headers=AUTH, params={"window": "15m"})
    body = r.json()
    check(spec, "StatsSeries", body)
    assert body["bucket_s"] == 10 and 90 <= len(body["data"]) <= 91  # 15 min of 10 s buckets
    starts = [p["ts"] for p in body["data"]]
    assert all(b - a == 10 for a, b in zip(starts, starts[1:], strict=False))
    assert sum(p["requests"] for p in body["data"]) == 5
    assert sum(p["errors"] for p in body["data"]) == 2
    assert sum(p["spend_usd"] for p in body["data"]) > 0  # model-a is priced
    only = httpx.get(
        url + "/api/stats/series", headers=AUTH, params={"window": "1h", "route": "chain"}
    ).json()
    assert only["bucket_s"] == 30
    assert sum(p["requests"] for p in only["data"]) == 1
    assert sum(p["errors"] for p in only["data"]) == 1
    bad = httpx.get(url + "/api/stats/series", headers=AUTH, params={"window": "7d", "bucket": 1})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "bucket"


def test_model_stats_count_errors_by_class(
    url: str, spec: dict[str, Any], fake: FakeOpenAI
) -> None:
    _traffic(url, fake)
    _wait_for_log(url, 5)
    stats = httpx.get(url + "/api/models/stats", headers=AUTH).json()
    check(spec, "ModelStats", stats)
    failed: dict[str, int] = {}
    for row in stats["data"]:
        for cls, n in row["errors_by_class"].items():
            failed[cls] = failed.get(cls, 0) + n
    # Every attempt is a record: the 4 overloaded attempts of `chain`, not only its last.
    assert failed == {"OverloadedError": 4, "NotFoundError": 1}, failed


def test_a_deployment_failed_over_from_shows_in_stats_and_the_request(
    url: str, spec: dict[str, Any], fake: FakeOpenAI
) -> None:
    fake.then(Fail(503))  # primary:model-a fails, backup:model-b answers
    sdk = openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(model="chain", messages=HI)
    assert raw.headers["x-turnout-deployment"] == "backup:model-b"
    _wait_for_log(url, 1)
    time.sleep(0.2)  # the attempt's record is in the same batch or the next
    stats = httpx.get(url + "/api/models/stats", headers=AUTH).json()["data"]
    by = {(r["provider"], r["model"]): r for r in stats}
    assert by[("primary", "model-a")]["errors_by_class"] == {"OverloadedError": 1}
    assert by[("backup", "model-b")]["requests"] == 1 and by[("backup", "model-b")]["errors"] == 0
    listed = httpx.get(url + "/api/requests", headers=AUTH).json()["data"]
    assert len(listed) == 1 and listed[0]["attempts"] == 2  # one request, not two
    detail = httpx.get(url + f"/api/requests/{listed[0]['id']}", headers=AUTH).json()
    check(spec, "LogRecord", detail)
    (attempt,) = detail["failed_attempts"]
    assert attempt["deployment"] == "primary:model-a" and attempt["status"] == 503
    assert attempt["attempt"] == 1 and attempt["error"] == "OverloadedError"
    assert attempt["cost"] is None and attempt["output_tokens"] == 0


def test_check_providers_now(url: str, spec: dict[str, Any], fake: FakeOpenAI) -> None:
    r = httpx.post(url + "/api/models/providers/check", headers=AUTH)
    assert r.status_code == 200
    check(spec, "ProviderKeyList", r.json())
    statuses = {s["provider"]: s for s in r.json()["data"]}
    assert statuses["primary"]["status"] == "valid" and statuses["primary"]["last_checked"]
    assert statuses["down"]["status"] == "unreachable"
    assert "upstream-secret" not in r.text  # only a key's last 4 characters


# --- five-minute roll-ups -------------------------------------------------------------------


def _records(n: int, now: float, span: float = 6 * 3600) -> list[tuple[Any, ...]]:
    """``n`` log rows over the ``span`` seconds to ``now`` (6 hours): two routes, every 7th a
    503, ttft and cost set."""
    from turnout.accounting.records import COLUMNS

    out = []
    for i in range(n):
        failed = i % 7 == 0
        row = {
            "ts": now - span + i * (span / n), "request_id": None, "key_id": None,
            "route": "a" if i % 2 else "b", "strategy": None, "provider": "p",
            "model": "m" if i % 3 else None, "deployment": None, "stream": True,
            "status": 503 if failed else 200, "error": "X" if failed else None, "attempts": 1,
            "ttft": None if failed else 0.1 + (i % 5) / 100, "latency": 0.5,
            "input_tokens": 1, "output_tokens": 1, "cached_tokens": 0,
            "cost": None if failed else 0.001 * (i % 4),
            "attempt": 1 if i % 11 == 0 else None,  # a failed attempt's record: not a request
            "error_message": "upstream overloaded" if failed else None,
            "prompt": None, "answer": None,
        }  # fmt: skip
        out.append(tuple(row[c] for c in COLUMNS))
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_series_from_rollups_equal_a_scan_of_the_log(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The writer's roll-ups, and those the migration builds from an older log, give the
    same series as aggregating the records themselves, bucket by whole bucket."""
    from sqlalchemy import text

    from turnout.accounting.db import Database
    from turnout.accounting.log_queries import LogQuery, series, uses_rollup
    from turnout.accounting.records import COLUMNS

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'r.db'}"
    else:
        url = request.getfixturevalue("pg_url").replace("postgresql://", "postgresql+psycopg://")
    now = 1_764_500_000.0  # bucket-aligned below, so every bucket is whole
    db = Database(url)
    db.upgrade("0001")  # an older log, written before the roll-ups existed
    old = [r for r in _records(300, now - 3600) if r[COLUMNS.index("attempt")] is None]
    later = ("attempt", "error_message", "prompt", "answer")  # columns of 0002 and 0004
    cols = [c for c in COLUMNS if c not in later]
    with db.engine().begin() as conn:
        conn.execute(
            text(f"INSERT INTO request_log ({', '.join(cols)}) VALUES "
                 f"({', '.join(':' + c for c in cols)})"),
            [{c: v for c, v in zip(COLUMNS, r, strict=True) if c not in later} for r in old],
        )  # fmt: skip
    db.upgrade()  # 0002 rolls the existing records up
    db.write_records(_records(500, now))  # and the writer keeps them up to date
    for window, bucket, flt in ((8 * 3600, 900, {}), (8 * 3600, 3600, {"route": "a"}),
                                (8 * 3600, 1800, {"model": "m", "provider": "p"})):  # fmt: skip
        q = LogQuery(since=now - window, **flt)
        assert uses_rollup(q, bucket)
        rolled = series(db, q, now + 1, bucket)
        scanned = series(db, q, now + 1, bucket, rollup=False)
        assert sum(p["requests"] for p in rolled) == sum(p["requests"] for p in scanned) > 0
        for a, b in zip(rolled, scanned, strict=True):
            assert a["ts"] == b["ts"]
            assert (a["requests"], a["errors"]) == (b["requests"], b["errors"])
            assert a["spend_usd"] == pytest.approx(b["spend_usd"])
            assert a["ttft_avg"] == pytest.approx(b["ttft_avg"], abs=2e-4)  # both rounded to 4
    db.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_model_stats_from_rollups_agree_with_the_records(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``/api/models/stats`` over a large window reads the roll-ups (the migration's, for an
    older log, and the writer's): the same counts, errors by class, tokens, tokens per second
    and spend as summarising every record, and percentiles within half a bin (5 %)."""
    from sqlalchemy import text

    from turnout.accounting.db import Database
    from turnout.accounting.log_queries import model_stats
    from turnout.accounting.records import COLUMNS

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 's.db'}"
    else:
        url = request.getfixturevalue("pg_url").replace("postgresql://", "postgresql+psycopg://")
    now = 1_764_500_123.0  # not slot-aligned: the window's first slot is partial
    db = Database(url)
    db.upgrade("0003")  # an older log, written before these roll-ups existed
    later = ("error_message", "prompt", "answer")
    cols = [c for c in COLUMNS if c not in later]
    with db.engine().begin() as conn:
        conn.execute(
            text(f"INSERT INTO request_log ({', '.join(cols)}) VALUES "
                 f"({', '.join(':' + c for c in cols)})"),
            [dict(zip(COLUMNS, r, strict=False)) for r in _records(700, now - 3 * 3600)],
        )  # fmt: skip
    db.upgrade()  # 0004 rolls the existing records up
    db.write_records(_records(900, now))  # and the writer adds to them
    for window in (8 * 3600, 4 * 3600 + 17):
        rolled = model_stats(db, now - window, exact_below=0)
        exact = model_stats(db, now - window, exact_below=10**9)
        assert sum(r["requests"] for r in exact) > 500
        _assert_stats_agree(rolled, exact)
    db.dispose()


def _assert_stats_agree(rolled: list[dict[str, Any]], exact: list[dict[str, Any]]) -> None:
    from turnout.accounting.rollup import BIN_RATIO

    assert [(r["provider"], r["model"]) for r in rolled] == [
        (r["provider"], r["model"]) for r in exact
    ]
    for a, b in zip(rolled, exact, strict=True):
        for field in ("requests", "errors", "errors_by_class", "success_rate", "output_tokens"):
            assert a[field] == b[field], field
        assert a["spend_usd"] == pytest.approx(b["spend_usd"], abs=1e-6)
        assert a["tokens_per_second"] == pytest.approx(b["tokens_per_second"], abs=0.01)
        for field in ("ttft_p50", "ttft_p95", "latency_p50", "latency_p95"):
            assert b[field] / BIN_RATIO <= a[field] <= b[field] * BIN_RATIO, field


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_model_stats_from_hourly_and_daily_rollups_agree_with_the_records(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Windows of days read whole days and hours (``request_stats_coarse``,
    ``request_histogram_coarse``): the levels migration 0007 folds from an older log's
    five-minute rows, and those the writer keeps, give the figures of every record."""
    from sqlalchemy import func, select

    from turnout.accounting.db import Database
    from turnout.accounting.log_queries import model_stats
    from turnout.accounting.records import COLUMNS
    from turnout.accounting.rollup import histogram_rows, stats_rows, stats_upsert_sql

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 's.db'}"
    else:
        url = request.getfixturevalue("pg_url").replace("postgresql://", "postgresql+psycopg://")
    now = 1_764_500_123.0  # not aligned to a slot, an hour or a day
    db = Database(url)
    db.upgrade("0005")  # before the coarse levels: a log and its five-minute roll-ups
    old = _records(1500, now - 30 * 3600, span=3 * 86400)
    mark = "?" if db.dialect == "sqlite" else "%s"
    add_stats, add_histogram = stats_upsert_sql(mark)
    with db.engine().begin() as conn:
        table = db.tables()["request_log"]
        conn.execute(table.insert(), [dict(zip(COLUMNS, r, strict=True)) for r in old])
        conn.exec_driver_sql(add_stats, stats_rows(old))
        conn.exec_driver_sql(add_histogram, histogram_rows(old))
    db.upgrade()  # 0007 folds the five-minute rows into hours and days
    coarse = db.tables()["request_histogram_coarse"]
    with db.engine().connect() as conn:
        query = select(coarse.c.width, func.count()).group_by(coarse.c.width)
        widths = {int(w): n for w, n in conn.execute(query)}
    assert set(widths) == {3600, 86400} and widths[3600] > widths[86400] > 0
    db.write_records(_records(900, now, span=26 * 3600))  # and the writer adds to them
    for window in (4 * 86400, 3 * 86400 + 17, 50 * 3600 + 7 * 60, 25 * 3600, 8 * 3600):
        rolled = model_stats(db, now - window, exact_below=0)
        exact = model_stats(db, now - window, exact_below=10**9)
        assert sum(r["requests"] for r in exact) > 250
        _assert_stats_agree(rolled, exact)
    db.dispose()


def test_stats_levels_tile_the_window_with_the_coarsest_pieces() -> None:
    from turnout.accounting.log_queries import stats_levels
    from turnout.accounting.rollup import SLOT

    for first in (0, 1, 11, 12, 287, 288, 5_881_667, 5_881_680):
        covered = first * SLOT
        for width, lo, hi in stats_levels(first):
            assert lo * width == covered  # no gap, no overlap
            if hi is not None:
                covered = hi * width
                assert hi - lo < {300: 12, 3600: 24}[width]  # coarser pieces take the rest
        assert width == 86400 and hi is None


def test_request_log_searches_error_messages(
    url: str, spec: dict[str, Any], fake: FakeOpenAI
) -> None:
    """The error message is stored (redacted) and searchable; the detail shows it."""
    fake.then(Fail(400, "Your quota for model-a is used up"))
    r = httpx.post(
        url + "/v1/chat/completions", headers=AUTH, json={"model": "single", "messages": HI}
    )
    assert r.status_code == 400, r.text
    _wait_for_log(url, 1)
    found = httpx.get(url + "/api/requests", headers=AUTH, params={"message": "QUOTA for"})
    assert found.status_code == 200, found.text
    check(spec, "LogPage", found.json())
    (record,) = found.json()["data"]
    assert "quota for model-a" in record["error_message"]
    assert (
        httpx.get(url + "/api/requests", headers=AUTH, params={"message": "%"}).json()["data"] == []
    )
    assert (
        httpx.get(url + "/api/requests", headers=AUTH, params={"message": "no such words"}).json()[
            "data"
        ]
        == []
    )


def test_prompt_and_answer_are_kept_only_when_the_config_says_so(
    serve: Any, fake_url: str, fake: FakeOpenAI, tmp_path: Path
) -> None:
    for store, limit in ((False, 2000), (True, 40)):
        db = tmp_path / f"log-{store}.db"
        url = serve(
            make_config(
                fake_url,
                server={"master_key": MASTER_KEY, "preload_local": False},
                database_url=f"sqlite:///{db}",
                request_log={"flush_interval": 0.05, "store_content": store,
                             "content_limit": limit},
            )
        )  # fmt: skip
        long = "Translate into French, word for word, without a comment: " + "the cat " * 20
        body = {"model": "single", "messages": [{"role": "user", "content": long}]}
        assert httpx.post(url + "/v1/chat/completions", headers=AUTH, json=body).is_success
        _wait_for_log(url, 1)
        (listed,) = httpx.get(url + "/api/requests", headers=AUTH).json()["data"]
        assert "prompt" not in listed and "answer" not in listed  # never in listings
        detail = httpx.get(url + f"/api/requests/{listed['id']}", headers=AUTH).json()
        if not store:
            assert detail["prompt"] is None and detail["answer"] is None
            continue
        assert detail["prompt"].startswith("user: Translate into French")
        assert detail["prompt"].endswith("...") and len(detail["prompt"]) <= limit + 3
        assert detail["answer"] == "Hello from the fake upstream."
