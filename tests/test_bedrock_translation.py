"""Pure translation tests for the Bedrock Converse adapter: OpenAI requests into Converse bodies
that validate against the Bedrock service model, answers and stream events back, errors mapped,
and requests signed exactly as botocore signs them."""

from __future__ import annotations

import base64
import sys
from typing import Any

import orjson
import pytest

from turnout import errors
from turnout.adapters.bedrock_aws import aws_credentials, credentials_hint, map_error
from turnout.adapters.bedrock_converse import to_body, to_request
from turnout.adapters.bedrock_response import StreamState, from_response, parse_event
from turnout.catalogue import Catalogue
from turnout.config import Config
from turnout.deployment import Deployment, resolve_deployment
from turnout.types import (
    ChatRequest,
    Finish,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageUpdate,
)

from .fakes import bedrock_schema
from .fakes.bedrock_upstream import converse_response, stream_events
from .fakes.script import Reply

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Find a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def deployment(
    model: str = HAIKU, *, drop_params: bool = False, params: dict[str, Any] | None = None, **p: Any
) -> Deployment:
    provider = {"settings": {"access_key_id": "AKIDTEST0001", "secret_access_key": "s3cr3t"}}
    provider.update(p)
    config = Config.model_validate({"providers": {"bedrock": provider}, "drop_params": drop_params})
    return resolve_deployment(f"bedrock:{model}", config, Catalogue.default(), params)


def body(d: Deployment | None = None, **request: Any) -> dict[str, Any]:
    request.setdefault("model", "m")
    request.setdefault("messages", [{"role": "user", "content": "hi"}])
    out = to_body(ChatRequest.model_validate(request), d or deployment())
    assert bedrock_schema.errors(out, "ConverseRequest") == []
    return out


# --- requests ------------------------------------------------------------------------------


def test_system_and_developer_go_to_system_blocks_and_params_map() -> None:
    out = body(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "hi"},
        ],
        max_completion_tokens=64,
        temperature=0.2,
        top_p=0.9,
        stop="\n\n",
        user="u-1",
    )
    assert out["system"] == [{"text": "Be brief."}, {"text": "Use French."}]
    assert out["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    assert out["inferenceConfig"] == {
        "maxTokens": 64,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["\n\n"],
    }
    assert out["requestMetadata"] == {"user": "u-1"}


def test_deployment_params_are_defaults_the_caller_overrides() -> None:
    d = deployment(params={"temperature": 0.5, "max_tokens": 100})
    assert body(d)["inferenceConfig"] == {"temperature": 0.5, "maxTokens": 100}
    assert body(d, temperature=0.1)["inferenceConfig"]["temperature"] == 0.1


def test_tool_round_trip_alternates_roles_and_merges_tool_results() -> None:
    out = body(
        messages=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "tooluse_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "tooluse_2",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "tooluse_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "tooluse_2", "content": "rain"},
        ],
        tools=TOOLS,
        tool_choice="required",
    )
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"][0] == {
        "toolUse": {"toolUseId": "tooluse_1", "name": "lookup", "input": {"city": "Paris"}}
    }
    assert out["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}},
        {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "rain"}]}},
    ]
    assert out["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "lookup",
                    "description": "Find a city",
                    "inputSchema": {"json": TOOLS[0]["function"]["parameters"]},
                }
            }
        ],
        "toolChoice": {"any": {}},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "lookup"}}, {"tool": {"name": "lookup"}}),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    out = body(tools=TOOLS, **({"tool_choice": choice} if choice else {}))
    assert out["toolConfig"].get("toolChoice") == expected


def test_tool_choice_none_leaves_the_tools_out() -> None:
    assert "toolConfig" not in body(tools=TOOLS, tool_choice="none")


def test_tools_used_in_history_are_declared_when_the_caller_sent_none() -> None:
    out = body(
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "done"},
        ]
    )
    assert out["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}
    ]


def test_bad_tool_arguments_are_a_bad_request() -> None:
    with pytest.raises(errors.BadRequestError, match="not valid JSON"):
        body(
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{"}}
                    ],
                },
            ]
        )


