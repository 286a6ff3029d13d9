"""Counts GraphQL operations by type and name, and errors by code. (Being written: ops helper.)"""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from modelyard.metrics import Metrics


class GraphQLMetrics(SchemaExtension):
    """Records each operation and its errors in `metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        yield
