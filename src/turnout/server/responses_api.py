"""The stored-response operations of the Responses surface: ``GET`` and ``DELETE
/v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items`` (paged with ``after``,
``limit`` and ``order``). A gateway key sees only the responses made with it: another key's
is a 404, as is one past retention. ``POST /v1/responses`` is the ingress's
(``responses_handler``)."""

from __future__ import annotations

from typing import Literal, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..accounting.responses import ResponseStore, StoredResponse
from ..errors import BadRequestError, NotFoundError
from .dialect import json_response
from .ingress import caller_of, endpoint, response_store, responses_handler
from .responses_wire import OPENAI_RESPONSES

__all__ = ["responses_routes"]

_LIMIT_MAX = 100


def _store(request: Request) -> ResponseStore:
    store = response_store(request)
    if store is None:
        raise NotFoundError(
            "this server keeps no responses (database_url is none)", code="not_found"
        )
    return store


def _missing(id: str) -> NotFoundError:
    return NotFoundError(
        f"Response with id '{id}' not found.", param="response_id", code="not_found"
    )


async def _find(request: Request) -> tuple[str, StoredResponse]:
    id = request.path_params["response_id"]
    caller = caller_of(request)
    found = await _store(request).get(id, caller.key_id, caller.key is None)
    if found is None:
        raise _missing(id)
    return id, found


async def get_response(request: Request) -> Response:
    _, found = await _find(request)
    return json_response(found.response)


async def delete_response(request: Request) -> Response:
    id = request.path_params["response_id"]
    caller = caller_of(request)
    if not await _store(request).delete(id, caller.key_id, caller.key is None):
        raise _missing(id)
    return json_response({"id": id, "object": "response.deleted", "deleted": True})


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= _LIMIT_MAX:
        raise BadRequestError(f"limit: an integer from 1 to {_LIMIT_MAX}", param="limit")
    return int(raw)


async def list_input_items(request: Request) -> Response:
    query = request.query_params
    limit = _limit(query.get("limit"))
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequestError("order: 'asc' or 'desc'", param="order")
    _, found = await _find(request)
    data, more = ResponseStore.page(
        found.input_items,
        after=query.get("after"),
        limit=limit,
        order=cast(Literal["asc", "desc"], order),
    )
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0].get("id") if data else None,
            "last_id": data[-1].get("id") if data else None,
            "has_more": more,
        }
    )


def responses_routes() -> list[Route]:
    create = endpoint(responses_handler(OPENAI_RESPONSES), "caller", dialect=OPENAI_RESPONSES)
    return [
        Route("/v1/responses", create, methods=["POST"]),
        Route("/responses", create, methods=["POST"]),
        Route(
            "/v1/responses/{response_id}",
            endpoint(get_response, "caller", dialect=OPENAI_RESPONSES),
            methods=["GET"],
        ),
        Route(
            "/v1/responses/{response_id}",
            endpoint(delete_response, "caller", dialect=OPENAI_RESPONSES),
            methods=["DELETE"],
        ),
        Route(
            "/v1/responses/{response_id}/input_items",
            endpoint(list_input_items, "caller", dialect=OPENAI_RESPONSES),
            methods=["GET"],
        ),
    ]