def test_images_go_as_bytes_or_s3_and_web_urls_are_refused() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "s3://bucket/cat.JPG"}},
    ]
    out = body(messages=[{"role": "user", "content": content}])
    assert out["messages"][0]["content"][1:] == [
        {"image": {"format": "png", "source": {"bytes": PNG}}},
        {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cat.JPG"}}}},
    ]
    web = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(errors.UnsupportedParameterError, match="data URLs or s3://"):
        body(messages=[{"role": "user", "content": web}])
    bad = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,###"}}]
    with pytest.raises(errors.BadRequestError, match="base64"):
        body(messages=[{"role": "user", "content": bad}])


def test_json_modes() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = body(
        response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}
    )
    fmt = out["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema"
    assert orjson.loads(fmt["structure"]["jsonSchema"]["schema"]) == schema
    assert fmt["structure"]["jsonSchema"]["name"] == "thing"
    plain = body(response_format={"type": "json_object"})
    assert "JSON" in plain["system"][-1]["text"]


def test_what_converse_cannot_honour_is_refused_or_dropped() -> None:
    for field, value in (("seed", 1), ("presence_penalty", 0.5), ("logprobs", True)):
        with pytest.raises(errors.UnsupportedParameterError) as info:
            body(**{field: value})
        assert info.value.param == field
    with pytest.raises(errors.UnsupportedParameterError, match="above 1"):
        body(temperature=1.5)
    with pytest.raises(errors.UnsupportedParameterError):
        body(n=2)
    dropped = body(deployment(drop_params=True), seed=1, temperature=1.5)
    assert dropped["inferenceConfig"] == {"temperature": 1.0}
    assert "seed" not in dropped


def test_converse_fields_pass_through() -> None:
    out = body(
        additionalModelRequestFields={"top_k": 40},
        performanceConfig={"latency": "optimized"},
    )
    assert out["additionalModelRequestFields"] == {"top_k": 40}
    assert out["performanceConfig"] == {"latency": "optimized"}


def test_a_conversation_must_start_with_the_user() -> None:
    with pytest.raises(errors.BadRequestError, match="start with a user"):
        body(messages=[{"role": "system", "content": "only a system prompt"}])


def test_model_ids_and_arns_are_one_escaped_path_segment() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude"
    for model, path in (
        (HAIKU, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
        (
            arn,
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
            "%2Fus.anthropic.claude/converse-stream",
        ),
    ):
        url, headers, _ = to_request(
            ChatRequest(model="m", messages=[{"role": "user", "content": "x"}]),
            deployment(model),
            stream=path.endswith("stream"),
        )
        assert url == "https://bedrock-runtime.us-east-1.amazonaws.com" + path
        if path.endswith("stream"):
            assert headers["Accept"] == "application/vnd.amazon.eventstream"


def test_sigv4_is_botocores_signature() -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    d = deployment(
        settings={
            "access_key_id": "AKIDTEST0001",
            "secret_access_key": "s3cr3t",
            "session_token": "tok",
            "region": "eu-west-3",
        }
    )
    req = ChatRequest(model="m", messages=[{"role": "user", "content": "x"}])
    url, headers, raw = to_request(req, d, stream=False)
    assert url.startswith("https://bedrock-runtime.eu-west-3.amazonaws.com/")
    auth = headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST0001/")
    assert "/eu-west-3/bedrock/aws4_request" in auth
    assert headers["X-Amz-Security-Token"] == "tok"
    again = AWSRequest(
        method="POST",
        url=url,
        data=raw,
        headers={
            k: v
            for k, v in headers.items()
            if k in ("Content-Type", "X-Amz-Date", "X-Amz-Security-Token")
        },
    )
    again.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials("AKIDTEST0001", "s3cr3t", "tok"), "bedrock", "eu-west-3")
    expected = signer.signature(
        signer.string_to_sign(again, signer.canonical_request(again)), again
    )
    assert auth.endswith(f"Signature={expected}")


def test_a_bedrock_api_key_goes_as_bearer_and_only_its_tail_is_shown() -> None:
    d = deployment(api_key="ABSKbedrockapikey0123456789wxyz")
    _, headers, _ = to_request(
        ChatRequest(model="m", messages=[{"role": "user", "content": "x"}]), d, stream=False
    )
    assert headers["Authorization"] == "Bearer ABSKbedrockapikey0123456789wxyz"
    assert "X-Amz-Date" not in headers
    assert credentials_hint(d) == "bearer ...wxyz"
    assert credentials_hint(deployment()) == "sigv4 ...0001"
    assert "s3cr3t" not in repr(deployment())


def test_no_credentials_names_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(var, raising=False)
    config = Config.model_validate({"providers": {"bedrock": {}}})
    d = resolve_deployment("bedrock:m", config, Catalogue.default())
    assert aws_credentials(d) is None
    with pytest.raises(errors.AuthenticationError, match="AWS_BEARER_TOKEN_BEDROCK"):
        to_request(
            ChatRequest(model="m", messages=[{"role": "user", "content": "x"}]), d, stream=False
        )


def test_credentials_come_from_the_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV9999")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    d = resolve_deployment("bedrock:m", Config(), Catalogue.default())
    assert aws_credentials(d) == ("AKIDFROMENV9999", "envsecret", None)
    assert d.base_url == "https://bedrock-runtime.ap-south-1.amazonaws.com"


def test_missing_botocore_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore.auth", None)
    with pytest.raises(errors.MissingDependencyError, match=r"turnout\[bedrock\]"):
        to_request(
            ChatRequest(model="m", messages=[{"role": "user", "content": "x"}]),
            deployment(),
            stream=False,
        )


# --- answers -------------------------------------------------------------------------------


def test_from_response_text_tools_reasoning_usage() -> None:
    d = deployment()
    reply = Reply(text="Bonjour.", prompt_tokens=20, completion_tokens=3, cached_tokens=8)
    result = from_response(converse_response(reply), d)
    assert result.text == "Bonjour."
    assert result.choices[0].finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (20, 8)
    assert result.usage.completion_tokens == 3
    tool = from_response(converse_response(Reply(tool_call=("lookup", '{"city": "Paris"}'))), d)
    call = tool.choices[0].tool_calls[0]
    assert call["id"] == "tooluse_fake_1"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert (tool.choices[0].content, tool.choices[0].finish_reason) == (None, "tool_calls")
    thinking = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "Hmm.", "signature": "x"}}},
                    {"text": "42"},
                ],
            }
        },
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
        "metrics": {"latencyMs": 1},
    }
    result = from_response(thinking, d)
    assert (result.text, result.choices[0].finish_reason) == ("42", "length")
    assert result.choices[0].extra["reasoning_content"] == "Hmm."
    assert result.choices[0].extra["thinking_blocks"][0]["thinking"] == "Hmm."
    with pytest.raises(errors.UpstreamServerError, match="malformed"):
        from_response({"output": {}}, d)


