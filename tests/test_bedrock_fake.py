"""The fake Bedrock is faithful: the official boto3 ``bedrock-runtime`` client (and ``bedrock``
for the control plane) parses everything it sends, in both modes and for every error; what
boto3 sends passes the fake's service-model validation; and the fake checks SigV4 as AWS does."""

from __future__ import annotations

import gc
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import trustme
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, EventStreamError

from .fakes.bedrock_upstream import FakeBedrock, fake_count
from .fakes.script import Fail, Reply, StreamError
from .fakes.servers import AiohttpThread, fake_fixtures

AKID, SECRET = "AKIDFAKEBEDROCK0001", "fake/secret+key"
HI = [{"role": "user", "content": [{"text": "hi"}]}]


server, fake, _url = fake_fixtures(lambda: FakeBedrock(credentials={AKID: SECRET}))


@pytest.fixture
def client() -> Iterator[Any]:
    """Makes boto3 clients, and closes them after the test so no socket outlives it."""
    made: list[Any] = []

    def make(url: str, service: str = "bedrock-runtime", **kw: Any) -> Any:
        kw.setdefault("aws_access_key_id", AKID)
        kw.setdefault("aws_secret_access_key", SECRET)
        made.append(
            boto3.client(
                service,
                endpoint_url=url,
                region_name="us-east-1",
                config=BotoConfig(retries={"total_max_attempts": 1}),
                **kw,
            )
        )
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def runtime(server: tuple[FakeBedrock, AiohttpThread], client: Any) -> Any:
    return client(server[1].url)


def test_boto3_parses_converse_and_its_request_is_valid(fake: FakeBedrock, runtime: Any) -> None:
    fake.then(Reply(text="Bonjour.", prompt_tokens=12, completion_tokens=2, cached_tokens=5))
    out = runtime.converse(
        modelId="anthropic.claude-3-haiku-20240307-v1:0",
        messages=HI,
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 10, "temperature": 0.5},
        toolConfig={
            "tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}],
            "toolChoice": {"auto": {}},
        },
    )
    assert out["output"]["message"]["content"] == [{"text": "Bonjour."}]
    assert out["stopReason"] == "end_turn"
    assert out["usage"] == {
        "inputTokens": 7,
        "outputTokens": 2,
        "totalTokens": 14,
        "cacheReadInputTokens": 5,
        "cacheWriteInputTokens": 0,
    }
    call = fake.calls[-1]
    assert call["raw_path"] == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert call["model"] == "anthropic.claude-3-haiku-20240307-v1:0"
    assert call["body"]["system"] == [{"text": "Be brief."}]


def test_boto3_parses_a_tool_use(fake: FakeBedrock, runtime: Any) -> None:
    fake.then(Reply(tool_call=("lookup", '{"city": "Paris"}')))
    out = runtime.converse(modelId="m", messages=HI)
    assert out["output"]["message"]["content"][0]["toolUse"] == {
        "toolUseId": "tooluse_fake_1",
        "name": "lookup",
        "input": {"city": "Paris"},
    }
    assert out["stopReason"] == "tool_use"


@pytest.mark.parametrize(
    "reply",
    [Reply(), Reply(split=True), Reply(tool_call=("lookup", '{"city": "Paris"}'), cached_tokens=3)],
)
def test_boto3_parses_converse_stream(fake: FakeBedrock, runtime: Any, reply: Reply) -> None:
    fake.then(reply)
    stream = runtime.converse_stream(modelId="m", messages=HI)["stream"]
    try:
        events = list(stream)
    finally:
        stream.close()
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart"
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    if reply.tool_call:
        start = events[1]["contentBlockStart"]["start"]["toolUse"]
        assert start == {"toolUseId": "tooluse_fake_1", "name": "lookup"}
        assert "".join(d["toolUse"]["input"] for d in deltas) == reply.tool_call[1]
    else:
        assert "".join(d["text"] for d in deltas) == reply.text
    usage = events[-1]["metadata"]["usage"]
    assert usage["inputTokens"] + usage.get("cacheReadInputTokens", 0) == reply.prompt_tokens


def test_boto3_sees_the_in_stream_exception(fake: FakeBedrock, runtime: Any) -> None:
    fake.then(StreamError(after=2, message="the model fell over"))
    stream = runtime.converse_stream(modelId="m", messages=HI)["stream"]
    seen = []
    try:
        with pytest.raises(EventStreamError) as info:
            for event in stream:
                seen.append(event)
    finally:
        stream.close()  # the connection is still checked out of boto3's pool
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert "the model fell over" in str(info.value)
    assert len([e for e in seen if "contentBlockDelta" in e]) == 2


