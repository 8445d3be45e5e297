"""AWS Bedrock Converse / ConverseStream wire API (``bedrock-runtime``, 2023-09-30).

Translation is pure functions (``to_body``, ``from_response``, ``parse_event``, and
``map_error`` from ``bedrock_aws``); ``BedrockConverseAdapter`` is the thin network edge.
Requests carry a Bedrock API key as a Bearer token or a SigV4 signature (``bedrock_aws``); the
binary ``application/vnd.amazon.eventstream`` reply is framed and CRC-checked by botocore's own
``EventStreamBuffer`` (``EventStreamDecoder`` feeds it). botocore is the ``bedrock`` extra.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import BadRequestError, UnsupportedParameterError
from ..types import ChatRequest, ChatResult, EmbeddingRequest, EmbeddingResult, StreamEvent
from .base import HttpAdapter, ModelsRequest
from .bedrock_aws import authorise, credentials_hint, list_models_request, map_error
from .bedrock_embed import TOKEN_HEADER, embed_bodies, invoke_request, read_vectors
from .bedrock_embed import usage as embed_usage
from .bedrock_response import (
    EventStreamDecoder,
    StreamState,
    from_response,
    loads,
    malformed,
    parse_event,
)
from .convert import tool_error

__all__ = [
    "BedrockConverseAdapter",
    "EventStreamDecoder",
    "StreamState",
    "from_response",
    "map_error",
    "parse_event",
    "to_body",
    "to_count_request",
    "to_request",
]

EVENTSTREAM = "application/vnd.amazon.eventstream"

# --- pure translation: request -------------------------------------------------------------

# OpenAI fields Converse can honour; anything else is a 400 unless drop_params.
_SUPPORTED = frozenset(
    [
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "user",
        "n",
        "thinking",
    ]
)
# Converse's own top-level fields, passed through verbatim when a caller sends them.
_PASSTHROUGH = frozenset(
    [
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "guardrailConfig",
        "performanceConfig",
        "requestMetadata",
        "serviceTier",
        "promptVariables",
    ]
)
_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


def _unsupported(field: str, d: Deployment, why: str = "") -> UnsupportedParameterError:
    return UnsupportedParameterError(
        f"'{field}' is not supported by Bedrock Converse{why}; remove it, route the request "
        "elsewhere, or set drop_params",
        provider=d.provider,
        model=d.model,
        param=field,
    )


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _image(url: str, where: str, d: Deployment) -> dict[str, Any]:
    if url.startswith("data:"):
        meta, sep, data = url[5:].partition(",")
        mime, _, encoding = meta.partition(";")
        fmt = _IMAGE_FORMATS.get(mime.removeprefix("image/"))
        if not sep or encoding != "base64" or fmt is None:
            raise BadRequestError(
                f"{where}: images must be base64 data URLs of png, jpeg, gif or webp",
                provider=d.provider,
                model=d.model,
                param=where,
            )
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError(
                f"{where}: the image data is not valid base64", param=where
            ) from None
        return {"image": {"format": fmt, "source": {"bytes": data}}}
    if url.startswith("s3://"):
        fmt = _IMAGE_FORMATS.get(url.rsplit(".", 1)[-1].lower())
        if fmt is None:
            raise BadRequestError(
                f"{where}: cannot tell the image format of {url!r} from its extension",
                param=where,
            )
        return {"image": {"format": fmt, "source": {"s3Location": {"uri": url}}}}
    raise _unsupported(
        f"{where} (image URL)", d, ": Bedrock takes images as base64 data URLs or s3:// URIs"
    )


def _cache_point(cache_control: Any) -> list[dict[str, Any]]:
    """A ``cachePoint`` block for an Anthropic-style ``cache_control`` breakpoint (Converse
    marks the end of the cached prefix with a block of its own), or none."""
    if not cache_control:
        return []
    point: dict[str, Any] = {"type": "default"}
    ttl = cache_control.get("ttl") if isinstance(cache_control, dict) else None
    if ttl in ("5m", "1h"):
        point["ttl"] = ttl
    return [{"cachePoint": point}]


def _system_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"text": part["text"]})
        blocks += _cache_point(part.get("cache_control"))
    return blocks


def _user_blocks(content: Any, where: str, d: Deployment) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for n, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            if part["text"]:
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(part["image_url"]["url"], f"{where}.content[{n}]", d))
        elif not d.drop_params:
            raise _unsupported(f"{where}.content[{n}] ({kind})", d)
        blocks += _cache_point(part.get("cache_control"))
    return blocks


def _reasoning_blocks(thinking: Any) -> list[dict[str, Any]]:
    """An assistant turn's Anthropic reasoning blocks as ``reasoningContent`` blocks, so that
    Claude on Bedrock gets its signed reasoning back (it refuses tool use without it)."""
    out: list[dict[str, Any]] = []
    for block in thinking or ():
        if block.get("type") == "thinking":
            text: dict[str, Any] = {"text": block.get("thinking") or ""}
            if block.get("signature"):
                text["signature"] = block["signature"]
            out.append({"reasoningContent": {"reasoningText": text}})
        elif block.get("type") == "redacted_thinking":
            out.append({"reasoningContent": {"redactedContent": block.get("data") or ""}})
    return out


def _tool_input(arguments: str, where: str, d: Deployment) -> Any:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        raise BadRequestError(
            f"{where}: tool call arguments are not valid JSON",
            provider=d.provider,
            model=d.model,
            param=where,
        ) from None
    return value if isinstance(value, dict) else {"value": value}


def _messages(
    raw: list[dict[str, Any]], d: Deployment
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """Converse ``system`` blocks, alternating ``messages``, and the tool names used in them."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        role = m["role"]
        if role in ("system", "developer"):
            system.extend(_system_blocks(m["content"]))
            continue
        if role == "user":
            blocks, turn = _user_blocks(m["content"], where, d), "user"
        elif role == "tool":
            failed, content = tool_error(m)
            result: dict[str, Any] = {
                "toolUseId": m["tool_call_id"],
                "content": [{"text": _text_of(content) or "(empty)"}],
            }
            if failed:
                result["status"] = "error"
            blocks = [{"toolResult": result}]
            inner = [p.get("cache_control") for p in content] if isinstance(content, list) else []
            blocks += _cache_point(m.get("cache_control") or next(filter(None, inner), None))
            turn = "user"
        else:
            turn = "assistant"
            blocks = _reasoning_blocks(m.get("thinking_blocks"))
            content = m.get("content")
            text = _text_of(content)
            blocks += [{"text": text}] if text else []
            if isinstance(content, list):
                marks = (p.get("cache_control") for p in content)
                blocks += _cache_point(next(filter(None, marks), None))
            for call in m.get("tool_calls") or ():
                fn = call["function"]
                used.add(fn["name"])
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": call["id"],
                            "name": fn["name"],
                            "input": _tool_input(fn["arguments"], f"{where}.tool_calls", d),
                        }
                    }
                )
                blocks += _cache_point(call.get("cache_control"))
        if not blocks:
            continue  # Converse rejects empty turns; an empty message says nothing anyway
        if out and out[-1]["role"] == turn:
            out[-1]["content"].extend(blocks)  # Converse wants roles to alternate
        else:
            out.append({"role": turn, "content": blocks})
    if not out or out[0]["role"] != "user":
        raise BadRequestError(
            "Bedrock Converse needs the conversation to start with a user message",
            provider=d.provider,
            model=d.model,
            param="messages",
        )
    return system, out, used