def test_fake_responses_validate_against_the_service_model() -> None:
    for reply in (Reply(), Reply(tool_call=("f", '{"a": 1}'), cached_tokens=2)):
        assert bedrock_schema.errors(converse_response(reply), "ConverseResponse") == []
        for kind, payload in stream_events(reply):
            event_shape = bedrock_schema.shape("ConverseStreamOutput")["members"][kind]["shape"]
            real = {k: v for k, v in payload.items() if k != "p"}  # padding, not in the model
            assert bedrock_schema.errors(real, event_shape) == []


def _events(payloads: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    state, out = StreamState(), []
    for kind, payload in payloads:
        headers = {":message-type": "event", ":event-type": kind}
        out.extend(parse_event(headers, orjson.dumps(payload), state, deployment()))
    return out


def test_stream_events_text_then_tool_with_its_own_index() -> None:
    events = _events(
        [
            ("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me look."}}),
            ("contentBlockStop", {"contentBlockIndex": 0}),
            (
                "contentBlockStart",
                {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t9", "name": "f"}}},
            ),
            (
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a"'}}},
            ),
            (
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ": 1}"}}},
            ),
            (
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"reasoningContent": {"text": "x"}}},
            ),
            ("messageStop", {"stopReason": "tool_use"}),
            ("somethingNew", {"x": 1}),
            (
                "metadata",
                {
                    "usage": {
                        "inputTokens": 5,
                        "outputTokens": 9,
                        "totalTokens": 20,
                        "cacheReadInputTokens": 4,
                        "cacheWriteInputTokens": 2,
                    },
                    "metrics": {"latencyMs": 3},
                },
            ),
        ]
    )
    assert events[:4] == [
        TextDelta("Let me look."),
        ToolCallDelta(0, "", "t9", "f"),
        ToolCallDelta(0, '{"a"'),
        ToolCallDelta(0, ": 1}"),
    ]
    assert events[4] == ThinkingDelta("x", block=0)  # reasoning: Anthropic clients get it
    assert events[5] == Finish("tool_calls")
    usage = events[6]
    assert isinstance(usage, UsageUpdate)
    assert (usage.usage.prompt_tokens, usage.usage.cached_tokens) == (11, 4)
    assert usage.usage.cache_write_tokens == 2
    assert len(events) == 7


