"""The native embed adapters against their fakes: Gemini ``batchEmbedContents``, Cohere v2
``/v2/embed`` and Ollama ``/api/embed``. Request bodies are checked against the vendor specs
in ``../shared/specs`` where one describes them (Gemini, Ollama), the fakes' answers are read
by the vendor's own SDK where it has one here (Cohere, Ollama), and one call goes through the
server with the ``openai`` SDK as the client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai
import pytest

from turnout.adapters.bedrock_embed import embed_bodies
from turnout.adapters.local_embed import LocalEmbedder
from turnout.adapters.native_embeddings import (
    cohere_embed_request,
    gemini_embed_request,
    ollama_embed_request,
)
from turnout.catalogue import Catalogue
from turnout.config import Config
from turnout.deployment import resolve_deployment
from turnout.errors import BadRequestError
from turnout.gateway import Gateway
from turnout.types import EmbeddingRequest

from .fakes.cohere_upstream import FakeCohere
from .fakes.gemini_upstream import FakeGemini
from .fakes.ollama_upstream import FakeOllama
from .fakes.servers import AiohttpThread
from .specs import errors_of

KEY = "sk-native-embed-key-0001"


@pytest.fixture(scope="module")
def fakes() -> Any:
    made = {"gemini": FakeGemini(), "cohere": FakeCohere(), "ollama": FakeOllama()}
    threads = {name: AiohttpThread(f.app).start() for name, f in made.items()}
    yield {name: (made[name], threads[name].url) for name in made}
    for t in threads.values():
        t.stop()


def _config(fakes: Any) -> Config:
    (_, gem), (_, co), (_, oll) = fakes["gemini"], fakes["cohere"], fakes["ollama"]
    return Config.model_validate(
        {
            "providers": {
                "gem": {"host": "gemini", "base_url": gem + "/v1beta", "api_key": KEY},
                "co": {"host": "cohere", "base_url": co, "api_key": KEY},
                "box": {"host": "ollama", "settings": {"endpoint": oll}},
            },
            "models": [
                {"id": "gem:gemini-embedding-001", "input_price": 0.15, "output_price": 0,
                 "capabilities": ["embeddings"]},
                {"id": "co:embed-v4.0", "input_price": 0.12, "output_price": 0,
                 "capabilities": ["embeddings"]},
            ],
            "retry": {"retries": 0},
            "server": {"preload_local": False},
            "database_url": "none",
            "key_health": {"enabled": False},
        }
    )  # fmt: skip


@pytest.fixture
def reset(fakes: Any) -> None:
    for fake, _ in fakes.values():
        fake.reset()


TEXTS = ["The cat sat on the mat.", "Stocks fell."]


async def test_gemini_batch_embed_contents(fakes: Any, reset: None) -> None:
    async with Gateway(_config(fakes)) as gw:
        result = await gw.embed(model="gem:gemini-embedding-001", input=TEXTS, dimensions=12)
    fake = fakes["gemini"][0]
    call = fake.calls[-1]
    assert call["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert call["headers"]["x-goog-api-key"] == KEY
    requests = call["body"]["requests"]
    assert [r["content"]["parts"][0]["text"] for r in requests] == TEXTS
    assert all(r["model"] == "models/gemini-embedding-001" for r in requests)
    assert all(r["outputDimensionality"] == 12 for r in requests)
    # The stored spec's EmbedContentRequest omits "model", which Google's reference for
    # batchEmbedContents requires in each request: checked above, the rest against the spec.
    stripped = {"requests": [{k: v for k, v in r.items() if k != "model"} for r in requests]}
    assert errors_of("gemini-native.openapi.json", "BatchEmbedContentsRequest", stripped) == []
    assert [len(v) for v in result.vectors] == [12, 12]
    # No token count from Gemini: estimated at four characters a token.
    assert result.usage.prompt_tokens == len(TEXTS[0]) // 4 + len(TEXTS[1]) // 4
    assert result.cost == pytest.approx(result.usage.prompt_tokens * 0.15 / 1e6)


async def test_cohere_v2_embed(fakes: Any, reset: None) -> None:
    async with Gateway(_config(fakes)) as gw:
        result = await gw.embed(
            {"model": "co:embed-v4.0", "input": TEXTS, "input_type": "search_query"}
        )
    call = fakes["cohere"][0].calls[-1]
    assert call["path"] == "/v2/embed"
    assert call["headers"]["Authorization"] == f"Bearer {KEY}"
    assert call["body"] == {
        "model": "embed-v4.0",
        "texts": TEXTS,
        "input_type": "search_query",
        "embedding_types": ["float"],
    }
    assert len(result.vectors) == 2 and result.usage.prompt_tokens == 5 + 3
    assert result.cost == pytest.approx(8 * 0.12 / 1e6)


def test_cohere_sdk_reads_the_fakes_embed_answer(fakes: Any, reset: None) -> None:
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key=KEY, base_url=fakes["cohere"][1])
    try:
        out = client.embed(
            model="embed-v4.0", texts=TEXTS, input_type="search_document", embedding_types=["float"]
        )
    finally:
        client._client_wrapper.httpx_client.httpx_client.close()
    assert len(out.embeddings.float_) == 2 and out.meta.billed_units.input_tokens == 8


async def test_ollama_api_embed(fakes: Any, reset: None) -> None:
    async with Gateway(_config(fakes)) as gw:
        result = await gw.embed(model="box:nomic-embed-text", input=TEXTS[0], dimensions=4)
    call = fakes["ollama"][0].calls[-1]
    assert call["path"] == "/api/embed"
    assert call["body"] == {"model": "nomic-embed-text", "input": [TEXTS[0]], "dimensions": 4}
    assert errors_of("ollama-openapi.yaml", "EmbedRequest", call["body"]) == []
    assert result.vectors and len(result.vectors[0]) == 4
    assert result.usage.prompt_tokens == len(TEXTS[0]) // 4
    assert result.cost is None  # not in the catalogue: price unknown, never guessed


def test_ollama_sdk_reads_the_fakes_embed_answer(fakes: Any, reset: None) -> None:
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=fakes["ollama"][1])
    try:
        out = client.embed(model="nomic-embed-text", input=TEXTS)
    finally:
        client.close()
    assert len(out.embeddings) == 2 and out.prompt_eval_count == 5 + 3


async def test_token_arrays_and_upstream_errors(fakes: Any, reset: None) -> None:
    from .fakes.script import Fail

    async with Gateway(_config(fakes)) as gw:
        with pytest.raises(BadRequestError, match="token arrays"):
            await gw.embed(model="co:embed-v4.0", input=[[1, 2, 3]])
        fakes["cohere"][0].then(Fail(400, "invalid input_type"))
        with pytest.raises(BadRequestError, match="invalid input_type"):
            await gw.embed(model="co:embed-v4.0", input="x")


def _local_embed(request: EmbeddingRequest, d: Any) -> Any:
    embedder = LocalEmbedder()
    try:
        return asyncio.run(embedder.embed(request, d))
    finally:
        embedder.close()


@pytest.mark.parametrize(
    ("model", "build"),
    [
        ("gem:gemini-embedding-001", gemini_embed_request),
        ("co:embed-v4.0", cohere_embed_request),
        ("box:nomic-embed-text", ollama_embed_request),
        ("bedrock:amazon.titan-embed-text-v2:0", embed_bodies),
        ("bedrock:cohere.embed-english-v3", embed_bodies),
        ("local:all-minilm-l6-v2", _local_embed),
    ],
)
def test_every_text_only_embedder_refuses_token_arrays_alike(
    model: str, build: Callable[[EmbeddingRequest, Any], Any]
) -> None:
    """Token ids are one tokenizer's own: every embedder but OpenAI's wire refuses them with
    the same 400, before any call (the embedded model is not even loaded)."""
    config = Config.model_validate(
        {
            "providers": {
                "gem": {"host": "gemini", "api_key": KEY},
                "co": {"host": "cohere", "api_key": KEY},
                "box": {"host": "ollama"},
                "bedrock": {
                    "settings": {"access_key_id": "AKIDTEST0001", "secret_access_key": "s"}
                },
            }
        }
    )
    d = resolve_deployment(model, config, Catalogue.default(), None)
    with pytest.raises(BadRequestError) as raised:
        build(EmbeddingRequest(model=model, input=[[1, 2, 3]]), d)
    assert raised.value.message == (
        f"'{model}' takes text input, not token arrays (token ids are a tokenizer's own)"
    )
    assert raised.value.param == "input"


def test_through_the_server_with_the_openai_sdk(fakes: Any, reset: None, serve: Any) -> None:
    url = serve(_config(fakes))
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    for model in ("gem:gemini-embedding-001", "co:embed-v4.0", "box:nomic-embed-text"):
        floats = sdk.embeddings.create(model=model, input=TEXTS, encoding_format="float")
        packed = sdk.embeddings.create(model=model, input=TEXTS)
        assert [len(d.embedding) for d in floats.data] == [8, 8], model
        for a, b in zip(floats.data, packed.data, strict=True):
            assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding, strict=True)) < 1e-6
