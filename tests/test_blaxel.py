"""Blaxel: the control-API client (bare and paged listings, auth headers, errors), the sandbox
403 explained, and ``turnout models --provider blaxel``, all against a fake Blaxel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from turnout import errors
from turnout.blaxel import BlaxelClient
from turnout.cli import main
from turnout.config import Config
from turnout.gateway import Gateway

from .fakes.blaxel_upstream import FakeBlaxel
from .fakes.servers import AiohttpThread, free_port

KEY = "bl-apikey-0000000000000000cafe"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeBlaxel, AiohttpThread]]:
    fake = FakeBlaxel(KEY)
    thread = AiohttpThread(fake.app).start()
    yield fake, thread
    thread.stop()


def provider(url: str, key: str = KEY) -> dict[str, object]:
    return {
        "api_key": key,
        "settings": {"workspace": "acme", "run_url": url, "control_url": url + "/v0"},
    }


async def test_lists_models_agents_workspaces(server: tuple[FakeBlaxel, AiohttpThread]) -> None:
    fake, thread = server
    client = BlaxelClient(KEY, "acme", base_url=thread.url + "/v0")
    try:
        models = await client.models()
        agents = await client.agents()
        workspaces = await client.workspaces()
    finally:
        await client.aclose()
    assert [(m.name, m.sandbox, m.type, m.upstream) for m in models] == [
        ("gpt-4o-mini", False, "openai", "gpt-4o-mini"),
        ("sandbox-openai", True, "openai", "gpt-4o-mini"),
        ("claude-haiku", False, "anthropic", "claude-3-5-haiku"),
    ]
    assert [a["metadata"]["name"] for a in agents] == ["agent-0", "agent-1", "agent-2"]
    assert [c["query"].get("cursor") for c in fake.calls if c["path"] == "/v0/agents"][-2:] == [
        None,
        "2",
    ]
    assert workspaces[0]["name"] == "acme"
    headers = fake.calls[-1]["headers"]
    assert headers["X-Blaxel-Authorization"] == f"Bearer {KEY}"
    assert headers["X-Blaxel-Workspace"] == "acme"


async def test_control_api_errors_never_show_the_key(
    server: tuple[FakeBlaxel, AiohttpThread],
) -> None:
    wrong = "bl-wrongkey-000000000000000dead"
    client = BlaxelClient(wrong, "acme", base_url=server[1].url + "/v0")
    try:
        with pytest.raises(errors.AuthenticationError) as info:
            await client.models()
    finally:
        await client.aclose()
    assert "Invalid or expired token" in str(info.value)
    assert "BL_API_KEY" in str(info.value)
    assert wrong not in str(info.value)
    down = BlaxelClient(KEY, "acme", base_url=f"http://127.0.0.1:{free_port()}/v0")
    try:
        with pytest.raises(errors.UpstreamConnectionError):
            await down.workspaces()
    finally:
        await down.aclose()


@pytest.mark.parametrize("json_body", [True, False])
async def test_sandbox_model_403_says_what_to_do(
    server: tuple[FakeBlaxel, AiohttpThread], json_body: bool
) -> None:
    fake, thread = server
    fake.sandbox_body_json = json_body
    gateway = Gateway(
        Config.model_validate(
            {"providers": {"blaxel": provider(thread.url)}, "retry": {"retries": 0}}
        )
    )
    try:
        ok = await gateway.chat(
            model="blaxel:gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert ok.text == "Hi from Blaxel."
        with pytest.raises(errors.PermissionDeniedError) as info:
            await gateway.chat(
                model="blaxel:sandbox-openai", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        await gateway.aclose()
        fake.sandbox_body_json = True
    err = info.value
    assert err.code == "blaxel_sandbox_model"
    assert "sandbox model" in err.message
    assert "Endpoint not allowed on sandbox model" in err.message
    assert "turnout models --provider blaxel --live" in err.message
    assert "workspace 'acme'" in err.message


def test_cli_models_provider_blaxel(
    server: tuple[FakeBlaxel, AiohttpThread], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "turnout.yaml"
    config.write_text(yaml.safe_dump({"providers": {"blaxel": provider(server[1].url)}}))
    assert main(["-c", str(config), "models", "--provider", "blaxel", "--live"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "SERVES", "SANDBOX", "ENABLED", "STATUS"]
    assert any(line.startswith("blaxel:gpt-4o-mini ") and " no " in line for line in lines)
    assert any("blaxel:sandbox-openai" in line and "not callable" in line for line in lines)
    assert KEY not in out


def test_cli_models_provider_blaxel_bad_key(
    server: tuple[FakeBlaxel, AiohttpThread], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "turnout.yaml"
    bad = "bl-badkey-00000000000000001111"
    config.write_text(yaml.safe_dump({"providers": {"blaxel": provider(server[1].url, bad)}}))
    assert main(["-c", str(config), "models", "--provider", "blaxel", "--live"]) == 1
    err = capsys.readouterr().err
    assert "Invalid or expired token" in err
    assert bad not in err


def test_cli_models_live_follows_the_host_rows_live_listing(
    server: tuple[FakeBlaxel, AiohttpThread],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command knows no host: a row's ``live_listing`` picks the reader. Another host
    whose row names ``blaxel_control`` gets the control API's table; the ``blaxel`` row
    without it gets the names of its model listing."""
    from dataclasses import replace

    from turnout.hosts import HOSTS
    from turnout.keyhealth import LIVE_LISTINGS

    for host in HOSTS.values():  # every reader a row names exists
        if host.live_listing is not None:
            module, name = LIVE_LISTINGS[host.live_listing]
            assert callable(getattr(__import__(module, fromlist=[name]), name))
    blaxel = HOSTS["blaxel"]
    monkeypatch.setitem(HOSTS, "mirror", replace(blaxel, name="mirror"))  # type: ignore[index]
    config = tmp_path / "turnout.yaml"
    config.write_text(
        yaml.safe_dump({"providers": {"acme": {**provider(server[1].url), "host": "mirror"}}})
    )
    assert main(["-c", str(config), "models", "--provider", "acme", "--live"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "SERVES", "SANDBOX", "ENABLED", "STATUS"]
    assert any("acme:sandbox-openai" in line and "not callable" in line for line in lines)

    monkeypatch.setitem(HOSTS, "blaxel", replace(blaxel, live_listing=None))  # type: ignore[index]
    config.write_text(yaml.safe_dump({"providers": {"blaxel": provider(server[1].url)}}))
    assert main(["-c", str(config), "models", "--provider", "blaxel", "--live"]) == 0
    assert capsys.readouterr().out.split() == [
        "NAME",
        "blaxel:gpt-4o-mini",
        "blaxel:sandbox-openai",
        "blaxel:claude-haiku",
    ]
