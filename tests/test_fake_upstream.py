"""The fake upstream is faithful: the official openai SDK parses everything it sends, and its
bodies validate against the official OpenAPI spec."""

from __future__ import annotations

import openai
import pytest

from .conftest import openai_validator
from .fakes import openai_upstream as wire
from .fakes.openai_upstream import Fail, FakeOpenAI, Reply


@pytest.mark.parametrize(
    "reply", [Reply(), Reply(tool_call=("lookup", '{"city": "Paris"}'), cached_tokens=4)]
)
def test_openai_sdk_parses_fake_completions(fake: FakeOpenAI, fake_url: str, reply: Reply) -> None:
    fake.then(reply)
    client = openai.OpenAI(base_url=fake_url, api_key="x", max_retries=0)
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert out.usage is not None and out.usage.prompt_tokens == reply.prompt_tokens
    if reply.tool_call:
        call = out.choices[0].message.tool_calls[0]
        assert (call.function.name, call.function.arguments) == reply.tool_call
    else:
        assert out.choices[0].message.content == reply.text
    errors = list(
        openai_validator("CreateChatCompletionResponse").iter_errors(wire.completion(reply, "m"))
    )
    assert errors == []


@pytest.mark.parametrize(
    "reply",
    [
        Reply(),
        Reply(crlf=True, comments=True, split=True),
        Reply(tool_call=("lookup", '{"city": "Paris"}')),
    ],
)
def test_openai_sdk_parses_fake_streams(fake: FakeOpenAI, fake_url: str, reply: Reply) -> None:
    fake.then(reply)
    client = openai.OpenAI(base_url=fake_url, api_key="x", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    if reply.tool_call:
        args = "".join(
            c.choices[0].delta.tool_calls[0].function.arguments or ""
            for c in chunks[:-1]
            if c.choices and c.choices[0].delta.tool_calls
        )
        assert args == reply.tool_call[1]
    else:
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == reply.text
    validator = openai_validator("CreateChatCompletionStreamResponse")
    for chunk in wire.chunks(reply, "m", True):
        assert list(validator.iter_errors(chunk)) == []


def test_openai_sdk_reads_fake_errors(fake: FakeOpenAI, fake_url: str) -> None:
    fake.then(Fail(429, "slow down", headers={"Retry-After": "3"}, code="rate_limit_exceeded"))
    client = openai.OpenAI(base_url=fake_url, api_key="x", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"] == "3"
