"""Talking to the registry: one GraphQL query per ref, blob bytes with Range and redirects."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from modelyard_agent.errors import ServerError, TransferError

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5

VERSION_QUERY = """
query AgentVersion($ref: String!) {
  version(ref: $ref) {
    ref number manifestDigest
    artifacts { path digest size mediaType }
    signature { inputs { name datatype shape } outputs { name datatype shape } }
    model { name task }
  }
}
"""


def describe(exc: httpx.HTTPError) -> str:
    """A transport error as a short phrase."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Client:
    """A connection to one registry; the token goes only to that registry."""

    def __init__(self, server: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server
        self.http = httpx.Client(base_url=server, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def version(self, ref: str) -> dict[str, Any] | None:
        """The version a ref names now, or None when the server knows no such version."""
        try:
            response = self.http.post("/graphql", json={"query": VERSION_QUERY, "variables": {"ref": ref}})
        except httpx.HTTPError as exc:
            raise TransferError(f"cannot reach {self.server}: {describe(exc)}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise ServerError(f"{self.server} answered HTTP {response.status_code}, not GraphQL") from exc
        errors = body.get("errors") or []
        codes = {(e.get("extensions") or {}).get("code") for e in errors}
        if "NOT_FOUND" in codes:
            return None
        if errors:
            raise ServerError(f"{ref}: {errors[0].get('message', 'server error')}")
        data = (body.get("data") or {}).get("version")
        return data if isinstance(data, dict) else None

    @contextlib.contextmanager
    def blob(self, digest: str, start: int) -> Iterator[httpx.Response]:
        """The streaming answer for a blob from byte `start`; redirects are followed without the token."""
        headers = {"Range": f"bytes={start}-"} if start else {}
        request = self.http.build_request("GET", f"/api/blobs/{digest}", headers=headers)
        for _ in range(MAX_REDIRECTS + 1):
            response = self.http.send(request, stream=True)
            if response.status_code not in REDIRECTS:
                break
            location = response.headers.get("location", "")
            response.close()
            request = self.http.build_request("GET", request.url.join(location), headers=headers)
            # A presigned URL is its own credential; our token must not leave for another host.
            request.headers.pop("Authorization", None)
        else:
            raise TransferError(f"{digest}: more than {MAX_REDIRECTS} redirects")
        try:
            if response.status_code not in (200, 206):
                response.read()
                raise ServerError(f"{digest}: the server answered HTTP {response.status_code}")
            yield response
        finally:
            response.close()
