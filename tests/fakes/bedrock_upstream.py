"""A fake Bedrock Runtime (Converse, ConverseStream) and the ListFoundationModels call of the
Bedrock control plane, on loopback, scripted per test with the vendor-neutral steps.

Faithful to the service model in ``../shared/specs``: request bodies are validated against it
(an invalid one gets the 400 ``ValidationException`` real Bedrock sends), errors carry
``x-amzn-ErrorType`` and a ``{"message"}`` body, streams are binary
``application/vnd.amazon.eventstream`` frames with both CRC32 checksums, and every request must
carry a well-formed SigV4 ``Authorization`` (signing name ``bedrock``) or a Bearer API key.
Give it ``credentials`` and it also recomputes each SigV4 signature with botocore and refuses a
wrong one. botocore has a decoder for event streams but no encoder: ``frame`` is that encoder.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import struct
import zlib
from typing import Any

import orjson
from aiohttp import web

from . import bedrock_schema
from .openai_upstream import fake_vector
from .script import Cut, Fail, FakeUpstream, Hang, Raw, Reply, StreamError, drop

__all__ = [
    "FakeBedrock",
    "StreamError",
    "converse_response",
    "event",
    "fake_count",
    "frame",
    "stream_events",
]

_ids = itertools.count(1)

# --- event-stream encoding -----------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # type 7 = string: 2-byte length, then UTF-8
    return (
        struct.pack("B", len(raw_name))
        + raw_name
        + b"\x07"
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, prelude CRC32),
    headers, payload, message CRC32."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    return frame(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        orjson.dumps(payload),
    )


def exception(exception_type: str, payload: dict[str, Any]) -> bytes:
    return frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        orjson.dumps(payload),
    )


# --- rendering the neutral steps -----------------------------------------------------------

_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"  # real events carry a "p" padding member


def _words(node: Any) -> int:
    if isinstance(node, str):
        return len(node.split())
    if isinstance(node, dict):
        return sum(_words(v) for k, v in node.items() if k not in ("signature", "type"))
    if isinstance(node, list):
        return sum(_words(v) for v in node)
    return 0


def fake_count(counted: dict[str, Any]) -> int:
    """The fake's CountTokens answer: every word of every string of the input, plus 3 a
    message (a deterministic stand-in for a model's tokenizer)."""
    converse = counted.get("converse") or {}
    return 3 * len(converse.get("messages") or ()) + _words(counted)


def usage(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {
        "inputTokens": reply.prompt_tokens - reply.cached_tokens,
        "outputTokens": reply.completion_tokens,
        "totalTokens": reply.prompt_tokens + reply.completion_tokens,
    }
    if reply.cached_tokens:
        out["cacheReadInputTokens"] = reply.cached_tokens
        out["cacheWriteInputTokens"] = 0
    return out


def converse_response(reply: Reply) -> dict[str, Any]:
    if reply.tool_call:
        name, args = reply.tool_call
        content: list[dict[str, Any]] = [
            {"toolUse": {"toolUseId": "tooluse_fake_1", "name": name, "input": orjson.loads(args)}}
        ]
        stop = "tool_use"
    else:
        content, stop = [{"text": reply.text}], "end_turn"
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": usage(reply),
        "metrics": {"latencyMs": 42},
    }


def stream_events(reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    if reply.tool_call:
        name, args = reply.tool_call
        out.append(
            (
                "contentBlockStart",
                {
                    "contentBlockIndex": 0,
                    "start": {"toolUse": {"toolUseId": "tooluse_fake_1", "name": name}},
                },
            )
        )
        for i in range(0, len(args), 4):
            out.append(
                (
                    "contentBlockDelta",
                    {"contentBlockIndex": 0, "delta": {"toolUse": {"input": args[i : i + 4]}}},
                )
            )
        stop = "tool_use"
    else:
        words = reply.text.split(" ")
        for n, word in enumerate(words):
            text = word if n == len(words) - 1 else word + " "
            out.append(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}}))
        stop = "end_turn"
    out.append(("contentBlockStop", {"contentBlockIndex": 0}))
    out.append(("messageStop", {"stopReason": stop}))
    out.append(("metadata", {"usage": usage(reply), "metrics": {"latencyMs": 42}}))
    return [(kind, {**payload, "p": _PAD[: 4 + n % 20]}) for n, (kind, payload) in enumerate(out)]


