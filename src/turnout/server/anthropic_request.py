"""Anthropic Messages requests, as the ingress (``POST /v1/messages``) receives them, turned
into the canonical ``ChatRequest``: system to a system message, content blocks to content
parts, ``tool_result`` blocks to tool messages, tools and ``tool_choice`` to OpenAI's.

What only Anthropic-style backends read rides along in the canonical form: ``cache_control``
on the part, tool, tool call or tool message it was set on, and an assistant turn's
``thinking`` / ``redacted_thinking`` blocks (signatures included) as its ``thinking_blocks``.
Adapters of backends that cannot take them leave them out."""

from __future__ import annotations

import binascii
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..adapters.convert import TOOL_ERROR_MARK
from ..errors import BadRequestError
from ..gateway import parse_request
from ..types import ChatRequest

__all__ = ["CountTokensRequest", "MessagesRequest", "to_chat_request", "to_count_request"]


class _Block(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(_Block):
    type: Literal["text"]
    text: str


class ImageBlock(_Block):
    type: Literal["image"]
    source: dict[str, Any]


class DocumentBlock(_Block):
    type: Literal["document"]
    source: dict[str, Any]
    title: str | None = None


class ToolUseBlock(_Block):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Block):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None


class ThinkingBlock(_Block):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Block):
    type: Literal["redacted_thinking"]
    data: str


Block = Annotated[
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock,
    Field(discriminator="type"),
]
_REASONING = (ThinkingBlock, RedactedThinkingBlock)


class InputMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class ToolChoice(BaseModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(BaseModel):
    """What ``POST /v1/messages`` accepts. Unknown fields are refused (as the API does), except
    the few below that only tune Anthropic's own service and mean nothing elsewhere."""

    model_config = ConfigDict(extra="forbid")

    # Numbers and flags are strict, as the API is: "10" is not a max_tokens, "yes" not a flag.
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1, strict=True)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1, strict=True)
    top_p: float | None = Field(default=None, ge=0, le=1, strict=True)
    top_k: int | None = Field(default=None, ge=0, strict=True)
    stream: bool | None = Field(default=None, strict=True)
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None
    """The pre-GA spelling of ``output_config.format``."""
    cache_control: dict[str, Any] | None = None
    service_tier: str | None = None
    inference_geo: str | None = None
    speed: str | None = None
    diagnostics: dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None
    """Server-side context editing (a beta Claude Code sends): accepted and not forwarded, as
    Anthropic refuses it without its beta header; the conversation is the same without it."""
    turnout: dict[str, Any] | None = None
    """Turnout's own routing hints (``strategy``, ``priority``, ...), as on the OpenAI route."""


class CountTokensRequest(MessagesRequest):
    """What ``POST /v1/messages/count_tokens`` accepts: a Messages body whose ``max_tokens``
    may be left out (generation settings sent along are accepted and do not count)."""

    max_tokens: int | None = Field(default=None, ge=1, strict=True)  # type: ignore[assignment]


def _refuse(message: str, param: str) -> BadRequestError:
    return BadRequestError(message, param=param)


IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
"""The image media types the Messages API takes."""


def _base64(data: Any, where: str) -> str:
    """``data`` when it is valid base64 (as Anthropic checks before any model sees it)."""
    if isinstance(data, str):
        try:
            binascii.a2b_base64(data, strict_mode=True)
            return data
        except (binascii.Error, ValueError):
            pass
    raise _refuse(f"{where}.source.data: the base64 data is not valid", f"{where}.source.data")


def _image(block: ImageBlock, where: str) -> dict[str, Any]:
    source = block.source
    if source.get("type") == "base64" and source.get("data"):
        media_type = source.get("media_type")
        if media_type not in IMAGE_TYPES:
            raise _refuse(
                f"{where}.source.media_type: must be one of {', '.join(IMAGE_TYPES)}",
                f"{where}.source.media_type",
            )
        url = f"data:{media_type};base64,{_base64(source['data'], where)}"
    elif source.get("type") == "url" and source.get("url"):
        url = str(source["url"])
    else:
        raise _refuse(f"{where}: image source must be base64 data or a url", where)
    return {"type": "image_url", "image_url": {"url": url}}


