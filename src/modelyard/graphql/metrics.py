"""Counts GraphQL operations by type and name, and errors by code."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from modelyard.graphql.errors import with_code
from modelyard.metrics import Metrics

# Strawberry raises these past the extensions and answers 400: the client's mistake, not a crash.
REFUSED = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)


class GraphQLMetrics(SchemaExtension):
    """Records each operation and its errors in `metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except REFUSED:
            self._record(start, ["INVALID"])
            raise
        except Exception as exc:
            self._record(start, [_code(GraphQLError(str(exc), original_error=exc))])
            raise
        result = self.execution_context.result
        errors = result.errors if result is not None else None
        # This runs before ErrorCodes rewrites the errors: compute the code the client will see.
        self._record(start, [_code(e) for e in errors or []])

    def _record(self, start: float, codes: list[str]) -> None:
        context = self.execution_context
        kind, name = "unknown", "unknown"  # unparsable, or operationName names no operation
        if context.graphql_document is not None:
            with contextlib.suppress(RuntimeError):
                kind, name = context.operation_type.value, context.operation_name or "anonymous"
        seconds = None if kind == OperationType.SUBSCRIPTION.value else time.perf_counter() - start
        self.metrics.observe_operation(kind, name, seconds, codes)


def _code(error: GraphQLError) -> str:
    return str((with_code(error).extensions or {}).get("code", "INTERNAL"))
