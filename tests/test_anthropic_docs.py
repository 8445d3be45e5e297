"""The configuration shown in docs/anthropic.md is valid and does what the page says."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from turnout.adapters.anthropic_messages import to_request
from turnout.catalogue import Catalogue
from turnout.config import load_config
from turnout.deployment import resolve_deployment
from turnout.types import ChatRequest

DOC = Path(__file__).resolve().parents[1] / "docs" / "anthropic.md"


def test_the_documented_config_loads_and_shapes_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1
    path = tmp_path / "turnout.yaml"
    path.write_text(blocks[0], encoding="utf-8")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-doc-example-1234")
    config = load_config(str(path))
    assert [d.model for d in config.routes[0].deployments][0] == "anthropic:claude-sonnet-4-6"
    d = resolve_deployment("anthropic:claude-sonnet-4-6", config, Catalogue.default(config.models))
    request = ChatRequest(model="smart", messages=[{"role": "user", "content": "hi"}])
    url, headers, raw = to_request(request, d, stream=False)
    assert url == "https://api.anthropic.com/v1/messages"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert headers["x-api-key"] == "sk-ant-doc-example-1234"
    assert orjson.loads(raw)["max_tokens"] == 8192