def _cache(block: BaseModel) -> dict[str, Any]:
    """``{"cache_control": ...}`` when the block sets a cache breakpoint, else ``{}``."""
    cache = (block.model_extra or {}).get("cache_control")
    return {"cache_control": cache} if cache else {}


def _part(block: Any, where: str) -> dict[str, Any] | None:
    """A user content block as an OpenAI content part (None: nothing to carry)."""
    part = _content_part(block, where)
    return {**part, **_cache(block)} if part is not None else None


def _content_part(block: Any, where: str) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        return _image(block, where)
    if isinstance(block, DocumentBlock):
        source = block.source
        if source.get("type") == "text":
            return {"type": "text", "text": str(source.get("data") or "")}
        if source.get("type") == "base64" and source.get("data"):
            mime = source.get("media_type") or "application/pdf"
            data_url = f"data:{mime};base64,{_base64(source['data'], where)}"
            name = block.title or "document.pdf"
            return {"type": "file", "file": {"file_data": data_url, "filename": name}}
        raise _refuse(f"{where}: documents must be base64 or plain text sources", where)
    if isinstance(block, _REASONING):
        return None  # reasoning belongs to assistant turns: none to carry in a user turn
    raise _refuse(f"{where}: a {block.type} block cannot appear in a user turn", where)


def _tool_result(block: ToolResultBlock, where: str) -> dict[str, Any]:
    """A tool message: text content as given (a string, or text parts that keep their cache
    breakpoints), the block's own breakpoint on the message. ``is_error`` stays on the
    message for the wire APIs with an error flag (Anthropic, Bedrock); for the others the text
    starts with ``TOOL_ERROR_MARK``, which the former take off again."""
    content: str | list[dict[str, Any]] = block.content if isinstance(block.content, str) else ""
    if isinstance(block.content, list) and block.content:
        parts = []
        for item in block.content:
            if not isinstance(item, TextBlock):
                raise _refuse(f"{where}: only text can be returned in a tool_result", where)
            parts.append({"type": "text", "text": item.text, **_cache(item)})
        content = parts
    flag: dict[str, Any] = {}
    if block.is_error:
        flag["is_error"] = True
        if isinstance(content, str):
            content = TOOL_ERROR_MARK + content
        else:
            content[0] = {**content[0], "text": TOOL_ERROR_MARK + content[0]["text"]}
    message = {"role": "tool", "tool_call_id": block.tool_use_id, "content": content}
    return {**message, **flag, **_cache(block)}


def _assistant(blocks: list[Any], where: str) -> dict[str, Any]:
    """An assistant message: text as one string (text parts when a block sets a cache
    breakpoint), ``tool_use`` as tool calls, reasoning blocks verbatim as ``thinking_blocks``."""
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        if isinstance(block, TextBlock):
            texts.append({"type": "text", "text": block.text, **_cache(block)})
        elif isinstance(block, ToolUseBlock):
            arguments = orjson.dumps(block.input).decode()
            calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": arguments},
                    **_cache(block),
                }
            )
        elif isinstance(block, _REASONING):
            thinking.append(block.model_dump(exclude_none=True))
        else:
            raise _refuse(
                f"{where}.content.{i}: a {block.type} block cannot appear in an assistant turn",
                where,
            )
    content: str | list[dict[str, Any]] | None = "".join(t["text"] for t in texts) or None
    if any("cache_control" in t for t in texts):
        content = texts
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["thinking_blocks"] = thinking
    return message


def _tool_use_ids(m: InputMessage | None) -> set[str]:
    if m is None or m.role != "assistant" or isinstance(m.content, str):
        return set()
    return {b.id for b in m.content if isinstance(b, ToolUseBlock)}


