"""The process's Prometheus metric families, in their own registry (one per app)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder

from modelyard.errors import ModelyardError

# Label values come from clients; each distinct value is a time series kept forever, so every
# label is bounded: unknown methods, names past the cap and unknown codes fold into one value.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CODES = frozenset({ModelyardError.code, *(cls.code for cls in ModelyardError.__subclasses__())})
MAX_NAME_LENGTH = 64
# From 1 ms (a cached catalog read) to a minute (a large blob streamed through the server).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counters and histograms for HTTP requests, GraphQL operations and errors."""

    def __init__(self, max_operation_names: int = 100) -> None:
        self.registry = CollectorRegistry()
        self.max_operation_names = max_operation_names
        self._names: set[str] = set()
        self.requests = Counter(
            "modelyard_http_requests_total", "HTTP requests answered, by route template and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.request_seconds = Histogram(
            "modelyard_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["method", "route"], buckets=BUCKETS, registry=self.registry,
        )
        self.operations = Counter(
            "modelyard_graphql_operations_total", "GraphQL operations, by type and operation name.",
            ["type", "name"], registry=self.registry,
        )
        self.operation_seconds = Histogram(
            "modelyard_graphql_operation_duration_seconds", "Time to run a GraphQL query or mutation.",
            ["type"], buckets=BUCKETS, registry=self.registry,
        )
        self.errors = Counter(
            "modelyard_graphql_errors_total", "Errors in GraphQL responses, by extensions.code.",
            ["code"], registry=self.registry,
        )
        for code in sorted(CODES):
            self.errors.labels(code)  # present at 0 from the start, so rate() sees the first one
        ProcessCollector(registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one answered HTTP request."""
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def observe_operation(
        self, kind: str, name: str | None, seconds: float | None, codes: Iterable[str]
    ) -> None:
        """Record one GraphQL operation; `seconds` is None for subscriptions (they live long)."""
        self.operations.labels(kind, self._name_label(name)).inc()
        if seconds is not None:
            self.operation_seconds.labels(kind).observe(seconds)
        for code in codes:
            self.errors.labels(code if code in CODES else "OTHER").inc()

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper's Accept header asks for, and its type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def _name_label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        name = name[:MAX_NAME_LENGTH]
        if name not in self._names:
            if len(self._names) >= self.max_operation_names:
                return "other"
            self._names.add(name)
        return name
