"""One HTTP connection pool to a registry: retries with backoff, GraphQL, error mapping."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from modelyard import __version__
from modelyard.client.errors import TransferError, error_for, from_response

RETRY_STATUSES = frozenset({500, 502, 503, 504})


class Connection:
    """An `httpx.Client` (shared by the worker threads: httpx allows it) bound to one server."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.reached = False
        """Whether the server ever answered: until it has, a refused connection fails at once
        (a wrong URL or a server that is down should not cost a minute of retries)."""
        headers = {"User-Agent": f"modelyard-client/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout), transport=transport,
            follow_redirects=False,  # redirects are followed by hand, without the token (download.py)
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self.http.close()

    def pause(self, failures: int) -> None:
        """Sleep before retry number `failures` (exponential backoff with jitter, at most 10 s)."""
        time.sleep(min(self.backoff * 2 ** (failures - 1), 10.0) * random.uniform(0.5, 1.0))

    def call(self, send: Callable[[], httpx.Response], what: str, *, idempotent: bool = True) -> httpx.Response:
        """`send()` again after a network error or a 5xx, up to `retries` times; the last answer.

        A request that is not idempotent is retried only when it never reached the server.
        """
        failures = 0
        while True:
            try:
                response = send()
            except httpx.TransportError as exc:
                if not self.reached and isinstance(exc, httpx.ConnectError):
                    raise TransferError(f"cannot reach {self.url}: {describe(exc)}") from exc
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                failures += 1
                if failures > self.retries or not (idempotent or unsent):
                    raise TransferError(f"{what}: {describe(exc)} ({self.url})") from exc
                self.pause(failures)
                continue
            self.reached = True
            if response.status_code in RETRY_STATUSES and idempotent and failures < self.retries:
                response.close()
                failures += 1
                self.pause(failures)
                continue
            return response

    def graphql(self, query: str, variables: dict[str, Any] | None = None, *, mutation: bool = False) -> dict[str, Any]:
        """The `data` of a GraphQL request; the first error (by its `extensions.code`) as an exception."""
        payload = {"query": query, "variables": variables or {}}
        response = self.call(lambda: self.http.post("/graphql", json=payload), "GraphQL request",
                             idempotent=not mutation)
        try:
            body = response.json()
        except ValueError:
            raise from_response(response, "GraphQL request") from None
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            first = errors[0]
            code = (first.get("extensions") or {}).get("code")
            raise error_for(code, str(first.get("message", "")), response.status_code)
        if response.status_code >= 400 or not isinstance(body, dict) or body.get("data") is None:
            raise from_response(response, "GraphQL request")
        data: dict[str, Any] = body["data"]
        return data


def describe(exc: httpx.TransportError) -> str:
    """A short reason for a network failure (httpx messages are sometimes empty)."""
    return str(exc) or type(exc).__name__