@pytest.mark.parametrize(
    ("name", "message", "expected"),
    [
        ("throttlingException", "Too many requests", errors.RateLimitError),
        (
            "validationException",
            "Input is too long for requested model.",
            errors.ContextWindowExceededError,
        ),
        ("validationException", "bad field", errors.BadRequestError),
        ("modelStreamErrorException", "model crashed", errors.UpstreamServerError),
        ("serviceUnavailableException", "busy", errors.OverloadedError),
        ("internalServerException", "oops", errors.UpstreamServerError),
    ],
)
def test_in_stream_exceptions(name: str, message: str, expected: type[Exception]) -> None:
    headers = {":message-type": "exception", ":exception-type": name}
    with pytest.raises(expected) as info:
        parse_event(headers, orjson.dumps({"message": message}), StreamState(), deployment())
    assert type(info.value) is expected
    assert message in str(info.value)


def test_error_message_frames_raise() -> None:
    headers = {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "x"}
    with pytest.raises(errors.UpstreamServerError, match="InternalFailure"):
        parse_event(headers, b"", StreamState(), deployment())


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (400, "ValidationException", errors.BadRequestError),
        (403, "UnrecognizedClientException", errors.AuthenticationError),
        (403, "InvalidSignatureException", errors.AuthenticationError),
        (403, "AccessDeniedException", errors.PermissionDeniedError),
        (404, "ResourceNotFoundException", errors.NotFoundError),
        (408, "ModelTimeoutException", errors.UpstreamTimeoutError),
        (424, "ModelErrorException", errors.UpstreamServerError),
        (429, "ThrottlingException", errors.RateLimitError),
        (429, "ModelNotReadyException", errors.RateLimitError),
        (400, "ServiceQuotaExceededException", errors.RateLimitError),
        (500, "InternalServerException", errors.UpstreamServerError),
        (503, "ServiceUnavailableException", errors.OverloadedError),
        (502, "SomethingNewException", errors.UpstreamServerError),
    ],
)
def test_map_error(status: int, name: str, expected: type[Exception]) -> None:
    headers = {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    err = map_error(status, b'{"message": "it went wrong"}', headers, deployment())
    assert type(err) is expected
    assert err.code == name
    assert "it went wrong" in err.message


def test_map_error_reads_the_body_type_and_hides_the_key() -> None:
    d = deployment(api_key="ABSKbedrockapikey0123456789wxyz")
    raw = orjson.dumps(
        {
            "__type": "com.amazon.coral#ThrottlingException",
            "message": "slow down, key ABSKbedrockapikey0123456789wxyz",
        }
    )
    err = map_error(429, raw, {"Retry-After": "3"}, d)
    assert isinstance(err, errors.RateLimitError)
    assert err.retry_after == 3
    assert "ABSKbedrockapikey0123456789wxyz" not in err.message
    assert "...wxyz" in err.message
    context = map_error(400, b'{"message": "too many input tokens"}', {}, d)
    assert isinstance(context, errors.ContextWindowExceededError)
