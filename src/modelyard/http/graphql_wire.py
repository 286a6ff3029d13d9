"""GraphQL over HTTP on the wire: request bodies, the response media type and status codes.

https://graphql.github.io/graphql-over-http/draft/ : a client that accepts
`application/graphql-response+json` is answered in it, and a request that fails before execution
(parse, validation, variables, a limit) then gets 400 and no `data`; `application/json` keeps 200
for every well-formed GraphQL response. A body that is not a GraphQL request at all is 400 (413
when too large, 429 when rate limited) in either, with a coded error in the usual shape.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from graphql import GraphQLError
from starlette.responses import Response
from starlette.types import Message, Receive
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData

from modelyard.errors import BodyTooLargeError, InvalidError, LimitError, ModelyardError
from modelyard.http.responses import error_headers

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MAX_NESTING = 64
"""Deepest JSON a request may hold: far beyond any input of this schema, far below the depth
at which json.loads runs out of stack (which would depend on where it is called from)."""


def response_media(accept: str | None) -> str:
    """`application/graphql-response+json` when the client names it at least as high as
    `application/json`; otherwise (no Accept, `*/*`, anything else) `application/json`."""
    preference = {GRAPHQL_RESPONSE: 0.0, JSON: 0.0}
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() not in preference:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        preference[media.lower()] = max(preference[media.lower()], q)
    wanted = preference[GRAPHQL_RESPONSE]
    return GRAPHQL_RESPONSE if wanted > 0 and wanted >= preference[JSON] else JSON


def failed_before_execution(data: object, errors: list[GraphQLError] | None) -> bool:
    """A request error: nothing ran (field errors carry a path; parse, validation, variable and
    limit errors do not)."""
    return data is None and bool(errors) and all(e.path is None for e in errors or ())


def status_for(body: GraphQLHTTPResponse | list[GraphQLHTTPResponse], media: str) -> int:
    """The status of a GraphQL response: 200, but 4xx/5xx for a request error in the new media type."""
    if media != GRAPHQL_RESPONSE or isinstance(body, list) or "data" in body:
        return 200
    codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors") or () if isinstance(e, dict)}
    return 500 if "INTERNAL" in codes else 400


def decode(raw: str | bytes) -> Any:
    """A JSON value, or InvalidError/LimitError for anything json.loads cannot or should not read."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidError(f"the request body is not valid JSON: {exc.msg} (line {exc.lineno} "
                           f"column {exc.colno})") from None
    except UnicodeDecodeError:
        raise InvalidError("the request body is not valid JSON: it is not UTF-8 text") from None
    except RecursionError:
        raise LimitError(f"the request body is nested deeper than {MAX_NESTING} levels") from None
    except ValueError:  # since Python 3.11: integers over sys.get_int_max_str_digits() digits
        raise LimitError(f"a number in the request body has more than {sys.get_int_max_str_digits()} "
                         "digits") from None
    _check_nesting(value)
    return value


def _check_nesting(value: Any) -> None:
    """LimitError past MAX_NESTING levels; a loop over the containers only, never recursion."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            raise LimitError(f"the request body is nested deeper than {MAX_NESTING} levels")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def request_data(data: object) -> GraphQLRequestData:
    """The GraphQL request a decoded body (or GET query string) holds; InvalidError when it is not one."""
    if not isinstance(data, dict):
        raise InvalidError('the request must be a JSON object: {"query": "…", "variables": {…}}')
    query, variables = data.get("query"), data.get("variables")
    operation, extensions = data.get("operationName"), data.get("extensions")
    if not isinstance(query, str) or not query.strip():
        raise InvalidError("the request needs a `query`: a GraphQL document, as a string")
    if not isinstance(variables, dict | None):
        raise InvalidError("`variables` must be a JSON object (or null)")
    if not isinstance(operation, str | None):
        raise InvalidError("`operationName` must be a string (or null)")
    if not isinstance(extensions, dict | None):
        raise InvalidError("`extensions` must be a JSON object (or null)")
    return GraphQLRequestData(query=query, variables=variables, operation_name=operation, extensions=extensions)


def error_answer(exc: ModelyardError, media: str, status: int | None = None) -> Response:
    """A request refused before GraphQL saw it, as a GraphQL response with a coded error."""
    body = {"errors": [{"message": exc.message, "extensions": {"code": exc.code}}]}
    return Response(json.dumps(body), status_code=status or exc.http_status, media_type=media,
                    headers=error_headers(exc))


def too_large(limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(f"the request body is larger than {limit} bytes, the most this server "
                             "reads (MODELYARD_MAX_GRAPHQL_BODY)")


def check_length(content_length: str | None, limit: int) -> None:
    """Refuse a declared body over `limit` before reading any of it."""
    if content_length is not None and content_length.strip().isdigit() and int(content_length) > limit:
        raise too_large(limit)


def limited(receive: Receive, limit: int) -> Receive:
    """`receive`, counting body bytes as they stream in: BodyTooLargeError past `limit` (a body
    sent without Content-Length, or longer than it said, is never buffered beyond it)."""
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
        return message

    return receive_limited
