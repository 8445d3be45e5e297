"""SSEDecoder: the bytes-level parser every streamed token goes through."""

from __future__ import annotations

import pytest

from turnout.sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    """Feed the chunks in order, then close; every event produced."""
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


# A realistic OpenAI stream: role chunk, text with a multibyte character, a tool-call
# fragment, a keep-alive comment, a usage-only chunk and the terminator.
OPENAI_STREAM = (
    b": keep-alive\n\n"
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Caf\xc3\xa9 \xe2\x98\x95"}}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,'
    b'"function":{"arguments":"{\\"a\\": 1}"}}]}}]}\n\n'
    b": ping\n"
    b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)
OPENAI_DATA = [
    '{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}]}',
    '{"id":"c1","choices":[{"index":0,"delta":{"content":"Café ☕"}}]}',
    '{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,'
    '"function":{"arguments":"{\\"a\\": 1}"}}]}}]}',
    '{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    '{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
    "[DONE]",
]

ENDINGS = {"LF": b"\n", "CRLF": b"\r\n", "CR": b"\r"}


def with_endings(raw: bytes, ending: bytes) -> bytes:
    return raw.replace(b"\n", ending)


def test_whole_stream_decodes_to_its_data_lines():
    events = decode(OPENAI_STREAM)
    assert [e.data for e in events] == OPENAI_DATA
    assert all(e.event is None for e in events)


def test_comment_lines_produce_no_events():
    assert decode(b": keep-alive\n\n:another\n\n") == []
    assert decode(b": keep-alive\ndata: x\n: mid-event comment\n\n") == [ServerSentEvent("x")]


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_every_line_ending_gives_the_same_events(ending: bytes):
    events = decode(with_endings(OPENAI_STREAM, ending))
    assert [e.data for e in events] == OPENAI_DATA


def test_mixed_line_endings_in_one_stream():
    raw = b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"
    assert [e.data for e in decode(raw)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param(b"\n", id="LF"),
        pytest.param(b"\r\n", id="CRLF"),
        pytest.param(b"\r", id="CR"),
    ],
)
def test_split_at_every_byte_offset(ending: bytes):
    raw = with_endings(OPENAI_STREAM, ending)
    expected = decode(raw)
    assert [e.data for e in expected] == OPENAI_DATA
    for cut in range(1, len(raw)):
        assert decode(raw[:cut], raw[cut:]) == expected, f"split at byte {cut}"


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_one_byte_per_read(ending: bytes):
    raw = with_endings(OPENAI_STREAM, ending)
    chunks = [raw[i : i + 1] for i in range(len(raw))]
    assert [e.data for e in decode(*chunks)] == OPENAI_DATA


def test_events_are_returned_by_the_feed_that_completes_them():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: hel") == []
    assert decoder.feed(b"lo\n") == []
    assert decoder.feed(b"\ndata: next") == [ServerSentEvent("hello")]
    assert decoder.close() == [ServerSentEvent("next")]


def test_crlf_split_between_cr_and_lf_is_one_line_ending():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # The LF that completes the CRLF must not count as a blank line (which would end the
    # event early and split "a" and "b" into two events).
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent("a\nb")]
    assert decoder.feed(b"\n") == []
    assert decoder.close() == []


def test_crlf_split_then_immediately_blank_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r\n") == [ServerSentEvent("a")]


def test_cr_only_line_end_at_chunk_boundary_is_not_held_back():
    # A lone CR at the end of a read is a complete line: the event is emitted on the blank
    # line that follows, without waiting to see whether an LF arrives.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [ServerSentEvent("a")]


def test_cr_only_events_in_separate_reads_stay_separate():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: b\r\r") == [ServerSentEvent("b")]
    assert decoder.feed(b"data: c\r\r") == [ServerSentEvent("c")]


def test_empty_read_between_cr_and_lf_changes_nothing():
    assert decode(b"data: a\r", b"", b"\ndata: b\r\n\r\n") == [ServerSentEvent("a\nb")]


def test_multi_line_data_joined_with_newline():
    raw = b"data: first\ndata: second\ndata:\ndata: fourth\n\n"
    assert decode(raw) == [ServerSentEvent("first\nsecond\n\nfourth")]


def test_only_one_space_after_colon_is_stripped():
    assert decode(b"data:no-space\n\ndata:  two-spaces\n\n") == [
        ServerSentEvent("no-space"),
        ServerSentEvent(" two-spaces"),
    ]


def test_event_names_kept_and_reset_after_each_event():
    raw = (
        b"event: message_start\ndata: {}\n\n"
        b'event: content_block_delta\ndata: {"t": 1}\n\n'
        b"data: plain\n\n"
    )
    assert decode(raw) == [
        ServerSentEvent("{}", "message_start"),
        ServerSentEvent('{"t": 1}', "content_block_delta"),
        ServerSentEvent("plain", None),
    ]


def test_id_field_kept():
    events = decode(b"id: 7\ndata: x\n\n")
    assert events == [ServerSentEvent("x", None, "7")]


def test_unknown_fields_and_retry_ignored_and_event_without_data_not_dispatched():
    raw = b"retry: 1000\nfoo: bar\n\nevent: ping\n\ndata: real\n\n"
    assert decode(raw) == [ServerSentEvent("real")]


@pytest.mark.parametrize(
    "tail",
    [b"data: last", b"data: last\n", b"data: last\r\n", b"data: last\r"],
    ids=["no newline", "LF", "CRLF", "CR"],
)
def test_stream_ending_without_blank_line_flushed_by_close(tail: bytes):
    decoder = SSEDecoder()
    first = decoder.feed(b"data: one\n\n" + tail)
    assert first == [ServerSentEvent("one")]
    assert decoder.close() == [ServerSentEvent("last")]
    assert decoder.close() == []


def test_close_on_clean_stream_emits_nothing():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n") == [ServerSentEvent("a")]
    assert decoder.close() == []


def test_utf8_character_split_across_reads():
    text = "héllo ☕ 𝄞 日本"
    raw = b"data: " + text.encode() + b"\n\n"
    for cut in range(len(raw)):
        events = decode(raw[:cut], raw[cut:])
        assert events == [ServerSentEvent(text)], f"split at byte {cut}"


def test_utf8_character_fed_one_byte_at_a_time():
    raw = "data: ☕\n\n".encode()
    assert decode(*(raw[i : i + 1] for i in range(len(raw)))) == [ServerSentEvent("☕")]
