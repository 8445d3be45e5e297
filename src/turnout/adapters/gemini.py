"""Google Gemini native wire API: ``generateContent`` and ``streamGenerateContent?alt=sse``.

Translation is pure functions (``to_request``, ``from_response``, ``parse_chunk``, and
``map_error`` from ``gemini_errors``); ``GeminiAdapter`` is the thin network edge. JSON
Schemas (tool parameters, ``response_format``) are converted to Gemini's ``Schema`` subset by
``to_gemini_schema``.
Tool calls and their results are paired by function name and order, as Gemini does; the ids
Gemini issues (when it does) are kept, otherwise the gateway makes them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import BadRequestError, UpstreamServerError
from ..sse import SSEDecoder
from ..types import (
    ChatRequest,
    ChatResult,
    Choice,
    EmbeddingRequest,
    EmbeddingResult,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from .base import HttpAdapter, join_version
from .convert import (
    arguments_object,
    arguments_text,
    data_url,
    new_call_id,
    request_fields,
    take_unsupported,
    text_of,
)
from .gemini_errors import classify, map_error
from .gemini_schema import to_gemini_schema
from .malformed import stream_parser
from .native_embeddings import gemini_embed_request, gemini_embed_result

__all__ = [
    "GeminiAdapter",
    "StreamState",
    "from_response",
    "map_error",
    "parse_chunk",
    "to_gemini_schema",
    "to_request",
]

# --- pure translation: request -------------------------------------------------------------

_CONFIG_FIELDS = {
    "temperature": "temperature",
    "top_p": "topP",
    "seed": "seed",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_NATIVE_TOP = frozenset({"safetySettings", "cachedContent", "toolConfig", "labels"})
"""Gemini's own top-level fields, accepted as is (e.g. from a deployment's ``params``)."""
_NATIVE_CONFIG = frozenset({"topK", "thinkingConfig", "responseModalities", "mediaResolution"})
"""Gemini ``generationConfig`` fields accepted as is."""
_HANDLED = frozenset(
    {
        *_CONFIG_FIELDS,
        *_NATIVE_TOP,
        *_NATIVE_CONFIG,
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "parallel_tool_calls",  # Gemini decides; there is no switch to forward
    }
)


def _part(part: Mapping[str, Any], d: Deployment) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        return {"text": part["text"]}
    if kind == "image_url":
        mime, data = data_url(part["image_url"]["url"], d)
        return {"inlineData": {"mimeType": mime, "data": data}}
    if kind == "input_audio":
        audio = part["input_audio"]
        return {
            "inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio["data"]}
        }
    if kind == "file" and isinstance(part["file"].get("file_data"), str):
        mime, data = data_url(part["file"]["file_data"], d)
        return {"inlineData": {"mimeType": mime, "data": data}}
    raise BadRequestError(
        f"content part of type '{kind}' cannot be sent to {d.provider}",
        provider=d.provider,
        model=d.model,
        param="messages",
    )


def _contents(
    messages: list[dict[str, Any]], d: Deployment
) -> tuple[list[dict[str, Any]], list[str]]:
    """Gemini ``contents`` and the system texts. Consecutive turns of one role are merged
    (parallel tool results must arrive in one turn)."""
    contents: list[dict[str, Any]] = []
    system: list[str] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, to label tool results

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for m in messages:
        role = m["role"]
        content = m.get("content")
        if role in ("system", "developer"):
            system.append(text_of(content))
        elif role == "user":
            if isinstance(content, str):
                add("user", [{"text": content}])
            else:
                add("user", [_part(p, d) for p in content or ()])
        elif role == "assistant":
            parts: list[dict[str, Any]] = []
            text = text_of(content)
            if text:
                parts.append({"text": text})
            for call in m.get("tool_calls") or ():
                fn = call["function"]
                names[call["id"]] = fn["name"]
                part: dict[str, Any] = {
                    "functionCall": {
                        "name": fn["name"],
                        "args": arguments_object(fn["arguments"], d),
                    }
                }
                signature = _signature(call)
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            add("model", parts)
        elif role == "tool":
            name = names.get(m["tool_call_id"]) or m.get("name")
            if not name:
                raise BadRequestError(
                    f"tool result '{m['tool_call_id']}' answers no earlier tool call "
                    "(Gemini pairs results with calls by function name)",
                    provider=d.provider,
                    model=d.model,
                    param="messages",
                )
            add("user", [{"functionResponse": {"name": name, "response": _result(content)}}])
    return contents, system


def _signature(call: Mapping[str, Any]) -> str | None:
    """The thought signature a thinking model attached to its call, as the caller echoes it
    back in ``extra_content`` (the field Google's own OpenAI-compatible API uses)."""
    google = (call.get("extra_content") or {}).get("google") or {}
    value = google.get("thought_signature")
    return value if isinstance(value, str) else None


def _call_extra(part: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``functionCall`` part's thought signature, to be sent back with the call (thinking
    models refuse a follow-up turn whose function calls lost theirs)."""
    signature = part.get("thoughtSignature")
    if not signature:
        return None
    return {"extra_content": {"google": {"thought_signature": signature}}}


def _result(content: Any) -> dict[str, Any]:
    """A tool result as Gemini's ``response`` object: a JSON object as is, else wrapped."""
    text = text_of(content)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    mode = {"none": "NONE", "auto": "AUTO", "required": "ANY"}[choice]
    return {"functionCallingConfig": {"mode": mode}}


def _declaration(fn: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    params = fn.get("parameters")
    if params and (params.get("properties") or params.get("type") not in (None, "object")):
        out["parameters"] = to_gemini_schema(params)
    return out


def to_request(
    request: ChatRequest, d: Deployment, *, stream: bool
) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and JSON body for one ``generateContent`` / ``streamGenerateContent``."""
    fields = request_fields(request, d)
    take_unsupported(fields, _HANDLED, d)
    contents, system = _contents(fields["messages"], d)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}

    config: dict[str, Any] = {
        native: fields[name] for name, native in _CONFIG_FIELDS.items() if name in fields
    }
    limit = fields.get("max_completion_tokens") or fields.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = fields.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = fields.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = to_gemini_schema(schema)
    config.update({k: fields[k] for k in _NATIVE_CONFIG if k in fields})
    if config:
        body["generationConfig"] = config

    if fields.get("tools"):
        body["tools"] = [
            {"functionDeclarations": [_declaration(t["function"]) for t in fields["tools"]]}
        ]
        tool_config = _tool_config(fields.get("tool_choice"))
        if tool_config:
            body["toolConfig"] = tool_config
    body.update({k: fields[k] for k in _NATIVE_TOP if k in fields})

    model = d.model.removeprefix("models/")
    url = d.base_url + d.host.path.replace("{model}", quote(model, safe=""))
    query = dict(d.query)
    if stream:
        url += ":streamGenerateContent"
        query["alt"] = "sse"
    else:
        url += ":generateContent"
    if query:
        url += "?" + urlencode(query)
    headers = {"Content-Type": "application/json", **d.headers}
    api_key = d.require_key()
    if api_key:
        headers[d.host.auth_header] = d.host.auth_prefix + api_key
    if stream:
        headers["Accept"] = "text/event-stream"
    return url, headers, orjson.dumps(body)


# --- pure translation: response ------------------------------------------------------------

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


def finish_reason(native: str | None, tool_calls: bool) -> str:
    """OpenAI's finish reason for Gemini's; a turn that called tools says ``tool_calls``."""
    reason = _FINISH.get(native or "STOP", "stop")
    return "tool_calls" if tool_calls and reason == "stop" else reason


def usage(raw: Mapping[str, Any] | None) -> Usage:
    """``usageMetadata``: the prompt count already includes cached tokens; thinking tokens
    are output the caller pays for, so they count as completion (and reasoning) tokens."""
    if not raw:
        return Usage()
    thoughts = int(raw.get("thoughtsTokenCount") or 0)
    return Usage(
        prompt_tokens=int(raw.get("promptTokenCount") or 0),
        completion_tokens=int(raw.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(raw.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def _malformed(what: str, d: Deployment) -> UpstreamServerError:
    return UpstreamServerError(f"malformed response: {what}", provider=d.provider, model=d.model)


def _parts(candidate: Any, d: Deployment) -> list[dict[str, Any]]:
    if not isinstance(candidate, dict):
        raise _malformed("a candidate is not an object", d)
    content = candidate.get("content") or {}
    parts = content.get("parts") if isinstance(content, dict) else None
    if parts is None:
        return []
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise _malformed("'parts' is not a list of objects", d)
    return parts


def _raise_in_body(obj: Any, d: Deployment) -> None:
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        err = obj["error"]
        status = err.get("code") if isinstance(err.get("code"), int) else 500
        raise classify(status, err, {}, d)


def from_response(obj: Any, d: Deployment) -> ChatResult:
    """A ChatResult from a ``GenerateContentResponse``."""
    if not isinstance(obj, dict):
        raise _malformed("not a JSON object", d)
    _raise_in_body(obj, d)
    candidates = obj.get("candidates") or []
    if not isinstance(candidates, list):
        raise _malformed("'candidates' is not a list", d)
    choices = []
    for i, cand in enumerate(candidates):
        text: list[str] = []
        thoughts: list[str] = []
        calls = []
        for part in _parts(cand, d):
            if "functionCall" in part:
                call = part["functionCall"] or {}
                calls.append(
                    {
                        "id": call.get("id") or new_call_id(),
                        "type": "function",
                        "function": {
                            "name": call.get("name", ""),
                            "arguments": arguments_text(call.get("args")),
                        },
                        **(_call_extra(part) or {}),
                    }
                )
            elif isinstance(part.get("text"), str):
                (thoughts if part.get("thought") else text).append(part["text"])
        joined = "".join(text)
        choices.append(
            Choice(
                index=cand.get("index", i),
                content=joined if joined or not calls else None,
                tool_calls=calls or None,
                finish_reason=finish_reason(cand.get("finishReason"), bool(calls)),
                extra={"reasoning_content": "".join(thoughts)} if thoughts else {},
            )
        )
    if not choices and (obj.get("promptFeedback") or {}).get("blockReason"):
        choices.append(Choice(index=0, content="", finish_reason="content_filter"))
    return ChatResult(
        id=str(obj.get("responseId") or ""),
        model=d.model,
        provider=d.provider,
        choices=choices,
        usage=usage(obj.get("usageMetadata")),
        created=int(time.time()),
        deployment=d.id,
    )


class StreamState:
    """What a Gemini stream must remember between chunks: how many tool calls each candidate
    has made (each ``functionCall`` part is one whole call, numbered in order)."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}


@stream_parser
def parse_chunk(obj: Any, d: Deployment, state: StreamState) -> list[StreamEvent]:
    """Events from one streamed ``GenerateContentResponse``; an in-stream error raises."""
    if not isinstance(obj, dict):
        raise _malformed("a stream chunk is not an object", d)
    _raise_in_body(obj, d)
    events: list[StreamEvent] = []
    candidates = obj.get("candidates") or []
    if not isinstance(candidates, list):
        raise _malformed("'candidates' is not a list", d)
    for i, cand in enumerate(candidates):
        parts = _parts(cand, d)
        index = cand.get("index", i)
        for part in parts:
            if "functionCall" in part:
                call = part["functionCall"] or {}
                n = state.calls.get(index, 0)
                state.calls[index] = n + 1
                events.append(
                    ToolCallDelta(
                        index=n,
                        arguments=arguments_text(call.get("args")),
                        id=call.get("id") or new_call_id(),
                        name=call.get("name", ""),
                        choice=index,
                        extra=_call_extra(part),
                    )
                )
            elif isinstance(part.get("text"), str) and part["text"] and not part.get("thought"):
                events.append(TextDelta(part["text"], index))
        if cand.get("finishReason"):
            reason = finish_reason(cand["finishReason"], index in state.calls)
            events.append(Finish(reason, index))
    if not candidates and (obj.get("promptFeedback") or {}).get("blockReason"):
        events.append(Finish("content_filter", 0))
    if obj.get("usageMetadata"):
        events.append(UsageUpdate(usage(obj["usageMetadata"])))
    return events


# --- network edge --------------------------------------------------------------------------


class GeminiAdapter(HttpAdapter):
    wire_api = "gemini"
    map_error = staticmethod(map_error)

    def models_url(self, d: Deployment) -> str:
        return join_version(d.base_url, "/v1beta", "/models")

    async def embed(
        self, request: EmbeddingRequest, d: Deployment, t: TimeoutsConfig
    ) -> EmbeddingResult:
        url, headers, body = gemini_embed_request(request, d)
        texts = request.texts or []
        obj = await self.call(d, t).post_json(url, headers, body)
        return gemini_embed_result(obj, d, texts)

    async def chat(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> ChatResult:
        url, headers, body = to_request(request, d, stream=False)
        obj = await self.call(d, t).post_json(url, headers, body)
        return from_response(obj, d)

    async def stream(
        self, request: ChatRequest, d: Deployment, t: TimeoutsConfig
    ) -> AsyncIterator[StreamEvent]:
        url, headers, body = to_request(request, d, stream=True)
        state = StreamState()
        call = self.call(d, t)
        async with call.open_stream(url, headers, body) as resp:
            decoder = SSEDecoder()
            async for chunk in resp.content.iter_any():
                for sse in decoder.feed(chunk):
                    for event in parse_chunk(call.loads(sse.data), d, state):
                        yield event
            for sse in decoder.close():
                for event in parse_chunk(call.loads(sse.data), d, state):
                    yield event
