"""The OpenAI Responses dialect of the ingress (``POST /v1/responses``): the body parsed by
``responses_request``, results rendered as the ``response`` object, streams as the typed
events (``response.created`` ... ``response.completed``, each with its ``sequence_number``),
errors in the OpenAI shape. Pure functions from library types to JSON; any backend may have
answered, nothing here knows which one did."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import TurnoutError
from ..redaction import Redactor
from ..streaming import ChatStream
from ..types import (
    ChatRequest,
    ChatResult,
    Finish,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from .openai_wire import OpenAIErrors, cost_comment, error_body
from .responses_request import (
    ResponsesRequest,
    input_items,
    item_id,
    parse_responses,
    to_chat_request,
)

__all__ = [
    "OPENAI_RESPONSES",
    "OpenAIResponses",
    "ResponseStreamWriter",
    "ResponsesCall",
    "response_object",
]


@dataclass(slots=True)
class ResponsesCall:
    """One ``POST /v1/responses``: the validated body, the id its response gets, its own
    input items and the items of the conversation before it (``previous_response_id``)."""

    request: ResponsesRequest
    id: str = field(default_factory=lambda: item_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    items: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    stored: bool = True
    """Whether the response is kept (``store``, and a database to keep it in)."""

    @property
    def context(self) -> list[dict[str, Any]]:
        """Everything the model is given as input, earlier turns first."""
        return self.history + self.items


def usage_object(usage: Usage, cost: float | None) -> dict[str, Any]:
    """``ResponseUsage``, with ``cost_usd`` when the price is known (as on embeddings)."""
    out: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }
    if cost is not None:
        out["cost_usd"] = cost
    return out


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"id": id, "type": "message", "role": "assistant", "status": status, "content": parts}


def _call_item(id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _status(finish: str | None) -> tuple[str, dict[str, str] | None]:
    reason = _INCOMPLETE.get(finish or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_object(
    call: ResponsesCall,
    model: str,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` object; the request's settings echoed as OpenAI echoes them."""
    req = call.request
    fmt = req.text.format if req.text and req.text.format else None
    text: dict[str, Any] = {
        "format": fmt.model_dump(by_alias=True, exclude_none=True) if fmt else {"type": "text"}
    }
    reasoning = req.reasoning.model_dump() if req.reasoning else None
    body: dict[str, Any] = {
        "id": call.id,
        "object": "response",
        "created_at": call.created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": req.parallel_tool_calls is not False,
        "previous_response_id": req.previous_response_id,
        "reasoning": reasoning,
        "store": call.stored,
        "temperature": req.temperature if req.temperature is not None else 1.0,
        "text": text,
        "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
        "tools": [_tool(t) for t in req.tools or ()],
        "top_p": req.top_p if req.top_p is not None else 1.0,
        "truncation": req.truncation or "disabled",
        "metadata": req.metadata or {},
    }
    if usage is not None:  # none yet while a stream runs
        body["usage"] = usage
    if req.user is not None:
        body["user"] = req.user
    return body


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A function tool as the API echoes it: ``parameters`` and ``strict`` always there
    (``strict`` false unless asked: backends get the function as given)."""
    return {"parameters": None, **tool, "strict": bool(tool.get("strict"))}


def result_object(result: ChatResult, call: ResponsesCall, model: str) -> dict[str, Any]:
    """The ``response`` for a whole result: a message item for the text, a
    ``function_call`` item per tool call (first choice only: the API has no ``n``)."""
    choice = result.choices[0] if result.choices else None
    output: list[dict[str, Any]] = []
    reasoning = choice.extra.get("reasoning_content") if choice is not None else None
    if isinstance(reasoning, str) and reasoning:
        # The backend's reasoning text (Anthropic thinking, Gemini thoughts, ...): a reasoning
        # item, as the API gives one; a later turn's input leaves it out.
        part = {"type": "reasoning_text", "text": reasoning}
        item = {"id": item_id("rs"), "type": "reasoning", "summary": [], "content": [part]}
        output.append({**item, "status": "completed"})
    if choice is not None and (choice.content or choice.refusal or not choice.tool_calls):
        parts = [_text_part(choice.content or "")] if choice.content or not choice.refusal else []
        if choice.refusal:
            parts.append({"type": "refusal", "refusal": choice.refusal})
        output.append(_message_item(item_id("msg"), parts, "completed"))
    for tc in (choice.tool_calls if choice else None) or ():
        fn = tc.get("function") or {}
        call_id = tc.get("id") or item_id("call")
        output.append(
            _call_item(
                item_id("fc"), call_id, fn.get("name") or "", fn.get("arguments") or "", "completed"
            )
        )
    status, incomplete = _status(choice.finish_reason if choice else None)
    usage = usage_object(result.usage, result.request_cost)
    return response_object(
        call, model, status=status, output=output, usage=usage, incomplete=incomplete
    )


_FAILED_CODES = {429: "rate_limit_exceeded", 400: "invalid_prompt"}


class ResponseStreamWriter:
    """Stream events as the Responses API's typed SSE events for one response:
    ``response.created``, ``response.in_progress``, then per text run ``output_item.added``,
    ``content_part.added``, ``output_text.delta``..., ``output_text.done``,
    ``content_part.done``, ``output_item.done``, per tool call ``output_item.added``,
    ``function_call_arguments.delta``..., ``.done``, ``output_item.done``, and last
    ``response.completed`` (``response.incomplete`` when the output limit cut it; ``error``
    and ``response.failed`` when the backend failed mid-way). ``final`` holds the finished
    response object once ``end`` has run."""

    __slots__ = ("_call", "_finish", "_model", "_open", "_output", "_seq", "_tools", "final")

    def __init__(self, call: ResponsesCall, model: str) -> None:
        self._call = call
        self._model = model
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None
        """The item being streamed (a message or a function call), with its text so far."""
        self._tools: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self.final: dict[str, Any] | None = None

    def _frame(self, kind: str, data: dict[str, Any]) -> bytes:
        data = {"type": kind, **data, "sequence_number": self._seq}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(
            self._call,
            self._model,
            status=status,
            output=list(self._output),
            usage=extra.pop("usage", None),
            **extra,
        )

    def start(self) -> bytes:
        snapshot = self._snapshot("in_progress")
        return self._frame("response.created", {"response": snapshot}) + self._frame(
            "response.in_progress", {"response": snapshot}
        )

    def _close(self) -> bytes:
        item = self._open
        if item is None:
            return b""
        self._open = None
        index = item["index"]
        if item["type"] == "message":
            text = "".join(item["text"])
            part = _text_part(text)
            done = _message_item(item["id"], [part], "completed")
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out = self._frame("response.output_text.done", {**ids, "text": text, "logprobs": []})
            out += self._frame("response.content_part.done", {**ids, "part": part})
        else:
            arguments = "".join(item["text"])
            done = _call_item(item["id"], item["call_id"], item["name"], arguments, "completed")
            out = self._frame(
                "response.function_call_arguments.done",
                {
                    "item_id": item["id"],
                    "name": item["name"],
                    "output_index": index,
                    "arguments": arguments,
                },
            )
        self._output[index] = done
        return out + self._frame("response.output_item.done", {"output_index": index, "item": done})

    def _begin(self, item: dict[str, Any], state: dict[str, Any]) -> bytes:
        out = self._close()
        index = len(self._output)
        self._output.append(item)
        self._open = {**state, "index": index, "text": []}
        return out + self._frame(
            "response.output_item.added", {"output_index": index, "item": item}
        )

    def event(self, event: StreamEvent) -> bytes:
        if isinstance(event, UsageUpdate) or event.choice != 0:
            return b""  # usage goes once, in the final response
        if isinstance(event, ThinkingDelta):
            # Streams carry no reasoning events yet (docs/responses.md): a backend's streamed
            # thinking (Anthropic, Bedrock) is left out rather than failing the stream.
            return b""
        if isinstance(event, TextDelta):
            out = b""
            item = self._open
            if item is None or item["type"] != "message":
                id = item_id("msg")
                out = self._begin(
                    _message_item(id, [], "in_progress"), {"type": "message", "id": id}
                )
                item = self._open
                assert item is not None
                ids = {"item_id": id, "output_index": item["index"], "content_index": 0}
                out += self._frame("response.content_part.added", {**ids, "part": _text_part("")})
            item["text"].append(event.text)
            return out + self._frame(
                "response.output_text.delta",
                {
                    "item_id": item["id"],
                    "output_index": item["index"],
                    "content_index": 0,
                    "delta": event.text,
                    "logprobs": [],
                },
            )
        if isinstance(event, ToolCallDelta):
            out = b""
            state = self._tools.get(event.index)
            if state is None:
                id = item_id("fc")
                call_id = event.id or item_id("call")
                name = event.name or ""
                state = {"type": "function_call", "id": id, "call_id": call_id, "name": name}
                self._tools[event.index] = state
                out = self._begin(_call_item(id, call_id, name, "", "in_progress"), state)
            if self._open is None or self._open["id"] != state["id"]:
                # A late piece of a call already closed (a backend interleaving parallel
                # calls): no event can say it any more, but the final response has it.
                for item in self._output:
                    if item.get("id") == state["id"]:
                        item["arguments"] += event.arguments
                return out
            if event.arguments:
                self._open["text"].append(event.arguments)
                out += self._frame(
                    "response.function_call_arguments.delta",
                    {
                        "item_id": self._open["id"],
                        "output_index": self._open["index"],
                        "delta": event.arguments,
                    },
                )
            return out
        if isinstance(event, Finish):
            self._finish = event.reason
            return b""
        raise TypeError(f"unknown stream event {event!r}")

    def end(self, stream: ChatStream) -> bytes:
        out = self._close()
        status, incomplete = _status(self._finish)
        cost = stream.request_cost
        self.final = self._snapshot(
            status, usage=usage_object(stream.usage, cost), incomplete=incomplete
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + cost_comment(cost) + self._frame(kind, {"response": self.final})

    def error(self, err: TurnoutError, redact: Redactor) -> bytes:
        body = error_body(err, redact)["error"]
        out = self._frame(
            "error", {"code": body["code"], "message": body["message"], "param": body["param"]}
        )
        code = _FAILED_CODES.get(err.status_code, "server_error")
        failed = self._snapshot("failed", error={"code": code, "message": body["message"]})
        return out + self._frame("response.failed", {"response": failed})


class OpenAIResponses(OpenAIErrors):
    """``POST /v1/responses``; its errors in OpenAI's shape, as chat's."""

    name = "openai_responses"

    def parse(self, obj: Any) -> ResponsesCall:
        req = parse_responses(obj)
        return ResponsesCall(req, items=input_items(req))

    def chat_request(self, call: ResponsesCall) -> ChatRequest:
        return to_chat_request(call.request, call.context)

    def result(self, result: ChatResult, call: ResponsesCall, chat: ChatRequest) -> dict[str, Any]:
        return result_object(result, call, chat.model)

    def stream(self, call: ResponsesCall, chat: ChatRequest) -> ResponseStreamWriter:
        return ResponseStreamWriter(call, chat.model)


OPENAI_RESPONSES = OpenAIResponses()
