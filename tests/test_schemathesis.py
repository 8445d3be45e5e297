"""Schemathesis against a real gateway on loopback (uvicorn, a fake OpenAI upstream behind it):
the chat endpoint against the vendor's conformance spec (``../shared/specs``), and every
operation of the gateway's own ``/openapi.json``, statelessly and as a state machine that
creates, reads, changes and revokes gateway keys. All of schemathesis' checks are on: no 5xx,
errors in the route's own shape, only documented status codes, responses that match the schema.

Deterministic (the hypothesis profile in conftest.py: derandomized, no example database) and
bounded (a few dozen examples an operation), so the suite stays fast and CI cannot flake.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import GenerationMode

from turnout.server.openapi import openapi_spec

from .conftest import MASTER_KEY, UPSTREAM_KEY
from .fakes.servers import free_port, stop_process, wait_ready
from .shared import spec_path

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.fixture(scope="module")
def gateway(fake_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``turnout serve`` process with a master key, the request log in SQLite (for the admin
    API) and one route, ``chain``, on the fake upstream (which answers every call).

    A process, not a thread of this one: hypothesis describes its strategies by walking
    ``sys.modules``, which a server thread importing lazily would change under it."""
    fake, upstream = fake_server
    fake.reset()  # whatever an earlier test left scripted: every call gets a reply
    folder = tmp_path_factory.mktemp("schemathesis")
    provider = {"host": "custom", "base_url": upstream.url + "/v1", "api_key": UPSTREAM_KEY}
    config = {
        "server": {"master_key": MASTER_KEY, "preload_local": False},
        "providers": {"primary": provider, "backup": provider},
        "routes": [{"name": "chain", "deployments": ["primary:model-a", "backup:model-b"]}],
        "database_url": f"sqlite:///{folder / 'turnout.db'}",
        "key_health": {"enabled": False},
        "timeouts": {"connect": 10, "first_token": 60, "total": 60},  # no 504 from a busy machine
    }
    (folder / "turnout.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    with open(folder / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "turnout.cli", "-c", str(folder / "turnout.yaml"), "serve"]
            + ["--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TURNOUT_LOG_LEVEL": "warning"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # Ready: listening, and the start-up migration done; generous, start-up is slow on a
        # loaded machine.
        wait_ready(url, proc, folder / "serve.log", wait=90)
        for stream in (False, True):  # the fake's first answers import what they need now
            body = {"model": "chain", "messages": [{"role": "user", "content": "hi"}]}
            reply = httpx.post(
                url + "/v1/chat/completions", json={**body, "stream": stream}, headers=AUTH
            )
            assert reply.status_code == 200, reply.text
        yield url
    finally:
        stop_process(proc)


def run_case(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers=AUTH, timeout=30)


# --- the chat endpoint against the vendor's spec -------------------------------------------


def strict_config(schema: Any) -> Any:
    """All checks on. Schema-valid data may still get a 400: a spec describes shapes, not
    every rule a server applies (an empty model name, a model name's characters); such a 400
    must still be in the documented error shape, which response_schema_conformance checks."""
    accepted = schema.config.checks.positive_data_acceptance.expected_statuses
    schema.config.checks.positive_data_acceptance.expected_statuses = [*accepted, "400"]
    return schema


@pytest.fixture(scope="module")
def chat_operation() -> Any:
    schema = schemathesis.openapi.from_path(spec_path("openai-chat-conformance.yaml"))
    return strict_config(schema).find_operation_by_id("createChatCompletion")


@pytest.mark.parametrize("mode", MODES, ids=str)
@settings(max_examples=25)
@given(data=st.data())
def test_chat_endpoint_conforms_to_the_openai_spec(
    data: st.DataObject, mode: GenerationMode, chat_operation: Any, gateway: str
) -> None:
    case = data.draw(chat_operation.as_strategy(generation_mode=mode))
    if mode is GenerationMode.POSITIVE and isinstance(case.body, dict) and data.draw(st.booleans()):
        case.body["model"] = "chain"  # a route that answers, so 200s are checked too
    run_case(case, gateway + "/v1")


# --- the gateway's own description ---------------------------------------------------------


CONSOLE = {"/", "/api/console/session"}
"""The web console's page (503 until ``make console`` builds it) and its browser session
(cookie-based): a browser's, tested in the console's own tests."""


def _operations() -> list[Any]:
    """Each operation, positive, and negative where it takes a body."""
    out = []
    paths = openapi_spec()["paths"]
    for path, item in paths.items():
        for method, op in item.items():
            if method not in ("get", "post", "patch", "delete", "put"):
                continue
            if path in CONSOLE:
                continue
            # Negative cases only in bodies: a query parameter made an object or an array
            # is sent form-style (its own keys, or the name repeated), which reads as the
            # parameter absent or given: valid input, and a false alarm.
            for mode in MODES if "requestBody" in op else MODES[:1]:
                out.append(pytest.param(path, method, mode, id=f"{method} {path} {mode}"))
    return out


@pytest.fixture(scope="module")
def own_schema(gateway: str) -> Any:
    """The gateway's /openapi.json as the running server serves it."""
    schema = strict_config(schemathesis.openapi.from_url(gateway + "/openapi.json"))
    schema.config.update(base_url=gateway, headers=AUTH)
    return schema


@pytest.mark.parametrize(("path", "method", "mode"), _operations())
@settings(max_examples=15)
@given(data=st.data())
def test_every_operation_conforms_to_the_gateway_description(
    data: st.DataObject, path: str, method: str, mode: GenerationMode, own_schema: Any, gateway: str
) -> None:
    case = data.draw(own_schema[path][method.upper()].as_strategy(generation_mode=mode))
    run_case(case, gateway)


def test_key_lifecycle_as_a_state_machine(own_schema: Any, gateway: str) -> None:
    """Create, read, change and revoke gateway keys in generated sequences, following the
    description's links from POST /api/keys to the key's own operations."""
    from schemathesis.specs.openapi.checks import negative_data_rejection, use_after_free

    # Only the key operations: with every operation of the description in the machine, the
    # (derandomized) draws spent their steps elsewhere and never reached DELETE.
    key_schema = own_schema.include(path_regex=r"^/api/keys")

    class Keys(key_schema.as_state_machine()):  # type: ignore[misc]
        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            # Every check but two. DELETE /api/keys/{id} revokes, and a revoked key stays
            # readable (revoked: true, revoked_at) for audit, as docs/accounting.md shows.
            # The machine's negative cases land in query parameters, where they are a false
            # alarm (see _operations); the stateless tests cover negative bodies.
            case.validate_response(
                response,
                excluded_checks=[use_after_free, negative_data_rejection],
                headers=kwargs.get("headers"),
                transport_kwargs=kwargs,
                recorder=self.recorder,
            )

    def keys() -> list[dict[str, Any]]:
        listed = httpx.get(gateway + "/api/keys", headers=AUTH, timeout=30).json()
        return listed["data"]  # type: ignore[no-any-return]

    before = keys()
    run_state_machine_as_test(
        Keys, settings=settings(max_examples=10, stateful_step_count=6, deadline=None)
    )
    made = [k for k in keys() if k["id"] not in {b["id"] for b in before}]
    assert made and any(k["revoked"] for k in made)  # the links were followed to DELETE
