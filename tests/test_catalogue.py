"""The curated catalogue, config overrides, queries and pricing (pure: no sockets)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from turnout.catalogue import LOCAL_MODEL_ID, Catalogue, ModelEntry, builtin_entries
from turnout.config import ModelConfig, load_config
from turnout.errors import ConfigError
from turnout.types import Usage

REQUIRED_PROVIDERS = {
    "openai", "anthropic", "gemini", "mistral", "cohere", "bedrock", "groq", "together",
    "fireworks", "sambanova", "deepseek", "local",
}  # fmt: skip


def test_every_entry_names_its_price_source_and_date() -> None:
    entries = builtin_entries()
    assert len(entries) >= 2 * (len(REQUIRED_PROVIDERS) - 1)
    for e in entries:
        assert e.price_source and e.price_source.startswith("https://"), e.id
        assert isinstance(e.price_date, dt.date), e.id
        assert e.price_verified is not None, e.id
        if e.price_verified is False:
            assert e.price_note, f"{e.id}: an unconfirmed price must say what is uncertain"
        assert e.input_price is not None and e.output_price is not None, e.id
        assert e.context_window, e.id
        # A chat model streams; an embedding model has nothing to stream and no output.
        if "embeddings" in e.capabilities:
            assert e.capabilities == {"embeddings"} and e.output_price == 0, e.id
        else:
            assert "streaming" in e.capabilities, e.id
        if e.quality is not None:
            assert 0 <= e.quality <= 1 and e.quality_source, e.id


def test_every_required_provider_has_models_and_ids_are_unique() -> None:
    entries = builtin_entries()
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids))
    by_provider: dict[str, int] = {}
    for e in entries:
        by_provider[e.provider] = by_provider.get(e.provider, 0) + 1
        assert e.id == f"{e.provider}:{e.upstream}"
    assert set(by_provider) >= REQUIRED_PROVIDERS
    for p in REQUIRED_PROVIDERS - {"local"}:
        assert by_provider[p] >= 2, p  # a flagship (or large) and a small model each


def test_embedded_model_is_free() -> None:
    local = Catalogue.default().get("smollm2")
    assert local is not None and local.id == LOCAL_MODEL_ID
    assert local.cost(Usage(prompt_tokens=10_000, completion_tokens=5_000)) == 0.0


def test_catalogue_is_not_read_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, turnout, turnout.catalogue, turnout.gateway;"
        "print(turnout.catalogue.builtin_entries.cache_info().currsize, 'yaml' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["0", "False"], out.stderr


def test_cost_prices_cached_tokens_at_the_cached_rate() -> None:
    entry = ModelEntry("x:y", "x", "y", input_price=2.0, output_price=8.0, cached_input_price=0.5)
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400)
    assert entry.cost(usage) == pytest.approx((600 * 2 + 400 * 0.5 + 500 * 8) / 1e6)
    # Without a cached price, cached tokens are ordinary input (never an under-estimate).
    plain = ModelEntry("x:y", "x", "y", input_price=2.0, output_price=8.0)
    assert plain.cost(usage) == pytest.approx((1000 * 2 + 500 * 8) / 1e6)
    # Unknown prices: unknown cost, not zero.
    assert ModelEntry("x:y", "x", "y").cost(usage) is None
    # Cached tokens can never exceed the prompt.
    weird = Usage(prompt_tokens=10, completion_tokens=0, cached_tokens=50)
    assert entry.cost(weird) == pytest.approx(10 * 0.5 / 1e6)


def test_real_catalogue_prices_a_cached_request() -> None:
    mini = Catalogue.default().get("openai:gpt-5-mini")
    assert mini is not None
    usage = Usage(prompt_tokens=2_000_000, completion_tokens=1_000_000, cached_tokens=1_000_000)
    assert mini.cost(usage) == pytest.approx(0.25 + 0.025 + 2.00)


def test_config_overrides_only_the_fields_it_sets(tmp_path: Path) -> None:
    path = tmp_path / "turnout.yaml"
    path.write_text(
        "models:\n"
        "  - id: openai:gpt-5-mini\n"
        "    input_price: 0.2\n"
        "    quality: 0.8\n"
        "    quality_source: our eval, 2026-11\n"
        "  - id: acme:big\n"
        "    context_window: 32000\n"
        "    input_price: 1\n"
        "    output_price: 3\n"
        "    capabilities: [tools, streaming]\n"
        "    tags: [inhouse]\n"
        "    aliases: [acme-big]\n"
    )
    catalogue = Catalogue.default(load_config(path).models)
    mini = catalogue.get("gpt-5-mini")
    assert mini is not None
    assert mini.input_price == 0.2 and mini.quality == 0.8
    assert mini.output_price == 2.0 and mini.cached_input_price == 0.025  # kept
    assert mini.context_window == 400_000 and "vision" in mini.capabilities
    acme = catalogue.get("acme-big")
    assert acme is not None and acme.id == "acme:big" and acme.provider == "acme"
    assert acme.tags == frozenset({"inhouse"}) and acme.capabilities == {"tools", "streaming"}
    assert acme.price_source is None  # user entries need not cite a source
    # The built-in table itself is never modified.
    assert next(e for e in builtin_entries() if e.id == "openai:gpt-5-mini").input_price == 0.25


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n  - {id: 'a:b', quality: 1.5}\n", "models[0].quality"),
        ("models:\n  - {id: 'a:b', capabilities: [telepathy]}\n", "models[0].capabilities"),
        ("models:\n  - {id: 'a:b', price_date: someday}\n", "models[0].price_date"),
        ("models:\n  - {id: 'a:b', input_price: -1}\n", "models[0].input_price"),
    ],
)
def test_bad_model_entries_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "turnout.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value) and str(path) in str(info.value)


def test_query_filters() -> None:
    c = Catalogue.default([ModelConfig(id="acme:mystery")])  # no price, no context
    ids = lambda entries: {e.id for e in entries}  # noqa: E731

    vision = ids(c.query(capabilities=["vision"]))
    assert "openai:gpt-5-mini" in vision and LOCAL_MODEL_ID not in vision
    assert all("vision" in c.get(i).capabilities for i in vision)  # type: ignore[union-attr]

    both = ids(c.query(capabilities=["tools", "reasoning"], provider="anthropic"))
    assert both and all(i.startswith("anthropic:") for i in both)
    assert "anthropic:claude-haiku-4-5" not in both  # no reasoning tag in the data

    cheap = c.query(max_input_price=0.1, max_output_price=0.5)
    assert cheap and all(e.input_price <= 0.1 and e.output_price <= 0.5 for e in cheap)  # type: ignore[operator]
    assert "acme:mystery" not in ids(cheap)  # unknown price never passes a cap

    long = c.query(min_context=1_000_000)
    assert long and all(e.context_window >= 1_000_000 for e in long)  # type: ignore[operator]
    assert "acme:mystery" not in ids(long)

    assert ids(c.query(tags=["local"])) == {LOCAL_MODEL_ID, "local:all-minilm-l6-v2"}
    embedders = ids(c.query(capabilities=["embeddings"]))
    assert {"local:all-minilm-l6-v2", "openai:text-embedding-3-small"} <= embedders
    assert LOCAL_MODEL_ID not in embedders
    assert c.query(tags=["small"], provider="nobody") == []
    assert len(c.query()) == len(c)
