"""Anthropic Messages requests, as the ingress (``POST /v1/messages``) receives them, turned
into the canonical ``ChatRequest``: system to a system message, content blocks to content
parts, ``tool_result`` blocks to tool messages, tools and ``tool_choice`` to OpenAI's."""

from __future__ import annotations

import binascii
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import BadRequestError
from ..gateway import parse_request
from ..types import ChatRequest

__all__ = ["MessagesRequest", "to_chat_request"]


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
    type: Literal["thinking", "redacted_thinking"]


Block = Annotated[
    TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


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
    turnout: dict[str, Any] | None = None
    """Turnout's own routing hints (``strategy``, ``priority``, ...), as on the OpenAI route."""


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


def _part(block: Any, where: str) -> dict[str, Any] | None:
    """A user content block as an OpenAI content part (None: nothing to carry)."""
    if isinstance(block, TextBlock):
        part: dict[str, Any] = {"type": "text", "text": block.text}
        cache = (block.model_extra or {}).get("cache_control")
        return {**part, "cache_control": cache} if cache else part
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
    if isinstance(block, ThinkingBlock):
        return None  # reasoning of an earlier turn: no canonical place for it
    raise _refuse(f"{where}: a {block.type} block cannot appear in a user turn", where)


def _tool_result(block: ToolResultBlock, where: str) -> dict[str, Any]:
    content = block.content
    if isinstance(content, list):
        texts = []
        for item in content:
            if not isinstance(item, TextBlock):
                raise _refuse(f"{where}: only text can be returned in a tool_result", where)
            texts.append(item.text)
        content = "".join(texts)
    text = content or ""
    if block.is_error:
        text = f"[tool error] {text}"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _assistant(blocks: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = orjson.dumps(block.input).decode()
            calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": arguments},
                }
            )
        elif not isinstance(block, ThinkingBlock):
            raise _refuse(
                f"{where}.content.{i}: a {block.type} block cannot appear in an assistant turn",
                where,
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
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
            tools.append({"type": "function", "function": fn})
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
    if not isinstance(obj, dict):
        raise BadRequestError("the request body must be a JSON object")
    try:
        req = MessagesRequest.model_validate(obj)
    except ValidationError as exc:
        message, param = _describe(exc)
        raise BadRequestError(message, param=param) from None
    chat: dict[str, Any] = {
        "model": req.model,
        "messages": _messages(req),
        "max_tokens": req.max_tokens,
        **_tools(req),
    }
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