def _tool_config(body: Mapping[str, Any], used: set[str]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if choice == "none" and not used:
        return None  # Converse has no "none": leaving the tools out is the same thing
    specs: list[dict[str, Any]] = []
    for t in tools:
        fn = t["function"]
        spec: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            spec["description"] = fn["description"]
        spec["inputSchema"] = {"json": fn.get("parameters") or {"type": "object", "properties": {}}}
        specs.append({"toolSpec": spec})
        specs += _cache_point(t.get("cache_control"))
    declared = {s["toolSpec"]["name"] for s in specs if "toolSpec" in s}
    # Converse refuses toolUse/toolResult blocks without a toolConfig: declare what was used.
    for name in sorted(used - declared):
        specs.append({"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object"}}}})
    if not any("toolSpec" in s for s in specs):
        return None
    config: dict[str, Any] = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    return config


def to_body(request: ChatRequest, d: Deployment) -> dict[str, Any]:
    """The Converse request body (``modelId`` travels in the URL)."""
    body = request.to_openai()
    for key, value in d.params.items():
        body.setdefault(key, value)
    for field in sorted(body.keys() - _SUPPORTED - _PASSTHROUGH):
        if not d.drop_params:
            raise _unsupported(field, d)
    if (body.get("n") or 1) > 1 and not d.drop_params:
        raise _unsupported("n", d, " above 1")

    system, messages, used = _messages(body["messages"], d)
    out: dict[str, Any] = {"messages": messages}

    inference: dict[str, Any] = {}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        inference["maxTokens"] = limit
    temperature = body.get("temperature")
    if temperature is not None:
        if temperature > 1 and not d.drop_params:
            raise _unsupported("temperature", d, " above 1 (Bedrock takes 0 to 1)")
        inference["temperature"] = min(temperature, 1.0)
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        out["inferenceConfig"] = inference

    tool_config = _tool_config(body, used)
    if tool_config:
        out["toolConfig"] = tool_config

    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema" and rf.get("json_schema"):
        js = rf["json_schema"]
        schema: dict[str, Any] = {"schema": orjson.dumps(js.get("schema") or {}).decode()}
        if js.get("name"):
            schema["name"] = js["name"]
        if js.get("description"):
            schema["description"] = js["description"]
        out["outputConfig"] = {
            "textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}
        }
    elif rf.get("type") == "json_object":
        # Converse has a JSON-schema output mode but no bare JSON mode: ask in the system prompt.
        system.append({"text": _JSON_INSTRUCTION})
    if system:
        out["system"] = system

    if body.get("user"):
        out["requestMetadata"] = {"user": str(body["user"])[:256]}
    for key in _PASSTHROUGH & body.keys():
        out[key] = body[key]
    if body.get("thinking"):  # Claude's own switch, which Converse passes to the model
        extra = out.get("additionalModelRequestFields") or {}
        out["additionalModelRequestFields"] = {"thinking": body["thinking"], **extra}
    return out


