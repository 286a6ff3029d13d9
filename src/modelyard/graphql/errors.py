"""GraphQL errors with `extensions.code`; unexpected exceptions masked, their trace logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from modelyard.errors import ModelyardError

log = logging.getLogger("modelyard.graphql")
MASKED = "Internal server error: the failure was logged on the server."


def is_unexpected(error: GraphQLError) -> bool:
    """An exception from our code that is not one of ours: a bug, never shown to clients."""
    original = error.original_error
    if original is None or isinstance(original, (ModelyardError, GraphQLError)):
        return False
    if error.path is not None:
        return True
    # Before execution, graphql-core wraps a scalar's refusal of an input in its own message
    # ("Variable '$x' got invalid value …"); a crash is passed on with the exception's own text.
    return error.message == str(original)


def with_code(error: GraphQLError) -> GraphQLError:
    """The error a client sees: its message and a stable code."""
    original = error.original_error
    if isinstance(original, ModelyardError):
        code, message = original.code, original.message
    elif is_unexpected(error):
        code, message = "INTERNAL", MASKED
    elif error.extensions and "code" in error.extensions:
        return error
    elif "tokens" in error.message and error.message.startswith("Syntax Error"):
        code, message = "LIMIT", error.message
    else:
        code, message = "INVALID", error.message
    return GraphQLError(
        message, nodes=error.nodes, source=error.source, positions=error.positions,
        path=error.path, original_error=None, extensions={**(error.extensions or {}), "code": code},
    )


def with_codes(errors: list[GraphQLError] | None) -> list[GraphQLError] | None:
    """`with_code` over a result's errors (idempotent)."""
    return [with_code(e) for e in errors] if errors else errors


class ErrorCodes(SchemaExtension):
    """Give every error a code and mask the unexpected ones."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None:
            result.errors = with_codes(result.errors)

    def on_stream_result(self, result: object) -> Iterator[None]:
        """Subscriptions: each streamed result, which `on_operation` never sees."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = with_codes(errors)  # type: ignore[attr-defined]
        yield None
