"""``POST /api/feedback``: a score for a request the gateway served, named by its
``x-request-id``. Stored beside the request's record (``request_feedback``) and, when this
process routed the request with an embedding (a ``learned`` route), turned into an outcome
that ``learned`` routing reads from then on (and after a restart, from the database).

A gateway key may score only its own requests: another key's request is answered 404, as
an unknown one is, so a key learns nothing of the requests of others. The master key (or
anyone on a server without one) may score any request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import BadRequestError, NotFoundError
from .admin import accounting_of
from .ingress import caller_of, endpoint

__all__ = ["Feedback", "feedback_routes", "load_feedback_outcomes"]


class Feedback(BaseModel):
    """The body of ``POST /api/feedback``: ``score`` (0..1) or ``thumbs``, not both."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    """The ``x-request-id`` of the response being scored."""
    score: float | None = Field(default=None, ge=0, le=1)
    thumbs: Literal["up", "down"] | None = None
    """``up`` is a score of 1, ``down`` of 0."""
    comment: str | None = Field(default=None, max_length=2000)
    label: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _one_score(self) -> Feedback:
        if (self.score is None) == (self.thumbs is None):
            raise ValueError("give a score (0..1) or thumbs ('up' or 'down'), exactly one")
        return self

    @property
    def value(self) -> float:
        if self.score is not None:
            return self.score
        return 1.0 if self.thumbs == "up" else 0.0


async def post_feedback(request: Request) -> Response:
    accounting = accounting_of(request)
    caller = caller_of(request)
    raw = await request.body()
    try:
        body = Feedback.model_validate(orjson.loads(raw or b"null"))
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise BadRequestError(
            f"invalid feedback: {loc + ': ' if loc else ''}{err['msg']}", param=loc or None
        ) from None
    db = accounting.db
    assert db is not None
    await accounting.migrated.wait()
    if accounting.request_log is not None:
        await accounting.request_log.flush(timeout=5.0)  # a request answered a moment ago
    key_id = caller.key_id
    found = await asyncio.to_thread(db.find_request, body.request_id, key_id)
    if found is None:
        raise NotFoundError(
            f"no request '{body.request_id}' "
            f"{'served to this key' if key_id else 'in the request log'}",
            param="request_id",
            code="request_not_found",
        )
    planner = request.app.state.gateway.planner
    outcomes = planner.feedback
    vector = outcomes.vector(body.request_id)
    deployment = found["deployment"]
    row: dict[str, Any] = {
        "request_id": body.request_id,
        "key_id": key_id,
        "ts": time.time(),
        "route": found["route"],
        "deployment": deployment,
        "score": body.value,
        "comment": body.comment,
        "label": body.label,
        "embedding": [round(float(x), 5) for x in vector] if vector is not None else None,
    }
    await asyncio.to_thread(db.save_feedback, row)
    learned = vector is not None and deployment is not None
    if deployment is not None:
        outcomes.add([(vector, deployment, body.value, found["route"])])
    return Response(
        orjson.dumps(
            {
                "request_id": body.request_id,
                "score": body.value,
                "deployment": deployment,
                "comment": body.comment,
                "label": body.label,
                "outcome": learned,
            }
        ),
        media_type="application/json",
    )


async def load_feedback_outcomes(app: Any) -> None:
    """At start-up: the stored feedback with embeddings into the planner's outcomes."""
    accounting = app.state.accounting
    if accounting is None or accounting.db is None:
        return
    await accounting.migrated.wait()
    rows = await asyncio.to_thread(accounting.db.feedback_outcomes)
    app.state.gateway.planner.feedback.add(rows)


def feedback_routes() -> list[Route]:
    return [
        Route(
            "/api/feedback",
            endpoint(post_feedback, "caller", surface="the feedback API"),
            methods=["POST"],
        )
    ]


FEEDBACK_SCHEMAS: dict[str, Any] = {
    "Feedback": {
        "type": "object",
        "required": ["request_id"],
        "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": 128},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "thumbs": {"enum": ["up", "down"]},
            "comment": {"type": "string", "maxLength": 2000},
            "label": {"type": "string", "maxLength": 100},
        },
        "description": "score (0..1) or thumbs, exactly one",
    },
    "FeedbackStored": {
        "type": "object",
        "required": ["request_id", "score", "deployment", "outcome"],
        "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string"},
            "score": {"type": "number"},
            "deployment": {"type": ["string", "null"]},
            "comment": {"type": ["string", "null"]},
            "label": {"type": ["string", "null"]},
            "outcome": {
                "type": "boolean",
                "description": "true when it became an outcome for learned routing",
            },
        },
    },
}


def feedback_paths(errors: Any) -> dict[str, Any]:
    def ref(name: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}

    return {
        "/api/feedback": {
            "post": {
                "summary": "Score a served request (by its x-request-id); a gateway key may "
                "score only its own requests (another key's is 404)",
                "requestBody": {"required": True, "content": ref("Feedback")},
                "responses": {
                    "200": {"description": "stored", "content": ref("FeedbackStored")},
                    **errors(400, 401, 404, 503),
                },
            }
        }
    }
