"""Talking to the registry: one GraphQL query per ref, blob bytes with Range and redirects.

Nothing the registry sends is trusted: a GraphQL answer is read up to `MAX_ANSWER` bytes and
`ANSWER_DEADLINE` seconds (an endless or trickling answer is cut, never buffered whole), the
version in it is checked field by field (`Manifest.from_server`), the body of an error answer for
a blob is not read at all, and blob bytes are read only up to the size the manifest declares.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

from modelyard_agent.errors import InvalidInputError, ServerError, TransferError
from modelyard_agent.manifest import Manifest
from modelyard_agent.refs import Ref
from modelyard_agent.transport import Answer, ConnectionLost, Connections

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
# A version of 10,000 artifacts with long paths and a signature is a few MiB of JSON.
MAX_ANSWER = 16 << 20
ANSWER_DEADLINE = 120.0

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


class Client:
    """A connection to one registry; the token goes only to that registry."""

    def __init__(self, server: str, token: str | None, timeout: float = 30.0,
                 deadline: float = ANSWER_DEADLINE) -> None:
        self.server = server.rstrip("/")
        self.deadline = deadline
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}
        self.connections = Connections(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.connections.close()

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The GraphQL answer document (`data`, `errors`), read within the size and time caps."""
        request = json.dumps({"query": query, "variables": variables or {}}).encode()
        headers = {**self.auth, "Content-Type": "application/json", "Accept": "application/json"}
        try:
            answer = self.connections.request("POST", f"{self.server}/graphql", headers, request)
            try:
                body = self._read_capped(answer)
            finally:
                answer.close()
        except ConnectionLost as exc:
            raise TransferError(f"cannot reach {self.server}: {exc}") from exc
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("errors") or [], list):
            raise ServerError(f"{self.server} answered HTTP {answer.status}, not GraphQL")
        return doc

    def _read_capped(self, answer: Answer) -> bytes:
        declared = answer.header("content-length")
        if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > MAX_ANSWER):
            raise InvalidInputError(self._too_large())
        body = bytearray()
        stop = time.monotonic() + self.deadline
        while chunk := answer.read1(1 << 16):
            body += chunk
            if len(body) > MAX_ANSWER:
                raise InvalidInputError(self._too_large())
            if time.monotonic() > stop:
                raise TransferError(f"{self.server} took more than {self.deadline:.0f} s to answer")
        return bytes(body)

    def _too_large(self) -> str:
        return f"{self.server} sent an answer larger than {MAX_ANSWER >> 20} MiB; refusing it"

    def version(self, ref: Ref) -> Manifest | None:
        """The version a ref names now, checked to be that version, or None when the server
        knows no such version."""
        body = self.graphql(VERSION_QUERY, {"ref": ref.text})
        errors = body.get("errors") or []
        codes = {(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)}
        if "NOT_FOUND" in codes:
            return None
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            raise ServerError(f"{ref.text}: {str(first.get('message', 'server error'))[:500]}")
        data = body.get("data")
        data = data.get("version") if isinstance(data, dict) else None
        return None if data is None else Manifest.from_server(data, ref, self.server)

    @contextlib.contextmanager
    def blob(self, digest: str, start: int) -> Iterator[Answer]:
        """The answer for a blob from byte `start`, its body left to read; redirects are followed
        without the token. ConnectionLost when the registry cannot be reached."""
        headers = {"Range": f"bytes={start}-"} if start else {}
        url, auth = f"{self.server}/api/blobs/{digest}", self.auth
        for _ in range(MAX_REDIRECTS + 1):
            answer = self.connections.request("GET", url, {**auth, **headers})
            if answer.status not in REDIRECTS:
                break
            location = answer.header("location")
            answer.close()
            url = urljoin(url, location)
            # A presigned URL is its own credential; our token must not leave for another host.
            auth = {}
        else:
            raise TransferError(f"{digest}: more than {MAX_REDIRECTS} redirects")
        try:
            if answer.status not in (200, 206):
                # The body is not read: a hostile server could make it endless.
                raise ServerError(f"{digest}: the server answered HTTP {answer.status}")
            yield answer
        finally:
            answer.close()
