"""The configuration examples in docs/providers-native.md work: they load, and the example
route fails over across the three native adapters (pointed at the fake upstreams)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from turnout.catalogue import Catalogue
from turnout.config import Config, load_config
from turnout.deployment import resolve_deployment
from turnout.gateway import Gateway
from turnout.types import TextDelta

from .fakes.cohere_upstream import FakeCohere
from .fakes.gemini_upstream import FakeGemini
from .fakes.ollama_upstream import FakeOllama
from .fakes.script import Fail, Reply
from .fakes.servers import AiohttpThread

DOC = Path(__file__).resolve().parents[1] / "docs" / "providers-native.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-doc-example-key-0001")
    monkeypatch.setenv("CO_API_KEY", "co-doc-example-key-0002")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml_blocks()[0], encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeGemini, FakeCohere, FakeOllama, list[str]]]:
    servers = (FakeGemini(), FakeCohere(), FakeOllama())
    threads = [AiohttpThread(f.app).start() for f in servers]
    yield (*servers, [t.url for t in threads])
    for t in threads:
        t.stop()


async def test_example_route_fails_over_across_the_native_adapters(
    example: Config, fakes: tuple[FakeGemini, FakeCohere, FakeOllama, list[str]]
) -> None:
    gemini, cohere, ollama, (g_url, c_url, o_url) = fakes
    for fake in (gemini, cohere, ollama):
        fake.reset()
    example.providers["gemini"].base_url = g_url + "/v1beta"
    example.providers["cohere"].base_url = c_url
    example.providers["ollama"].settings["endpoint"] = o_url
    example.retry.retries = 0
    gemini.then(Fail(503, "overloaded"), Fail(503, "overloaded"))
    cohere.then(Fail(500, "oops"), Fail(500, "oops"))
    ollama.then(Reply(text="hi from ollama"), Reply(text="streamed hi"))

    gateway = Gateway(example)
    try:
        result = await gateway.chat(model="smart", messages=[{"role": "user", "content": "Say hi"}])
        assert (result.text, result.deployment, result.attempts) == (
            "hi from ollama",
            "ollama:llama3.2:3b",
            3,
        )
        stream = await gateway.stream(
            model="smart", messages=[{"role": "user", "content": "Say hi"}]
        )
        text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
        assert text == "streamed hi" and stream.deployment == "ollama:llama3.2:3b"
    finally:
        await gateway.aclose()
    assert gemini.calls[0]["headers"]["x-goog-api-key"] == "AIza-doc-example-key-0001"
    assert cohere.calls[0]["headers"]["Authorization"] == "Bearer co-doc-example-key-0002"
    sent = ollama.calls[0]["body"]
    assert (sent["keep_alive"], sent["options"]) == ("30m", {"num_ctx": 8192})


def test_ollama_openai_example(tmp_path: Path) -> None:
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml_blocks()[1], encoding="utf-8")
    config = load_config(path)
    d = resolve_deployment("ollama-v1:llama3.2:3b", config, Catalogue.default())
    assert (d.host.wire_api, d.base_url + d.host.path) == (
        "openai_chat",
        "http://gpu-box:11434/v1/chat/completions",
    )
    direct = resolve_deployment("ollama_openai:llama3.2:3b", Config(), Catalogue.default())
    assert direct.host.name == "ollama_openai"