# status -> (status sent, exception name), as Bedrock and AWS's front door answer them
_EXCEPTIONS = {
    400: (400, "ValidationException"),
    401: (403, "UnrecognizedClientException"),
    403: (403, "AccessDeniedException"),
    404: (404, "ResourceNotFoundException"),
    408: (408, "ModelTimeoutException"),
    424: (424, "ModelErrorException"),
    429: (429, "ThrottlingException"),
    500: (500, "InternalServerException"),
    503: (503, "ServiceUnavailableException"),
    529: (503, "ServiceUnavailableException"),
}


def error_response(
    status: int, name: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"message": message},
        status=status,
        headers={
            "x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": f"fake-{next(_ids)}",
            **(headers or {}),
        },
    )


def fail_response(step: Fail) -> web.Response:
    status, name = _EXCEPTIONS.get(step.status, (step.status, "InternalServerException"))
    if step.code and step.code.endswith("Exception"):
        name = step.code
    return error_response(status, name, step.message, step.headers)


# --- SigV4 ---------------------------------------------------------------------------------

_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[A-Za-z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)"
    r"/(?P<service>[a-z0-9-]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})"
)


def check_auth(
    request: web.Request, body: bytes, credentials: dict[str, str], bearer: set[str] | None
) -> web.Response | None:
    """None when the request is authorised, else the error AWS would send."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth[7:].strip()
        if token and (bearer is None or token in bearer):
            return None
        return error_response(403, "UnrecognizedClientException", "Invalid API Key format")
    if not auth:
        return error_response(
            403, "MissingAuthenticationTokenException", "Missing Authentication Token"
        )
    m = _SIGV4.fullmatch(auth)
    amz_date = request.headers.get("X-Amz-Date", "")
    if m is None or not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
        return error_response(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature', "
            "and the request an X-Amz-Date",
        )
    signed = m["signed"].split(";")
    if (
        m["service"] != "bedrock"
        or amz_date[:8] != m["date"]
        or not {"host", "x-amz-date"} <= set(signed)
        or signed != sorted(signed)
    ):
        return error_response(
            403, "InvalidSignatureException", "Credential should be scoped correctly"
        )
    if not credentials:
        return None
    secret = credentials.get(m["akid"])
    if secret is None:
        return error_response(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(
        method=request.method,
        url=f"http://{request.host}{request.raw_path}",
        data=body,
        headers={h: request.headers.get(h, "") for h in signed},
    )
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(
        Credentials(m["akid"], secret, request.headers.get("X-Amz-Security-Token")),
        "bedrock",
        m["region"],
    )
    expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    if expected != m["sig"]:
        return error_response(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return None


# --- the server ----------------------------------------------------------------------------

_HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
FOUNDATION_MODELS = [
    {
        "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{_HAIKU}",
        "modelId": _HAIKU,
        "modelName": "Claude 3 Haiku",
        "providerName": "Anthropic",
        "inputModalities": ["TEXT", "IMAGE"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "modelLifecycle": {"status": "ACTIVE"},
    }
]


class FakeBedrock(FakeUpstream):
    def __init__(
        self, credentials: dict[str, str] | None = None, bearer: set[str] | None = None
    ) -> None:
        super().__init__()
        # The fake refuses what the service model refuses: load it now, so that a test using
        # the fake skips (tests/shared.py) when ../shared is absent, rather than seeing 500s.
        bedrock_schema.service_model()
        self.credentials = dict(credentials or {})
        """Access key id -> secret: when set, signatures are recomputed and checked."""
        self.bearer = bearer
        """Accepted Bedrock API keys; None accepts any non-empty one."""
        self.app.router.add_post("/model/{model_id}/converse", self.handle)
        self.app.router.add_post("/model/{model_id}/converse-stream", self.handle)
        self.app.router.add_get("/foundation-models", self._foundation_models)
        self.app.router.add_post("/model/{model_id}/invoke", self._invoke)
        self.app.router.add_post("/model/{model_id}/count-tokens", self._count_tokens)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        """CountTokens: the body checked against ``CountTokensRequest``, the count from
        ``fake_count`` (or the next script step when it is a ``Fail``)."""
        raw = await request.read()
        body = self._record(request, raw)
        denied = check_auth(request, raw, self.credentials, self.bearer)
        if denied is not None:
            return denied
        problems = bedrock_schema.errors(body, "CountTokensRequest")
        if problems:
            message = f"{len(problems)} validation error(s) detected: " + "; ".join(problems)
            return error_response(400, "ValidationException", message)
        if self.script and isinstance(self.script[0], Fail):
            return fail_response(self.script.popleft())
        return web.json_response({"inputTokens": fake_count(body["input"])})

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        """InvokeModel for the embedding models: Titan Text Embeddings (``inputText``) and
        Cohere Embed (``texts``, ``input_type`` required), a token per four characters in
        ``X-Amzn-Bedrock-Input-Token-Count``."""
        raw = await request.read()
        body = self._record(request, raw)
        denied = check_auth(request, raw, self.credentials, self.bearer)
        if denied is not None:
            return denied
        step = self.script.popleft() if self.script else Reply()
        if isinstance(step, Fail):
            name = "ValidationException" if step.status == 400 else "ServiceUnavailableException"
            return error_response(step.status, name, step.message)
        model = request.match_info["model_id"]
        if not isinstance(body, dict):
            return error_response(400, "ValidationException", "Malformed input request")
        if "titan-embed" in model and isinstance(body.get("inputText"), str):
            text = body["inputText"]
            out: dict[str, Any] = {
                "embedding": fake_vector(text, int(body.get("dimensions") or 8)),
                "inputTextTokenCount": max(1, len(text) // 4),
            }
            tokens = out["inputTextTokenCount"]
        elif "cohere.embed" in model and isinstance(body.get("texts"), list):
            if body.get("input_type") not in (
                "search_document",
                "search_query",
                "classification",
                "clustering",
            ):
                return error_response(400, "ValidationException", "input_type is required")
            texts = body["texts"]
            out = {
                "id": "fake-embed",
                "embeddings": [fake_vector(t, 8) for t in texts],
                "texts": texts,
                "response_type": "embeddings_floats",
            }
            tokens = sum(max(1, len(t) // 4) for t in texts)
        else:
            return error_response(400, "ValidationException", "Malformed input request")
        return web.json_response(out, headers={"X-Amzn-Bedrock-Input-Token-Count": str(tokens)})

    def _record(self, request: web.Request, raw: bytes) -> Any:
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None
        self.record(
            request, raw, body, raw_path=request.raw_path, model=request.match_info.get("model_id")
        )
        return body

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Record; refuse what Bedrock refuses (auth, then the service model) without using
        a script step; else render the next step."""
        raw = await request.read()
        body = self._record(request, raw)
        denied = check_auth(request, raw, self.credentials, self.bearer)
        if denied is not None:
            return denied
        if not isinstance(body, dict):
            return error_response(400, "ValidationException", "Malformed input request")
        stream = request.path.endswith("/converse-stream")
        shape = "ConverseStreamRequest" if stream else "ConverseRequest"
        problems = bedrock_schema.errors(body, shape)
        if problems:
            message = f"{len(problems)} validation error(s) detected: " + "; ".join(problems)
            return error_response(400, "ValidationException", message)
        step = self.script.popleft() if self.script else Reply()
        if isinstance(step, Raw):  # exactly these bytes (corrupt frames, ...)
            return web.Response(body=step.body, status=step.status, content_type=step.content_type)
        return await self.render(step, request, body)

    async def _foundation_models(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self._record(request, raw)
        denied = check_auth(request, raw, self.credentials, self.bearer)
        return denied or web.json_response({"modelSummaries": FOUNDATION_MODELS})

    async def render(
        self, step: Any, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        if isinstance(step, Fail):
            return fail_response(step)
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            step = Reply()
        reply = step if isinstance(step, Reply) else Reply(text="one two three four five")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if not request.path.endswith("/converse-stream"):
            return web.json_response(
                converse_response(reply), headers={"x-amzn-RequestId": f"fake-{next(_ids)}"}
            )
        frames = [event(kind, payload) for kind, payload in stream_events(reply)]
        resp = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                "x-amzn-RequestId": f"fake-{next(_ids)}",
            }
        )
        await resp.prepare(request)
        if isinstance(step, Cut):
            for f in frames[: step.keep]:
                await resp.write(f)
            return await drop(request, resp)
        if isinstance(step, StreamError):
            for f in frames[: 1 + step.after]:  # messageStart, then `after` text deltas
                await resp.write(f)
            await resp.write(
                exception(
                    "modelStreamErrorException",
                    {"message": step.message, "originalStatusCode": 500},
                )
            )
            await resp.write_eof()
            return resp
        for f in frames:
            if reply.split:
                for i in range(0, len(f), 7):
                    await resp.write(f[i : i + 7])
                    await asyncio.sleep(0)
            else:
                await resp.write(f)
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
        await resp.write_eof()
        return resp
