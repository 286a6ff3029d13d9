"""GraphQL over HTTP: the response media type and its status codes, and the body-size limit.

https://graphql.github.io/graphql-over-http/draft/ — with `application/graphql-response+json` a
request that fails before execution (parse, validation, variables) answers 4xx without `data`;
`application/json` keeps 200.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.config import Settings
from tests.conftest import ADMIN_SECRET, GraphQLClient, free_port, running

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MiB = 1024 * 1024

REQUEST_ERRORS = {
    "parse": ("{ models { ", None, "INVALID"),
    "validation": ("{ nope }", None, "INVALID"),
    "variables": ("query($n: Int) { models(first: $n) { totalCount } }", {"n": "ten"}, "INVALID"),
    "limit": ("{ " + " ".join(f'a{i}: model(name: "m") {{ name }}' for i in range(40)) + " }", None, "LIMIT"),
}


async def post(client: httpx.AsyncClient, accept: str | None, query: str,
               variables: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN_SECRET}"}
    if accept is not None:
        headers["Accept"] = accept
    return await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


@pytest.mark.parametrize("case", REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
async def test_a_request_error_is_400_without_data_for_graphql_response_json(
    client: httpx.AsyncClient, case: tuple[str, dict[str, Any] | None, str]
) -> None:
    query, variables, code = case
    response = await post(client, GRAPHQL_RESPONSE, query, variables)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = response.json()
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == code, body


@pytest.mark.parametrize("case", REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
async def test_a_request_error_stays_200_for_application_json(
    client: httpx.AsyncClient, case: tuple[str, dict[str, Any] | None, str]
) -> None:
    query, variables, code = case
    for accept in (JSON, None, "*/*"):
        response = await post(client, accept, query, variables)
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"].startswith(JSON), accept
        body = response.json()
        assert "data" not in body and body["errors"][0]["extensions"]["code"] == code, body


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
async def test_a_field_error_is_200_with_data_in_both_media_types(client: httpx.AsyncClient, accept: str) -> None:
    response = await post(client, accept, 'mutation { createModel(input: {name: "Bad Name"}) { name } }')
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(accept)
    body = response.json()
    assert body["data"] == {"createModel": None}
    assert body["errors"][0]["extensions"]["code"] == "INVALID"


@pytest.mark.parametrize(
    "accept, media",
    [
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE};charset=utf-8", GRAPHQL_RESPONSE),
        ("application/*", JSON),
        ("text/plain", JSON),
    ],
)
async def test_the_answer_takes_the_media_type_the_client_prefers(
    client: httpx.AsyncClient, accept: str, media: str
) -> None:
    response = await post(client, accept, "{ models { totalCount } }")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert response.json() == {"data": {"models": {"totalCount": 0}}}


async def test_a_body_that_is_not_json_answers_in_the_media_type_asked_for(client: httpx.AsyncClient) -> None:
    for accept, media in ((GRAPHQL_RESPONSE, GRAPHQL_RESPONSE), (JSON, JSON)):
        response = await client.post("/graphql", content=b"{not json",
                                      headers={"content-type": JSON, "accept": accept})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith(media)
        assert response.json()["errors"][0]["extensions"]["code"] == "INVALID"


# --- the body-size limit (issue 11 item 6) -------------------------------------------------------


class Body:
    """A request body of `size` bytes made on demand, counting what the server pulled."""

    def __init__(self, size: int, chunk: int = 64 * 1024) -> None:
        self.size = size
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"query": "{ __typename }", "pad": "'
        while self.pulled < self.size:
            self.pulled += self.chunk
            yield b" " * self.chunk
        yield b'"}'


async def test_a_body_over_the_limit_is_413_and_read_no_further(
    client: httpx.AsyncClient, settings: Settings, gql: GraphQLClient
) -> None:
    limit = settings.max_graphql_body
    assert limit == 2 * MiB
    body = Body(200 * MiB)
    tracemalloc.start()
    try:
        response = await client.post("/graphql", content=body, headers={"content-type": JSON})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413, response.text[:200]
    assert response.json()["errors"][0]["extensions"]["code"] == "LIMIT"
    assert "2097152" in response.json()["errors"][0]["message"]
    assert body.pulled <= limit + body.chunk  # streamed bytes were counted, not buffered to the end
    assert peak < 4 * limit, peak
    assert (await gql.ok("{ __typename }")) == {"__typename": "Query"}  # the server carries on


async def test_a_declared_length_over_the_limit_is_413_before_any_byte_is_read(client: httpx.AsyncClient) -> None:
    body = Body(200 * MiB)
    response = await client.post("/graphql", content=body,
                                 headers={"content-type": JSON, "content-length": str(200 * MiB + 40)})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "LIMIT"
    assert body.pulled == 0


async def test_a_body_just_under_the_limit_runs(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.post("/graphql", content=Body(settings.max_graphql_body - 1024, chunk=1024),
                                 headers={"content-type": JSON})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def send_chunked(port: int, total: int) -> tuple[bytes, int]:
    """POST /graphql with a chunked body of up to `total` bytes, stopping once the server answers;
    the start of the answer and how many body bytes were sent."""
    def framed(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(60)  # a guard against a hang, not a measurement
        sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + framed(b'{"query": "{ __typename }", "pad": "'))
        sent, chunk = 0, framed(b" " * MiB)
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += MiB
            if sent >= total:  # the whole body went: end it, as a valid request
                sock.sendall(framed(b'"}') + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: read what it said
        return sock.recv(65536), sent


def test_a_200_mib_body_does_not_grow_the_real_server(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MODELYARD_DATA_DIR": str(tmp_path / "data"), "MODELYARD_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "modelyard.cli", "serve"], env, f"{url}/healthz",
                 tmp_path / "server.log") as server:
        assert httpx.post(f"{url}/graphql", json={"query": "{ models { totalCount } }"}).status_code == 200
        before = peak_rss(server.pid)
        answer, sent = send_chunked(port, 200 * MiB)
        grown = peak_rss(server.pid) - before
        assert grown < 32 * MiB, f"the server's peak RSS grew by {grown / MiB:.0f} MiB for {sent / MiB:.0f} MiB sent"
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert httpx.post(f"{url}/graphql", json={"query": "{ __typename }"}).json() == {"data": {"__typename": "Query"}}
