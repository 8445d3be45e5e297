"""The canonical shapes: a chat request (OpenAI Chat Completions is the lingua franca), the
result, the stream events and the usage every adapter reports.

Requests are pydantic models (they arrive from outside and must be validated); results and
events are slotted dataclasses (built on the hot path by our own code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .config import Priority, StrategyName
from .errors import VerificationFailedError

__all__ = [
    "AssistantMessage",
    "ChatRequest",
    "ChatResult",
    "Choice",
    "ContentPart",
    "DeveloperMessage",
    "EmbeddingRequest",
    "EmbeddingResult",
    "Finish",
    "FunctionCall",
    "ImagePart",
    "Message",
    "RoutingHints",
    "StreamEvent",
    "SystemMessage",
    "TextDelta",
    "TextPart",
    "ThinkingDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolMessage",
    "Usage",
    "UsageUpdate",
    "UserMessage",
    "whole_cost",
]


class _Open(BaseModel):
    """Known fields validated, unknown fields kept (they pass through to OpenAI hosts)."""

    model_config = ConfigDict(extra="allow")


# --- content parts -------------------------------------------------------------------------


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImageURL(_Open):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudioPart(_Open):
    type: Literal["input_audio"]
    input_audio: dict[str, Any]


class FilePart(_Open):
    type: Literal["file"]
    file: dict[str, Any]


class RefusalPart(_Open):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    TextPart | ImagePart | InputAudioPart | FilePart | RefusalPart, Field(discriminator="type")
]


# --- messages ------------------------------------------------------------------------------


class FunctionCall(_Open):
    name: str
    arguments: str


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Open):
    role: Literal["system"]
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Open):
    role: Literal["developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Open):
    role: Literal["user"]
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(_Open):
    role: Literal["assistant"]
    content: str | list[TextPart | RefusalPart] | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    name: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None
    """The turn's reasoning as Anthropic blocks (``thinking`` with its ``signature``,
    ``redacted_thinking`` with its ``data``), in order, before the content: sent back to the
    backends that verify them (Anthropic, Bedrock Converse), dropped for the others."""


class ToolMessage(_Open):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


# --- tools and formats ---------------------------------------------------------------------


class FunctionDefinition(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"]
    function: FunctionDefinition


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: dict[str, str]


class JSONSchemaFormat(_Open):
    name: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class RoutingHints(BaseModel):
    """The caller's say in routing, sent as the body field ``turnout`` (never forwarded
    upstream) or, for the strategy, the ``x-turnout-strategy`` header."""

    model_config = ConfigDict(extra="forbid")

    strategy: StrategyName | None = None
    priority: Priority | None = None
    """``auto`` only: optimise for speed, quality, cost or a balance of cost and quality."""
    deployment: str | None = None
    """``manual``: the exact deployment of the route to use (``provider:model``)."""
    caller: str | None = None
    """Who is asking, for sticky A/B splits (defaults to the ``user`` field)."""
    task: str | None = None
    """The task label, when the caller knows it (skips the classifier)."""


_GATEWAY_ONLY = frozenset({"turnout"})


class ChatRequest(_Open):
    """An OpenAI Chat Completions request. ``model`` names a route, an alias or
    ``provider:model``; unknown top-level fields are kept in ``model_extra``."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    user: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    turnout: RoutingHints | None = None

    @property
    def output_limit(self) -> int | None:
        """The caller's output cap, whichever of the two names it used."""
        return self.max_completion_tokens or self.max_tokens

    def set_fields(self) -> set[str]:
        """Names of every top-level field the caller actually sent (known or extra)."""
        return (set(self.model_fields_set) | set(self.model_extra or ())) - _GATEWAY_ONLY

    def to_openai(self) -> dict[str, Any]:
        """The request as an OpenAI JSON body: only what the caller set, extras included."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True, exclude={"turnout"})


class EmbeddingRequest(_Open):
    """An embeddings request, OpenAI's ``/v1/embeddings`` body: ``input`` is one text, a list
    of texts, one token array or a list of token arrays (token arrays only reach upstreams
    that take them: OpenAI-compatible hosts)."""

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    turnout: RoutingHints | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value:
                raise ValueError("must not be an empty string")
        elif not value:
            raise ValueError("must not be an empty list")
        elif isinstance(value[0], list) and not all(value):
            raise ValueError("no token array may be empty")
        elif isinstance(value[0], str) and not all(value):
            raise ValueError("no text may be empty")
        return value

    @property
    def texts(self) -> list[str] | None:
        """The input as a list of texts; None when it is token arrays."""
        if isinstance(self.input, str):
            return [self.input]
        if isinstance(self.input[0], str):
            return list(self.input)
        return None

    @property
    def tokens(self) -> list[list[int]] | None:
        """The input as a list of token arrays; None when it is text."""
        if isinstance(self.input, str) or isinstance(self.input[0], str):
            return None
        if isinstance(self.input[0], int):
            return [self.input]
        return list(self.input)

    def to_openai(self) -> dict[str, Any]:
        """The request as an OpenAI JSON body: what the caller set, extras included (vectors
        are always asked for as floats: the ingress encodes them as its client asked)."""
        body = self.model_dump(mode="json", exclude_unset=True, exclude={"turnout"})
        body.pop("encoding_format", None)
        return body


# --- results -------------------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    """Every input token, cache reads and writes included (OpenAI's count)."""
    completion_tokens: int = 0
    cached_tokens: int = 0
    """The part of ``prompt_tokens`` read from the provider's prompt cache."""
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    """The part of ``prompt_tokens`` written to the provider's prompt cache (Anthropic's
    ``cache_creation_input_tokens``, Bedrock's ``cacheWriteInputTokens``)."""
    cache_write_1h_tokens: int = 0
    """The part of ``cache_write_tokens`` written with a one-hour lifetime (priced higher
    than the default five minutes)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(slots=True)
class Choice:
    index: int = 0
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    refusal: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Upstream message fields we do not model (e.g. ``reasoning_content``), kept verbatim;
    ``thinking_blocks`` holds Anthropic-style reasoning blocks with their signatures, which a
    client sends back on its next turn (see ``AssistantMessage``)."""
    stop_sequence: str | None = None
    """The caller's stop sequence that ended the answer, when the backend says which."""


@dataclass(slots=True)
class ChatResult:
    """A finished completion, whether it arrived whole or was assembled from a stream."""

    id: str
    model: str
    provider: str
    choices: list[Choice]
    usage: Usage
    created: int
    deployment: str = ""
    time_to_first_token: float | None = None
    latency: float | None = None
    system_fingerprint: str | None = None
    attempts: int = 1
    failed_attempts: list[Any] = field(default_factory=list)
    """The ``errors.Attempt`` of each deployment that failed before this one answered."""
    strategy: str = ""
    """The routing strategy that ordered the deployments (for x-turnout-strategy)."""
    task: str | None = None
    """The request's task label, when task-aware routing classified it."""
    estimates: str | None = None
    """``learned`` routing's estimates per candidate (for x-turnout-estimates)."""
    cost: float | None = None
    """USD from the catalogue's prices and the real usage (cached tokens at the cached rate);
    None when the model's prices are unknown."""
    cascade: str | None = None
    """``cascade`` routing: the step that answered and whether it passed (x-turnout-cascade)."""
    judged: list[Any] = field(default_factory=list)
    """``cascade`` routing: the judge's answers (``ChatResult``), billed with the request."""

    @property
    def text(self) -> str:
        return self.choices[0].content or "" if self.choices else ""

    @property
    def request_cost(self) -> float | None:
        """What the whole request cost (``whole_cost``): ``cost`` plus, on a cascade, every
        rejected step's and every judge call's."""
        return whole_cost(self.cost, self.failed_attempts, self.judged)


def whole_cost(cost: float | None, failed_attempts: list[Any], judged: list[Any]) -> float | None:
    """USD for every call a request paid for: the answer's ``cost``, each cascade step whose
    answer was rejected (``VerificationFailedError.cost``; other failed attempts answered
    nothing and cost nothing) and each judge call (with its own steps and judges, when the
    judge is a cascade). What the key is billed and the request log's records of the request
    sum to (an unknown price counts as 0 there too); None when no call has a known price."""
    parts = [cost]
    parts += [a.error.cost for a in failed_attempts if isinstance(a.error, VerificationFailedError)]
    parts += [j.request_cost for j in judged]
    known = [p for p in parts if p is not None]
    return sum(known) if known else None


@dataclass(slots=True)
class EmbeddingResult:
    """Vectors in input order, with who served them and what they cost (the fields the
    request log and the metrics read are those of ``ChatResult``)."""

    model: str
    provider: str
    vectors: list[list[float]]
    usage: Usage
    deployment: str = ""
    id: str = ""
    time_to_first_token: float | None = None
    latency: float | None = None
    attempts: int = 1
    failed_attempts: list[Any] = field(default_factory=list)
    strategy: str = ""
    task: str | None = None
    estimates: str | None = None
    cost: float | None = None

    @property
    def request_cost(self) -> float | None:
        """What the whole request cost: the one call's ``cost`` (embeddings have no
        cascade)."""
        return self.cost


# --- stream events -------------------------------------------------------------------------


@dataclass(slots=True)
class TextDelta:
    text: str
    choice: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a tool call: the first piece of each call carries id and name, later pieces
    carry argument fragments that concatenate to the full JSON arguments."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    choice: int = 0
    extra: dict[str, Any] | None = None
    """Provider fields the caller must send back with the call (Gemini's thought signature as
    ``extra_content``), carried on the first piece and merged into the assembled call."""


@dataclass(slots=True)
class ThinkingDelta:
    """A piece of the model's reasoning. Blocks are numbered (``block``) in the order they
    arrive; each piece carries ``thinking`` text, the block's ``signature`` (Anthropic sends it
    last), or ``redacted`` (the opaque data of a ``redacted_thinking`` block, whole)."""

    thinking: str = ""
    signature: str | None = None
    redacted: str | None = None
    block: int = 0
    choice: int = 0


@dataclass(slots=True)
class Finish:
    reason: str
    choice: int = 0
    stop_sequence: str | None = None
    """The caller's stop sequence that ended the answer, when the backend says which."""


@dataclass(slots=True)
class UsageUpdate:
    usage: Usage


StreamEvent = TextDelta | ToolCallDelta | ThinkingDelta | Finish | UsageUpdate
