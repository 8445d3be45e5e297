"""Provider key health against fakes: valid, invalid, unreachable, missing, rate-limited; the
probe each wire API uses; the periodic monitor; ``turnout keys check``; and
``GET /api/models/providers``. A key never appears anywhere: only its last four characters."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from turnout.catalogue import Catalogue
from turnout.cli import main
from turnout.config import Config
from turnout.deployment import Deployment
from turnout.gateway import Gateway
from turnout.hosts import Host
from turnout.keyhealth import KeyMonitor, check_keys, model_ids, probe_for
from turnout.server import create_app

from .conftest import MASTER_KEY
from .fakes.bedrock_upstream import FakeBedrock
from .fakes.blaxel_upstream import FakeBlaxel
from .fakes.servers import AiohttpThread, UvicornThread, free_port

GOOD = "sk-good-key-000000000000000001234"
BAD = "sk-bad-key-0000000000000000000bad9"
AKID, SECRET = "AKIDKEYHEALTH000777", "health/secret"
BL_KEY = "bl-health-key-000000000000000042"


def models_app(calls: list[dict[str, Any]]) -> web.Application:
    """An OpenAI-compatible ``GET /v1/models`` that knows one key, and a few broken hosts."""

    async def models(request: web.Request) -> web.Response:
        calls.append(dict(request.headers))
        if request.headers.get("Authorization") != f"Bearer {GOOD}":
            sent = request.headers.get("Authorization", "")[7:]
            return web.json_response(
                {"error": {"message": f"Incorrect API key provided: {sent}", "type": "x"}},
                status=401,
            )
        return web.json_response({"object": "list", "data": [{"id": "a"}, {"id": "b"}]})

    async def limited(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "slow down"}}, status=429)

    async def broken(request: web.Request) -> web.Response:
        return web.Response(text="upstream exploded", status=500)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_get("/limited/v1/models", limited)
    app.router.add_get("/broken/v1/models", broken)
    return app


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    openai_like = AiohttpThread(models_app(calls)).start()
    bedrock = AiohttpThread(FakeBedrock(credentials={AKID: SECRET}).app).start()
    blaxel = AiohttpThread(FakeBlaxel(BL_KEY).app).start()
    yield {"openai": openai_like.url, "bedrock": bedrock.url, "blaxel": blaxel.url, "calls": calls}
    for server in (openai_like, bedrock, blaxel):
        server.stop()


def providers(urls: dict[str, Any]) -> dict[str, Any]:
    base = urls["openai"]
    return {
        "good": {"host": "custom", "base_url": base + "/v1", "api_key": GOOD},
        "bad": {"host": "custom", "base_url": base + "/v1", "api_key": BAD},
        "limited": {"host": "custom", "base_url": base + "/limited/v1", "api_key": GOOD},
        "broken": {"host": "custom", "base_url": base + "/broken/v1", "api_key": GOOD},
        "down": {
            "host": "custom",
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "api_key": GOOD,
        },
        "nokey": {"host": "openai"},
        "aws": {
            "host": "bedrock",
            "base_url": urls["bedrock"],
            "settings": {"access_key_id": AKID, "secret_access_key": SECRET},
        },
        "aws-wrong": {
            "host": "bedrock",
            "base_url": urls["bedrock"],
            "settings": {"access_key_id": AKID, "secret_access_key": "not-it"},
        },
        "blaxel": {
            "api_key": BL_KEY,
            "settings": {"workspace": "acme", "control_url": urls["blaxel"] + "/v0"},
        },
    }


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider key from the machine's environment joins the check."""
    import os

    for name in list(os.environ):
        if name.endswith(("_API_KEY", "_TOKEN")) or name.startswith(("AWS_", "BL_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("HF_TOKEN", raising=False)


async def test_each_status(upstreams: dict[str, Any], isolated_env: None) -> None:
    config = Config.model_validate({"providers": providers(upstreams)})
    statuses = {s.provider: s for s in await check_keys(config)}
    assert {name: s.status for name, s in statuses.items()} == {
        "good": "valid",
        "bad": "invalid",
        "limited": "valid",
        "broken": "unreachable",
        "down": "unreachable",
        "nokey": "missing",
        "aws": "valid",
        "aws-wrong": "invalid",
        "blaxel": "valid",
    }
    assert statuses["good"].detail == "2 models"
    assert statuses["good"].key == "...1234"
    assert statuses["bad"].key == "...bad9"
    assert "Incorrect API key provided: ...bad9" in (statuses["bad"].last_error or "")
    assert statuses["aws"].key == "sigv4 ...0777"
    assert statuses["aws"].detail == "1 model"
    assert "HTTP 403: The request signature we calculated does not match" in (
        statuses["aws-wrong"].last_error or ""
    )
    assert statuses["blaxel"].detail == "3 models"
    assert "OPENAI_API_KEY" in (statuses["nokey"].last_error or "")
    for s in statuses.values():
        assert s.last_checked is not None and abs(s.last_checked - time.time()) < 60
        text = repr(s.to_json())
        for secret in (GOOD, BAD, SECRET, "not-it", BL_KEY):
            assert secret not in text


async def test_keys_found_in_the_environment_are_checked(
    upstreams: dict[str, Any], isolated_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", BAD)
    statuses = await check_keys(Config.model_validate({"key_health": {"timeout": 3}}))
    assert [(s.provider, s.host, s.key) for s in statuses] == [("groq", "groq", "...bad9")]
    assert statuses[0].status in ("invalid", "unreachable")  # no internet here


def _deployment(wire_api: str, base_url: str, **host: Any) -> Deployment:
    return Deployment(
        id="p:m",
        provider="p",
        host=Host("p", wire_api, base_url, **host),
        model="m",
        base_url=base_url,
        api_key="key-0000000000001",
        key_env=None,
        settings={},
        headers={},
        query={},
        params={},
        entry=None,
    )


@pytest.mark.parametrize(
    ("wire_api", "base_url", "host", "url", "header"),
    [
        (
            "openai_chat",
            "https://api.openai.com/v1",
            {},
            "https://api.openai.com/v1/models",
            ("Authorization", "Bearer key-0000000000001"),
        ),
        (
            "anthropic_messages",
            "https://api.anthropic.com",
            {"auth_header": "x-api-key", "auth_prefix": ""},
            "https://api.anthropic.com/v1/models",
            ("x-api-key", "key-0000000000001"),
        ),
        (
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            {"auth_header": "x-goog-api-key", "auth_prefix": ""},
            "https://generativelanguage.googleapis.com/v1beta/models",
            ("x-goog-api-key", "key-0000000000001"),
        ),
        (
            "cohere_chat",
            "https://api.cohere.com/v2",
            {},
            "https://api.cohere.com/v1/models",
            ("Authorization", "Bearer key-0000000000001"),
        ),
        ("ollama_chat", "http://localhost:11434", {}, "http://localhost:11434/api/tags", None),
    ],
)
def test_probe_per_wire_api(
    wire_api: str, base_url: str, host: dict[str, Any], url: str, header: tuple[str, str] | None
) -> None:
    probe = probe_for(_deployment(wire_api, base_url, **host))
    assert probe is not None and probe.url == url
    if header:
        assert probe.headers[header[0]] == header[1]
    if wire_api == "anthropic_messages":
        assert probe.headers["anthropic-version"] == "2023-06-01"


def test_azure_probe_lists_models_beside_the_deployments(monkeypatch: pytest.MonkeyPatch) -> None:
    from turnout.deployment import resolve_deployment

    config = Config.model_validate(
        {
            "providers": {
                "azure": {"api_key": GOOD, "settings": {"endpoint": "https://x.openai.azure.com"}}
            }
        }
    )
    probe = probe_for(resolve_deployment("azure:gpt-4o", config, Catalogue.default()))
    assert probe is not None
    assert probe.url == "https://x.openai.azure.com/openai/models?api-version=2024-10-21"
    assert probe.headers["api-key"] == GOOD


async def test_monitor_rechecks_on_a_jittered_interval(
    upstreams: dict[str, Any], isolated_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config.model_validate(
        {
            "providers": {"bad": providers(upstreams)["bad"]},
            "key_health": {"interval": 60, "jitter": 0.2},
        }
    )
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 2:
            raise asyncio.CancelledError

    rand = iter([0.0, 1.0])
    from turnout.http import HttpPool

    http = HttpPool()
    monitor = KeyMonitor(config, Catalogue.default(), http, sleep=sleep, rand=lambda: next(rand))
    assert [s.status for s in monitor.snapshot()] == ["unchecked"]
    before = len(upstreams["calls"])
    caplog.set_level(logging.INFO, logger="turnout.keyhealth")
    try:
        with pytest.raises(asyncio.CancelledError):
            await monitor.run()
    finally:
        await http.aclose()
    assert delays == [pytest.approx(48.0), pytest.approx(72.0)]
    assert len(upstreams["calls"]) - before == 2
    assert monitor.snapshot()[0].status == "invalid"
    assert "provider bad key ...bad9 is invalid" in caplog.text
    assert BAD not in caplog.text


def test_cli_keys_check(
    upstreams: dict[str, Any],
    isolated_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "turnout.yaml"
    chosen = {k: v for k, v in providers(upstreams).items() if k in ("good", "aws", "blaxel")}
    config.write_text(yaml.safe_dump({"providers": chosen}))
    assert main(["-c", str(config), "keys", "check"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["PROVIDER", "HOST", "KEY", "STATUS", "LATENCY", "DETAIL"]
    assert any(line.split()[:4] == ["good", "custom", "...1234", "valid"] for line in lines)
    assert any(
        line.split()[:5] == ["aws", "bedrock", "sigv4", "...0777", "valid"] for line in lines
    )
    config.write_text(yaml.safe_dump({"providers": providers(upstreams)}))
    assert main(["-c", str(config), "keys", "check"]) == 1
    out = capsys.readouterr().out
    assert "invalid" in out and "unreachable" in out and "missing" in out
    for secret in (GOOD, BAD, SECRET, "not-it", BL_KEY):
        assert secret not in out


def test_server_exposes_key_status(upstreams: dict[str, Any], isolated_env: None) -> None:
    chosen = {k: v for k, v in providers(upstreams).items() if k in ("good", "bad", "down")}
    config = Config.model_validate(
        {"providers": chosen, "server": {"master_key": MASTER_KEY, "preload_local": False}}
    )
    server = UvicornThread(create_app(Gateway(config))).start()
    try:
        url = server.url + "/api/models/providers"
        assert httpx.get(url).status_code == 401
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        deadline = time.monotonic() + 10
        while True:  # the first check starts with the server; wait for it to finish
            data = httpx.get(url, headers=auth).json()["data"]
            if all(d["last_checked"] for d in data) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        spec = httpx.get(server.url + "/openapi.json").json()
    finally:
        server.stop()
    from jsonschema import Draft202012Validator

    root = {"$ref": "#/components/schemas/ProviderKeyList", "components": spec["components"]}
    Draft202012Validator(root).validate({"object": "list", "data": data})
    assert "/api/models/providers" in spec["paths"]
    by_name = {d["provider"]: d for d in data}
    assert {n: d["status"] for n, d in by_name.items()} == {
        "good": "valid",
        "bad": "invalid",
        "down": "unreachable",
    }
    assert by_name["good"]["key"] == "...1234"
    assert by_name["good"]["last_checked"].endswith("Z")
    assert by_name["good"]["latency_ms"] >= 0
    assert by_name["down"]["last_error"]
    for secret in (GOOD, BAD):
        assert secret not in repr(data)


def test_key_health_can_be_switched_off(isolated_env: None) -> None:
    config = Config.model_validate({"key_health": {"enabled": False}})
    app = create_app(Gateway(config))
    assert app.state.key_monitor is None
    assert Config().key_health.interval == 300


def test_model_ids_from_every_listing_shape() -> None:
    assert model_ids({"object": "list", "data": [{"id": "gpt-4o"}]}) == ["gpt-4o"]
    assert model_ids({"models": [{"name": "models/gemini-2.0-flash"}]}) == [
        "models/gemini-2.0-flash"
    ]
    assert model_ids({"modelSummaries": [{"modelId": "amazon.nova-lite-v1:0"}]}) == [
        "amazon.nova-lite-v1:0"
    ]
    assert model_ids([{"metadata": {"name": "gpt-4o-mini"}, "spec": {}}]) == ["gpt-4o-mini"]
    assert model_ids({"unexpected": True}) == []


def test_cli_models_provider_asks_the_provider(
    upstreams: dict[str, Any],
    isolated_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "turnout.yaml"
    config.write_text(yaml.safe_dump({"providers": providers(upstreams)}))
    assert main(["-c", str(config), "models", "--provider", "good", "--live"]) == 0
    assert capsys.readouterr().out.split() == ["NAME", "good:a", "good:b"]
    assert main(["-c", str(config), "models", "--provider", "aws", "--live"]) == 0
    assert "aws:anthropic.claude-3-haiku-20240307-v1:0" in capsys.readouterr().out
    assert main(["-c", str(config), "models", "--provider", "bad", "--live"]) == 1
    err = capsys.readouterr().err
    assert "Incorrect API key provided: ...bad9" in err
    assert BAD not in err


async def test_native_hosts_are_checked_against_their_fakes(isolated_env: None) -> None:
    from turnout.deployment import resolve_deployment

    from .fakes.anthropic_upstream import FakeAnthropic
    from .fakes.cohere_upstream import FakeCohere
    from .fakes.gemini_upstream import FakeGemini
    from .fakes.ollama_upstream import FakeOllama

    servers = {
        name: AiohttpThread(make().app).start()
        for name, make in (
            ("gemini", FakeGemini),
            ("cohere", FakeCohere),
            ("ollama", FakeOllama),
            ("anthropic", FakeAnthropic),
        )
    }
    try:
        config = Config.model_validate(
            {
                "providers": {
                    "gemini": {"base_url": servers["gemini"].url + "/v1beta", "api_key": GOOD},
                    "cohere": {"base_url": servers["cohere"].url, "api_key": GOOD},
                    "ollama": {"settings": {"endpoint": servers["ollama"].url}},
                    "anthropic": {"base_url": servers["anthropic"].url + "/v1", "api_key": GOOD},
                }
            }
        )
        statuses = {s.provider: s for s in await check_keys(config)}
        gemini = resolve_deployment("gemini:m", config, Catalogue.default())
        probe = probe_for(gemini)
    finally:
        for server in servers.values():
            server.stop()
    assert {n: (s.status, s.wire_api) for n, s in statuses.items()} == {
        "gemini": ("valid", "gemini"),
        "cohere": ("valid", "cohere_chat"),
        "ollama": ("valid", "ollama_chat"),
        "anthropic": ("valid", "anthropic_messages"),
    }
    assert all(s.detail and re.fullmatch(r"\d+ models?", s.detail) for s in statuses.values())
    assert probe is not None and probe.headers["x-goog-api-key"] == GOOD