def to_request(
    request: ChatRequest, d: Deployment, *, stream: bool
) -> tuple[str, dict[str, str], bytes]:
    """URL, signed headers and JSON body for one upstream call."""
    body = orjson.dumps(to_body(request, d))
    # Model ids hold ':' and ARNs hold '/': one path segment, every reserved byte escaped,
    # as botocore does for the {modelId} label.
    path = f"/model/{quote(d.model, safe='-._~')}/{'converse-stream' if stream else 'converse'}"
    url = d.base_url + path
    headers = {"Content-Type": "application/json", **d.headers}
    if stream:
        headers["Accept"] = EVENTSTREAM
    return url, authorise(url, headers, body, d), body


_COUNTED = ("messages", "system", "toolConfig", "additionalModelRequestFields")
"""What CountTokens takes of a Converse body (``ConverseTokensRequest``)."""


def to_count_request(request: ChatRequest, d: Deployment) -> tuple[str, dict[str, str], bytes]:
    """URL, signed headers and body that ask Bedrock to count a Converse request's input
    tokens (``CountTokens``)."""
    converse = to_body(request, d)
    counted = {k: converse[k] for k in _COUNTED if k in converse}
    body = orjson.dumps({"input": {"converse": counted}})
    url = d.base_url + f"/model/{quote(d.model, safe='-._~')}/count-tokens"
    headers = {"Content-Type": "application/json", **d.headers}
    return url, authorise(url, headers, body, d), body


# --- network edge --------------------------------------------------------------------------


class BedrockConverseAdapter(HttpAdapter):
    wire_api = "bedrock_converse"
    map_error = staticmethod(map_error)

    def models_request(self, d: Deployment) -> ModelsRequest | None:
        # The runtime lists nothing: ListFoundationModels on the control plane beside it.
        return ModelsRequest(*list_models_request(d))

    def credentials_hint(self, d: Deployment) -> str:
        return credentials_hint(d)

    async def embed(
        self, request: EmbeddingRequest, d: Deployment, t: TimeoutsConfig
    ) -> EmbeddingResult:
        """InvokeModel with the model vendor's body (``bedrock_embed``), calls in order."""
        from yarl import URL

        vectors: list[list[float]] = []
        tokens: list[str | None] = []
        for body in embed_bodies(request, d):
            url, headers, raw = invoke_request(body, d)
            call = self.call(d, t)
            obj = loads(await call.read(URL(url, encoded=True), headers, raw), d)
            vectors += read_vectors(obj, d)
            tokens.append(call.headers.get(TOKEN_HEADER))
        return EmbeddingResult(
            model=d.model,
            provider=d.provider,
            vectors=vectors,
            usage=embed_usage(tokens),
            deployment=d.id,
        )

    async def count_tokens(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> int:
        """The exact input tokens of ``request``, counted by Bedrock (``CountTokens``; the
        models that have no count answer a ValidationException, and the gateway estimates)."""
        from yarl import URL

        url, headers, body = to_count_request(request, d)
        try:
            raw = await self.call(d, t).read(URL(url, encoded=True), headers, body)
        except UnsupportedParameterError:
            raise
        except BadRequestError as err:  # "The provided model doesn't support counting tokens"
            raise UnsupportedParameterError(
                f"Bedrock cannot count tokens for this model: {err.message}",
                provider=d.provider,
                model=d.model,
            ) from None
        obj = loads(raw, d)
        tokens = obj.get("inputTokens") if isinstance(obj, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            raise malformed("no inputTokens in the CountTokens answer", d)
        return tokens

    async def chat(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> ChatResult:
        from yarl import URL

        url, headers, body = to_request(request, d, stream=False)
        call = self.call(d, t)
        # encoded=True: the path was escaped and signed as is; it must go out unchanged.
        result = from_response(loads(await call.read(URL(url, encoded=True), headers, body), d), d)
        result.id = call.headers.get("x-amzn-RequestId", "")
        return result

    async def stream(
        self, request: ChatRequest, d: Deployment, t: TimeoutsConfig
    ) -> AsyncIterator[StreamEvent]:
        from yarl import URL

        decoder = EventStreamDecoder(d)
        url, headers, body = to_request(request, d, stream=True)
        async with self.call(d, t).open_stream(URL(url, encoded=True), headers, body) as resp:
            async for chunk in resp.content.iter_any():
                for event in decoder.feed(chunk):
                    yield event
