"""The Strawberry schema with its limits and error handling."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxTokensLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from modelyard.config import Settings
from modelyard.graphql.errors import ErrorCodes, is_unexpected
from modelyard.graphql.execution import DocumentCache, DocumentLru, Executor
from modelyard.graphql.limits import QueryLimits
from modelyard.graphql.metrics import GraphQLMetrics
from modelyard.graphql.mutations import Mutation
from modelyard.graphql.queries import Query
from modelyard.graphql.scalars import SCALARS
from modelyard.graphql.subscriptions import Subscription, WakeSubscribers
from modelyard.graphql.types.dataset import Dataset, DatasetVersion
from modelyard.graphql.types.model import Model
from modelyard.graphql.types.version import ModelVersion
from modelyard.metrics import Metrics

log = logging.getLogger("modelyard.graphql")


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log only failures that are bugs, with their traceback; client errors are not news."""
        for error in errors:
            if is_unexpected(error):
                log.error("unexpected error in %s", error.path, exc_info=error.original_error)


def build_schema(settings: Settings | None = None, metrics: Metrics | None = None) -> Schema:
    """The schema, with limits taken from `settings` and operations counted in `metrics`."""
    settings = settings or Settings()
    documents = DocumentLru()
    extensions: list[Any] = [
        lambda: DocumentCache(documents),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: QueryLimits(settings),
        ErrorCodes,
        WakeSubscribers,
    ]
    if metrics is not None:
        extensions.append(lambda: GraphQLMetrics(metrics))
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Model, ModelVersion, Dataset, DatasetVersion],
        extensions=extensions,
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=Executor,
    )
