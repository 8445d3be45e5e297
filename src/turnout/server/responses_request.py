"""OpenAI Responses requests, as the ingress (``POST /v1/responses``) receives them, turned
into the canonical ``ChatRequest``: ``instructions`` to a system message, input items (messages
with ``input_text`` / ``output_text`` / ``input_image`` content, ``function_call`` and
``function_call_output``) to chat messages, function tools and ``tool_choice`` to Chat
Completions', ``text.format`` to ``response_format``, ``reasoning.effort`` to
``reasoning_effort``. Items of an earlier stored response (``previous_response_id``) come
first, so the backend sees the whole conversation.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import BadRequestError
from ..gateway import parse_request
from ..types import ChatRequest

__all__ = ["ResponsesRequest", "input_items", "item_id", "parse_responses", "to_chat_request"]


class Reasoning(BaseModel):
    model_config = ConfigDict(extra="allow")
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, min_length=1, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(BaseModel):
    """What ``POST /v1/responses`` accepts. Unknown fields are refused, as OpenAI does; the
    few below that only tune OpenAI's own service (``include``, ``truncation``,
    ``service_tier``, ``prompt_cache_key``, ``prompt_cache_retention``, ``safety_identifier``,
    ``top_logprobs``, ``max_tool_calls``) are accepted and ignored; ``background``, stored
    ``prompt`` templates and ``conversation`` objects live on OpenAI's platform only."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, strict=True)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    reasoning: Reasoning | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    user: str | None = None
    stream: bool | None = Field(default=None, strict=True)
    store: bool | None = Field(default=None, strict=True)
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=64)
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    prompt_cache_retention: str | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_tool_calls: int | None = Field(default=None, ge=1)
    background: Literal[False] | None = None
    """True (a response run in the background, polled later) is OpenAI's platform only."""
    stream_options: dict[str, Any] | None = None
    turnout: dict[str, Any] | None = None
    """Turnout's own routing hints (``strategy``, ``priority``, ...), as on the chat route."""


def _describe(exc: ValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:5]]
    first = ".".join(str(p) for p in errors[0]["loc"]) if errors else None
    more = len(errors) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else ""), first or None


def parse_responses(obj: Any) -> ResponsesRequest:
    """The validated body; ``BadRequestError`` names each wrong field."""
    if not isinstance(obj, dict):
        raise BadRequestError("the request body must be a JSON object")
    try:
        req = ResponsesRequest.model_validate(obj)
    except ValidationError as exc:
        message, param = _describe(exc)
        raise BadRequestError(f"invalid request: {message}", param=param) from None
    if req.input is None and req.previous_response_id is None:
        raise BadRequestError("input: required (a string or a list of input items)", param="input")
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type == "json_schema" and (not fmt.name or fmt.schema_ is None):
        raise BadRequestError(
            "text.format: a json_schema format needs 'name' and 'schema'", param="text.format"
        )
    return req