@pytest.mark.parametrize(
    ("step", "code", "status"),
    [
        (Fail(400, "bad input"), "ValidationException", 400),
        (Fail(401, "who are you"), "UnrecognizedClientException", 403),
        (Fail(403, "not yours"), "AccessDeniedException", 403),
        (Fail(404, "no such model"), "ResourceNotFoundException", 404),
        (Fail(408, "model too slow"), "ModelTimeoutException", 408),
        (Fail(429, "slow down"), "ThrottlingException", 429),
        (Fail(429, "warming", code="ModelNotReadyException"), "ModelNotReadyException", 429),
        (Fail(500, "oops"), "InternalServerException", 500),
        (Fail(503, "busy"), "ServiceUnavailableException", 503),
    ],
)
def test_boto3_reads_every_error(
    fake: FakeBedrock, runtime: Any, step: Fail, code: str, status: int
) -> None:
    fake.then(step)
    with pytest.raises(ClientError) as info:
        runtime.converse(modelId="m", messages=HI)
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["Error"]["Message"] == step.message
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_the_fake_refuses_what_bedrock_refuses(fake: FakeBedrock, runtime: Any) -> None:
    # botocore does not check maximums client-side; the service model says temperature <= 1
    with pytest.raises(ClientError) as info:
        runtime.converse(modelId="m", messages=HI, inferenceConfig={"temperature": 1.5})
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "temperature" in info.value.response["Error"]["Message"]


def test_the_fake_recomputes_sigv4(server: tuple[FakeBedrock, AiohttpThread], client: Any) -> None:
    url = server[1].url
    with pytest.raises(ClientError) as info:
        client(url, aws_secret_access_key="wrong").converse(modelId="m", messages=HI)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as info:
        client(url, aws_access_key_id="AKIDUNKNOWN00000").converse(modelId="m", messages=HI)
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    temporary = client(url, aws_session_token="session-token-1")
    assert temporary.converse(modelId="m", messages=HI)["stopReason"] == "end_turn"


def test_the_fake_checks_the_authorization_shape(server: tuple[FakeBedrock, AiohttpThread]) -> None:
    url = server[1].url + "/model/m/converse"
    body = {"messages": HI}
    for auth, code in [
        (None, "MissingAuthenticationTokenException"),
        ("AWS4-HMAC-SHA256 Credential=AKID/20260101", "IncompleteSignatureException"),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDFAKEBEDROCK0001/20260101/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
            "InvalidSignatureException",
        ),
    ]:
        headers = {"X-Amz-Date": "20260101T000000Z"}
        if auth:
            headers["Authorization"] = auth
        resp = httpx.post(url, json=body, headers=headers)
        assert resp.status_code == 403
        assert resp.headers["x-amzn-ErrorType"].startswith(code)


def test_boto3_with_a_bedrock_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore sends a Bearer token only over HTTPS: serve the fake with a test CA's cert.
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    fake = FakeBedrock(bearer={"ABSKfakeapikey000000001234"})
    thread = AiohttpThread(fake.app, ssl_context=context).start()
    made: list[Any] = []
    try:
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKfakeapikey000000001234")
        keyed = boto3.client(
            "bedrock-runtime",
            endpoint_url=thread.url,
            region_name="us-east-1",
            verify=str(tmp_path / "ca.pem"),
            config=BotoConfig(retries={"total_max_attempts": 1}),
        )
        made.append(keyed)
        assert keyed.converse(modelId="m", messages=HI)["stopReason"] == "end_turn"
        assert fake.calls[-1]["headers"]["Authorization"] == "Bearer ABSKfakeapikey000000001234"
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKsomeoneelseskey")
        other = boto3.client(
            "bedrock-runtime",
            endpoint_url=thread.url,
            region_name="us-east-1",
            verify=str(tmp_path / "ca.pem"),
            config=BotoConfig(retries={"total_max_attempts": 1}),
        )
        made.append(other)
        with pytest.raises(ClientError) as info:
            other.converse(modelId="m", messages=HI)
        assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    finally:
        for c in made:
            c.close()
        thread.stop()
        # asyncio's TLS server leaves the accepted socket of a closed connection to the GC;
        # collect it here, where its ResourceWarning is known and harmless.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def test_boto3_lists_foundation_models(
    server: tuple[FakeBedrock, AiohttpThread], client: Any
) -> None:
    control = client(server[1].url, "bedrock")
    models = control.list_foundation_models()["modelSummaries"]
    assert models[0]["modelId"] == "anthropic.claude-3-haiku-20240307-v1:0"
    with pytest.raises(ClientError) as info:
        client(server[1].url, "bedrock", aws_secret_access_key="wrong").list_foundation_models()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_boto3_counts_tokens(fake: FakeBedrock, runtime: Any) -> None:
    converse = {
        "messages": [{"role": "user", "content": [{"text": "How many words are here?"}]}],
        "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}],
    }
    out = runtime.count_tokens(modelId="anthropic.claude-x-v1:0", input={"converse": converse})
    # one message 3, "user" 1, the question 5, "Be brief." 2
    assert out["inputTokens"] == fake_count({"converse": converse}) == 3 + 1 + 5 + 2
    call = fake.calls[-1]
    assert call["raw_path"] == "/model/anthropic.claude-x-v1%3A0/count-tokens"
    assert call["body"] == {"input": {"converse": converse}}
    fake.then(Fail(400, "The provided model doesn't support counting tokens."))
    with pytest.raises(ClientError, match="support counting tokens"):
        runtime.count_tokens(modelId="m", input={"converse": converse})