def _messages(req: MessagesRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(req.system, str) and req.system:
        out.append({"role": "system", "content": req.system})
    elif isinstance(req.system, list) and req.system:
        parts = [_part(b, "system") for b in req.system]
        out.append({"role": "system", "content": [p for p in parts if p]})
    for n, m in enumerate(req.messages):
        where = f"messages.{n}"
        if isinstance(m.content, str):
            out.append({"role": m.role, "content": m.content})
            continue
        if m.role == "assistant":
            out.append(_assistant(m.content, where))
            continue
        # Tool results answer the assistant turn before: they go first, as tool messages,
        # and each must answer a tool_use of that turn (as the API insists).
        asked = _tool_use_ids(req.messages[n - 1] if n else None)
        parts = []
        for i, block in enumerate(m.content):
            if isinstance(block, ToolResultBlock):
                if block.tool_use_id not in asked:
                    raise _refuse(
                        f"{where}.content.{i}: unexpected tool_use_id '{block.tool_use_id}' in "
                        "a tool_result block: each tool_result must answer a tool_use block "
                        "of the previous (assistant) message",
                        f"{where}.content.{i}.tool_use_id",
                    )
                out.append(_tool_result(block, f"{where}.content.{i}"))
            elif (part := _part(block, f"{where}.content.{i}")) is not None:
                parts.append(part)
        if parts:
            out.append({"role": "user", "content": parts})
    return out


def _tools(req: MessagesRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if req.tools:
        tools = []
        for i, tool in enumerate(req.tools):
            if tool.type not in (None, "custom"):
                raise _refuse(
                    f"tools.{i}: server tool '{tool.type}' runs only on Anthropic's platform; "
                    "the gateway takes custom tools (name, description, input_schema)",
                    f"tools.{i}.type",
                )
            fn: dict[str, Any] = {
                "name": tool.name,
                "parameters": tool.input_schema or {"type": "object", "properties": {}},
            }
            if tool.description:
                fn["description"] = tool.description
            if (tool.model_extra or {}).get("strict"):
                fn["strict"] = True
            tools.append({"type": "function", "function": fn, **_cache(tool)})
        fields["tools"] = tools
    choice = req.tool_choice
    if choice is not None and req.tools:
        if choice.type == "tool":
            if not choice.name:
                raise _refuse("tool_choice.name is required when type is 'tool'", "tool_choice")
            fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            fields["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        if choice.disable_parallel_tool_use:
            fields["parallel_tool_calls"] = False
    return fields


def _describe(exc: ValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    more = len(errors) - 5
    first = ".".join(str(p) for p in errors[0]["loc"]) if errors else None
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else ""), first or None


def to_chat_request(obj: Any) -> ChatRequest:
    """The canonical request for an Anthropic Messages body; ``BadRequestError`` names each
    wrong field in Anthropic's vocabulary."""
    return _to_chat(obj, MessagesRequest)


def to_count_request(obj: Any) -> ChatRequest:
    """The canonical request for a ``count_tokens`` body (a Messages body, ``max_tokens``
    optional); never a stream."""
    chat = _to_chat(obj, CountTokensRequest)
    chat.stream = None
    return chat


def _to_chat(obj: Any, schema: type[MessagesRequest]) -> ChatRequest:
    if not isinstance(obj, dict):
        raise BadRequestError("the request body must be a JSON object")
    try:
        req = schema.model_validate(obj)
    except ValidationError as exc:
        message, param = _describe(exc)
        raise BadRequestError(message, param=param) from None
    chat: dict[str, Any] = {"model": req.model, "messages": _messages(req), **_tools(req)}
    if req.max_tokens is not None:
        chat["max_tokens"] = req.max_tokens
    for name in ("temperature", "top_p", "top_k", "thinking", "turnout"):
        value = getattr(req, name)
        if value is not None:
            chat[name] = value
    if req.stop_sequences:
        chat["stop"] = req.stop_sequences
    if req.metadata and req.metadata.get("user_id"):
        chat["user"] = str(req.metadata["user_id"])
    fmt = (req.output_config or {}).get("format") or req.output_format
    if fmt:
        if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            raise BadRequestError(
                "output_config.format must be {'type': 'json_schema', 'schema': {...}}",
                param="output_config.format",
            )
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt["schema"]},
        }
    if not chat["messages"] or all(m["role"] == "system" for m in chat["messages"]):
        raise BadRequestError("messages: at least one user or assistant turn is required")
    if req.stream:
        chat["stream"] = True
    return parse_request(chat)
