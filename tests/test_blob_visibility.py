"""Private reads hide blobs too (issue 11, item 4): with `MODELYARD_PUBLIC_READ=false`, a token
bound to a namespace reads only blobs that a version in that namespace references. Any other
blob, stored or not, answers exactly as a missing one: the answer is no existence oracle."""

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


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


TEAM, OTHER, SHARED, LOOSE = b"team weights" * 100, b"other weights" * 100, b"shared card", b"not in any version"
NEVER = digest_of(b"never stored anywhere")


@contextlib.asynccontextmanager
async def private_server(settings: Settings, store: BlobStore) -> AsyncIterator[httpx.AsyncClient]:
    """The app with private reads on `store`, downloads served (not redirected), as the admin."""
    application = create_app(dataclasses.replace(settings, public_read=False, redirect_downloads=False),
                             store=store)
    async with LifespanManager(application), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
    ) as client:
        yield client


async def catalog(client: httpx.AsyncClient) -> dict[str, str]:
    """team/m and other/m each with a version, one blob in both, one in none; token secrets."""
    gql = GraphQLClient(client)
    for data in (TEAM, OTHER, SHARED, LOOSE):
        assert (await client.put(f"/api/blobs/{digest_of(data)}", content=data)).status_code == 201
    create = ("mutation($m: String!, $a: [ArtifactInput!]!) { createModel(input: {name: $m}) { name } "
              "createVersion(input: {model: $m, artifacts: $a}) { ref } }")
    for model, data in (("team/m", TEAM), ("other/m", OTHER)):
        artifacts = [{"path": "w.bin", "digest": digest_of(data)}, {"path": "README.md", "digest": digest_of(SHARED)}]
        await gql.ok(create, {"m": model, "a": artifacts})
    token = "mutation($n: String!, $ns: String) { createToken(input: {name: $n, scope: READ, namespace: $ns}) { secret } }"
    return {name: (await gql.ok(token, {"n": name, "ns": ns}))["createToken"]["secret"]
            for name, ns in (("team-reader", "team"), ("reader", None))}


def as_token(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_namespace_reads_only_its_versions_blobs(settings: Settings, blob_store: BlobStore) -> None:
    async with private_server(settings, blob_store) as client:
        secrets = await catalog(client)
        team = as_token(secrets["team-reader"])
        for data in (TEAM, SHARED):
            got = await client.get(f"/api/blobs/{digest_of(data)}", headers=team)
            assert got.status_code == 200 and got.content == data
            assert (await client.head(f"/api/blobs/{digest_of(data)}", headers=team)).status_code == 200
        missing = await client.get(f"/api/blobs/{NEVER}", headers=team)
        assert missing.status_code == 404
        for hidden in (digest_of(OTHER), digest_of(LOOSE)):
            for extra in ({}, {"Range": "bytes=999999-"}, {"Range": "bytes=0-9"}, {"If-None-Match": f'"{hidden}"'}):
                answer = await client.get(f"/api/blobs/{hidden}", headers={**team, **extra})
                assert answer.status_code == 404, (hidden, extra, answer.status_code)
                assert answer.json() == {**missing.json(), "error": missing.json()["error"].replace(NEVER, hidden)}
            head = await client.head(f"/api/blobs/{hidden}", headers=team)
            never = await client.head(f"/api/blobs/{NEVER}", headers=team)
            assert head.status_code == never.status_code == 404
            assert sorted(head.headers.items()) == sorted(never.headers.items())
        # A reader bound to no namespace reads every blob, referenced or not.
        for data in (TEAM, OTHER, SHARED, LOOSE):
            got = await client.get(f"/api/blobs/{digest_of(data)}", headers=as_token(secrets["reader"]))
            assert got.status_code == 200 and got.content == data
        assert (await client.get(f"/api/blobs/{digest_of(OTHER)}", headers={"Authorization": ""})).status_code == 401


async def test_public_reads_show_every_blob(store_client: httpx.AsyncClient) -> None:
    secrets = await catalog(store_client)
    for data in (OTHER, LOOSE):
        got = await store_client.get(f"/api/blobs/{digest_of(data)}", headers=as_token(secrets["team-reader"]))
        assert got.status_code == 200 and got.content == data


async def test_a_digest_alone_does_not_let_a_namespace_use_another_ones_blob(
    settings: Settings, blob_store: BlobStore
) -> None:
    """Naming other/m's blob in a version of team/ would be a way to read it: the team writer gets
    the answer of a missing blob until it sends the bytes itself (proof it holds them)."""
    async with private_server(settings, blob_store) as client:
        await catalog(client)
        gql = GraphQLClient(client)
        made = await gql.ok('mutation { createToken(input: {name: "team-writer", scope: WRITE, '
                            'namespace: "team"}) { secret } }')
        writer = gql.as_token(made["createToken"]["secret"])
        create = ('mutation($d: String!) { createVersion(input: {model: "team/m", '
                  'artifacts: [{path: "stolen.bin", digest: $d}]}) { ref } }')
        hidden = await writer.error(create, {"d": digest_of(OTHER)})
        never = await writer.error(create, {"d": NEVER})
        assert hidden["extensions"]["code"] == never["extensions"]["code"] == "NOT_FOUND"
        assert hidden["message"].replace(digest_of(OTHER)[:19], "D") == never["message"].replace(NEVER[:19], "D")
        # Its own namespace's blobs (and the shared one, which team/m holds) are usable.
        await writer.ok(create.replace("stolen.bin", "again.bin"), {"d": digest_of(SHARED)})
        # Wrong bytes prove nothing; the right bytes do.
        headers = as_token(made["createToken"]["secret"])
        assert (await client.put(f"/api/blobs/{digest_of(OTHER)}", content=b"guess", headers=headers)).status_code == 400
        assert (await writer.error(create, {"d": digest_of(OTHER)}))["extensions"]["code"] == "NOT_FOUND"
        assert (await client.head(f"/api/blobs/{digest_of(OTHER)}", headers=headers)).status_code == 404
        assert (await client.put(f"/api/blobs/{digest_of(OTHER)}", content=OTHER, headers=headers)).status_code == 201
        # What the namespace sent it may read back (a push that lost its answer sees it is done).
        assert (await client.head(f"/api/blobs/{digest_of(OTHER)}", headers=headers)).status_code == 200
        assert (await writer.ok(create, {"d": digest_of(OTHER)}))["createVersion"]["ref"] == "team/m:3"
        # Through a resumable upload too.
        upload = await client.post("/api/uploads", headers=headers)
        location = upload.json()["location"]
        assert (await client.patch(location, content=LOOSE, headers={**headers, "Upload-Offset": "0"})).status_code == 204
        assert (await client.put(f"{location}?digest={digest_of(LOOSE)}", headers=headers)).status_code == 201
        await writer.ok(create.replace("stolen.bin", "loose.bin"), {"d": digest_of(LOOSE)})
