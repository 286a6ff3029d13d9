"""Resumable uploads belong to the token that opened them (issue 11, item 5), on both stores.

Another token, whatever its scope, gets the same 404 as for an upload that never existed; one
token holds at most `MODELYARD_MAX_OPEN_UPLOADS` open uploads, and its uploads idle for
`MODELYARD_UPLOAD_GRACE_SECONDS` expire.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import AsyncIterator

import httpx
from asgi_lifespan import LifespanManager

from modelyard.app import create_app
from modelyard.config import Settings
from modelyard.storage import BlobStore
from tests.conftest import ADMIN_SECRET, GraphQLClient

UNKNOWN = "/api/uploads/" + "0" * 32


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextlib.asynccontextmanager
async def server(settings: Settings, store: BlobStore, **changes: object) -> AsyncIterator[httpx.AsyncClient]:
    """The app on `store` with `changes` to its settings, as the admin."""
    application = create_app(dataclasses.replace(settings, **changes), store=store)  # type: ignore[arg-type]
    async with LifespanManager(application), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
    ) as client:
        yield client


async def writers(client: httpx.AsyncClient, *names: str) -> list[dict[str, str]]:
    """Headers of new write tokens."""
    gql = GraphQLClient(client)
    create = "mutation($n: String!) { createToken(input: {name: $n, scope: WRITE}) { secret } }"
    return [{"Authorization": f"Bearer {(await gql.ok(create, {'n': n}))['createToken']['secret']}"} for n in names]


def same_as_unknown(answer: httpx.Response, unknown: httpx.Response, location: str) -> bool:
    """The answer about `location` is the answer about an upload that never existed."""
    upload_id, never = location.rsplit("/", 1)[1], UNKNOWN.rsplit("/", 1)[1]
    return (answer.status_code, answer.content.replace(upload_id.encode(), never.encode())) == (
        unknown.status_code, unknown.content)


async def test_an_upload_answers_only_its_creator(store_client: httpx.AsyncClient) -> None:
    mine, theirs = await writers(store_client, "ci-a", "ci-b")
    data = b"weights" * 1000
    location = (await store_client.post("/api/uploads", headers=mine)).headers["location"]
    assert (await store_client.patch(location, content=data[:100], headers={**mine, "Upload-Offset": "0"})).status_code == 204
    for other in (theirs, {"Authorization": f"Bearer {ADMIN_SECRET}"}):  # even an admin's
        calls = {
            "HEAD": lambda url, h=other: store_client.head(url, headers=h),
            "PATCH": lambda url, h=other: store_client.patch(url, content=b"x", headers={**h, "Upload-Offset": "100"}),
            "PUT": lambda url, h=other: store_client.put(f"{url}?digest={digest_of(data)}", headers=h),
            "DELETE": lambda url, h=other: store_client.delete(url, headers=h),
        }
        for method, call in calls.items():
            answer, unknown = await call(location), await call(UNKNOWN)
            assert answer.status_code == 404, (method, answer.status_code)
            assert same_as_unknown(answer, unknown, location), (method, answer.text, unknown.text)
    # Nothing the others did touched it: its creator goes on.
    assert (await store_client.head(location, headers=mine)).headers["upload-offset"] == "100"
    assert (await store_client.patch(location, content=data[100:], headers={**mine, "Upload-Offset": "100"})).status_code == 204
    done = await store_client.put(f"{location}?digest={digest_of(data)}", headers=mine)
    assert done.status_code == 201
    assert (await store_client.get(f"/api/blobs/{digest_of(data)}")).content == data


async def test_open_uploads_are_capped_per_token(settings: Settings, blob_store: BlobStore) -> None:
    async with server(settings, blob_store, max_open_uploads=2) as client:
        mine, theirs = await writers(client, "ci-a", "ci-b")
        first = (await client.post("/api/uploads", headers=mine)).headers["location"]
        second = (await client.post("/api/uploads", headers=mine)).headers["location"]
        refused = await client.post("/api/uploads", headers=mine)
        assert refused.status_code == 400 and refused.json()["code"] == "LIMIT"
        message = refused.json()["error"]
        assert "2 open uploads" in message and "86400 s" in message, message
        assert (await client.post("/api/uploads", headers=theirs)).status_code == 201  # per token
        assert (await client.delete(first, headers=mine)).status_code == 204  # aborting frees one
        third = await client.post("/api/uploads", headers=mine)
        assert third.status_code == 201
        await client.patch(second, content=b"abc", headers={**mine, "Upload-Offset": "0"})
        assert (await client.put(f"{second}?digest={digest_of(b'abc')}", headers=mine)).status_code == 201
        assert (await client.post("/api/uploads", headers=mine)).status_code == 201  # and finishing


async def test_idle_uploads_expire_and_say_so(settings: Settings, blob_store: BlobStore) -> None:
    """With no grace at all every upload is idle: a token at its cap gets its old ones expired."""
    async with server(settings, blob_store, max_open_uploads=1, upload_grace_seconds=0) as client:
        (mine,) = await writers(client, "ci-a")
        old = (await client.post("/api/uploads", headers=mine)).headers["location"]
        await client.patch(old, content=b"abc", headers={**mine, "Upload-Offset": "0"})
        new = await client.post("/api/uploads", headers=mine)
        assert new.status_code == 201 and new.headers["location"] != old
        gone = await client.head(old, headers=mine)
        assert gone.status_code == 404
        patched = await client.patch(old, content=b"def", headers={**mine, "Upload-Offset": "3"})
        assert patched.status_code == 404 and "expire" in patched.json()["error"], patched.text