def item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def input_items(req: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input as a list of items, each with an ``id`` (as the API lists them:
    a string input is one user message)."""
    raw = req.input
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    out = []
    for i, item in enumerate(raw):
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                content = [{"type": part, "text": content}]
            if not isinstance(content, list):
                raise BadRequestError(
                    f"input.{i}.content: must be a string or a list of content parts",
                    param=f"input.{i}.content",
                )
            item = {**item, "type": "message", "content": content}
            item.setdefault("status", "completed")
            item.setdefault("id", item_id("msg"))
        elif kind in ("function_call", "function_call_output"):
            item = {**item}
            item.setdefault("id", item_id("fc" if kind == "function_call" else "fco"))
            item.setdefault("status", "completed")
        out.append(item)
    return out


# --- items to chat messages ------------------------------------------------------------------


def _refuse(message: str, param: str) -> BadRequestError:
    return BadRequestError(message, param=param)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _refuse(f"{where}: must be a string", where)
    return value


def _part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _refuse(f"{where}: a content part must be an object", where)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": _text(part.get("text"), f"{where}.text")}
    if kind == "refusal":
        return {"type": "text", "text": _text(part.get("refusal"), f"{where}.refusal")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise _refuse(
                f"{where}: an input_image needs an image_url (a URL or a data URL); "
                "file_id images live in OpenAI's file store, which the gateway has not",
                f"{where}.image_url",
            )
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("auto", "low", "high"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and isinstance(part.get("file_data"), str):
        name = part.get("filename") or "document.pdf"
        return {"type": "file", "file": {"file_data": part["file_data"], "filename": name}}
    raise _refuse(
        f"{where}.type: this content type is not supported (input_text, output_text, refusal, "
        "input_image with an image_url, input_file with file_data are)",
        f"{where}.type",
    )


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise _refuse(
            f"{where}.role: must be one of user, assistant, system, developer", f"{where}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _refuse(f"{where}.content: must be a string or a list", f"{where}.content")
    parts = [_part(p, f"{where}.content.{n}") for n, p in enumerate(content)]
    if role != "user":
        if any(p["type"] != "text" for p in parts):
            raise _refuse(f"{where}.content: a {role} message takes text only", f"{where}.content")
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": role, "content": parts[0]["text"]}  # what every backend takes
    return {"role": role, "content": parts}


def _call(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise _refuse(f"{where}.call_id: required", f"{where}.call_id")
    if not isinstance(name, str) or not name:
        raise _refuse(f"{where}.name: required", f"{where}.name")
    arguments = _text(item.get("arguments"), f"{where}.arguments")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _output_text(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(_part(p, f"{where}.{n}").get("text", "") for n, p in enumerate(output))
    raise _refuse(f"{where}: must be a string or a list of content parts", where)


def to_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages for a list of Responses items. Consecutive ``function_call`` items (and
    the assistant text before them) make one assistant turn with several tool calls."""
    out: list[dict[str, Any]] = []
    called: set[str] = set()
    for n, item in enumerate(items):
        where = f"input.{n}"
        if not isinstance(item, dict):
            raise _refuse(f"{where}: an input item must be an object", where)
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            call = _call(item, where)
            called.add(call["id"])
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if call_id not in called:
                raise _refuse(
                    f"{where}.call_id: no function_call with this call_id comes before this "
                    "output (in this input, or the stored conversation it continues)",
                    f"{where}.call_id",
                )
            text = _output_text(item.get("output"), f"{where}.output")
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind == "reasoning":
            continue  # an earlier turn's reasoning: no canonical place for it
        else:
            raise _refuse(
                f"{where}.type: this item type is not supported (message, function_call, "
                "function_call_output and reasoning are)",
                f"{where}.type",
            )
    return out


def _tools(req: ResponsesRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if req.tools:
        tools = []
        for i, tool in enumerate(req.tools):
            if tool.get("type") != "function":
                raise _refuse(
                    f"tools.{i}.type: built-in tools (web_search, file_search, ...) run only on "
                    "OpenAI's platform; the gateway takes function tools",
                    f"tools.{i}.type",
                )
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise _refuse(f"tools.{i}.name: required", f"tools.{i}.name")
            fn: dict[str, Any] = {"name": name}
            for key in ("description", "parameters", "strict"):
                if tool.get(key) is not None:
                    fn[key] = tool[key]
            tools.append({"type": "function", "function": fn})
        fields["tools"] = tools
    choice = req.tool_choice
    if isinstance(choice, dict):
        if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
            raise _refuse(
                "tool_choice: must be none, auto, required or {'type': 'function', 'name': ...}",
                "tool_choice",
            )
        fields["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None:
        fields["tool_choice"] = choice
    if req.parallel_tool_calls is not None and req.tools:
        fields["parallel_tool_calls"] = req.parallel_tool_calls
    return fields


def _response_format(fmt: TextFormat) -> dict[str, Any]:
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
    if fmt.description is not None:
        schema["description"] = fmt.description
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": schema}


def to_chat_request(req: ResponsesRequest, items: list[dict[str, Any]]) -> ChatRequest:
    """The canonical request for ``req`` whose whole input (earlier turns first) is
    ``items``."""
    messages = to_messages(items)
    if req.instructions:
        messages.insert(0, {"role": "system", "content": req.instructions})
    if not any(m["role"] != "system" for m in messages):
        raise BadRequestError(
            "input: at least one user or assistant item is required", param="input"
        )
    chat: dict[str, Any] = {"model": req.model, "messages": messages, **_tools(req)}
    if req.max_output_tokens is not None:
        chat["max_completion_tokens"] = req.max_output_tokens
    for name in ("temperature", "top_p", "user", "turnout"):
        value = getattr(req, name)
        if value is not None:
            chat[name] = value
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type != "text":
        chat["response_format"] = _response_format(fmt)
    if req.reasoning is not None and req.reasoning.effort is not None:
        chat["reasoning_effort"] = req.reasoning.effort
    if req.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return parse_request(chat)
