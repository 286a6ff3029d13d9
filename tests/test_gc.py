"""Garbage collection of blobs, uploads and temp data, on the local and the S3 backend alike.

Data is aged by moving GC's clock (`now=`) forward, and catalog records by rewriting their
`created_at`: no test sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import anyio.to_thread
import httpx
import pytest
from asgi_lifespan import LifespanManager

from modelyard.app import create_app
from modelyard.catalog.gc import collect
from modelyard.config import Settings
from modelyard.db.tables import BlobRow
from modelyard.storage import BlobStore, LocalBlobStore
from modelyard.storage.s3 import S3BlobStore
from tests.conftest import ADMIN_SECRET, GraphQLClient
from tests.onnx_models import mlp_model

HOUR = 3600


def later(seconds: int = 2 * HOUR) -> datetime:
    """A clock `seconds` ahead: everything stored so far looks that much older."""
    return datetime.now(UTC) + timedelta(seconds=seconds)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def put(http: httpx.AsyncClient, data: bytes) -> str:
    digest = digest_of(data)
    assert (await http.put(f"/api/blobs/{digest}", content=data)).status_code == 201
    return digest


async def present(http: httpx.AsyncClient, digest: str) -> bool:
    answer = (await http.head(f"/api/blobs/{digest}")).status_code
    assert answer in (200, 404)
    return answer == 200


async def version(http: httpx.AsyncClient, model: str, files: dict[str, bytes]) -> str:
    gql = GraphQLClient(http)
    if not (await gql.ok("query($n: String!) { model(name: $n) { name } }", {"n": model}))["model"]:
        await gql.ok("mutation($n: String!) { createModel(input: {name: $n}) { name } }", {"n": model})
    artifacts = [{"path": path, "digest": await put(http, data)} for path, data in files.items()]
    created = await gql.ok(
        "mutation($m: String!, $a: [ArtifactInput!]!) { createVersion(input: {model: $m, artifacts: $a}) { ref } }",
        {"m": model, "a": artifacts},
    )
    return str(created["createVersion"]["ref"])


async def test_unreferenced_old_blobs_go_referenced_and_archived_stay(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    used, archived = os.urandom(1000), os.urandom(2000)
    orphans = [os.urandom(3 * 1024 * 1024 + 7), os.urandom(11)]
    await version(store_client, "m", {"weights.bin": used})
    ref = await version(store_client, "m", {"weights.bin": archived})
    await GraphQLClient(store_client).ok("mutation($r: String!) { archiveVersion(ref: $r) { status } }", {"r": ref})
    for data in orphans:
        await put(store_client, data)

    report = await collect(blob_store, HOUR, dry_run=False, now=later())

    assert sorted(report.removed_digests) == sorted(digest_of(d) for d in orphans)
    assert report.blobs_removed == 2 and report.bytes_freed == sum(len(d) for d in orphans)
    assert report.blobs_referenced == 2 and report.blobs_kept_young == 0
    for data in orphans:
        assert not await present(store_client, digest_of(data))
        assert not await BlobRow.exists(digest=digest_of(data))
    for data in (used, archived):  # archive is soft: its blobs are still referenced
        assert (await store_client.get(f"/api/blobs/{digest_of(data)}")).content == data
    again = await collect(blob_store, HOUR, dry_run=False, now=later())
    assert again.blobs_removed == 0 and again.bytes_freed == 0 and again.blobs_referenced == 2


async def test_blobs_younger_than_the_grace_period_stay(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    """An upload whose version is not created yet is unreferenced: the grace period protects it."""
    fresh = await put(store_client, b"pushed a moment ago, createVersion comes next")
    report = await collect(blob_store, HOUR, dry_run=False)
    assert report.blobs_removed == 0 and report.blobs_kept_young == 1
    assert report.bytes_kept_young == len(b"pushed a moment ago, createVersion comes next")
    assert await present(store_client, fresh)
    # Old bytes recorded again a moment ago (a client pushed them again): still protected.
    clock = later()
    await BlobRow.filter(digest=fresh).update(created_at=clock - timedelta(minutes=5))
    assert (await collect(blob_store, HOUR, dry_run=False, now=clock)).blobs_kept_young == 1
    assert await present(store_client, fresh)
    # Once both bytes and record are older than the grace period, it goes.
    await BlobRow.filter(digest=fresh).update(created_at=clock - timedelta(hours=2))
    assert (await collect(blob_store, HOUR, dry_run=False, now=clock)).removed_digests == [fresh]
    assert not await present(store_client, fresh)


async def test_version_created_after_the_upload_keeps_its_blobs(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    """Push, GC runs (blob protected by its age), then createVersion: nothing is lost."""
    data = b"weights" * 1000
    digest = await put(store_client, data)
    assert (await collect(blob_store, HOUR, dry_run=False)).blobs_kept_young == 1
    await version(store_client, "late", {"w.bin": data})
    report = await collect(blob_store, HOUR, dry_run=False, now=later())
    assert report.blobs_removed == 0 and report.blobs_referenced == 1
    assert (await store_client.get(f"/api/blobs/{digest}")).content == data


async def test_dry_run_changes_nothing_and_reports_the_same(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    await version(store_client, "m", {"a.bin": b"kept"})
    orphans = [os.urandom(5000), os.urandom(123)]
    for data in orphans:
        await put(store_client, data)
    upload = (await store_client.post("/api/uploads")).headers["location"]
    await store_client.patch(upload, content=b"x" * 777, headers={"Upload-Offset": "0"})
    clock = later()

    dry = await collect(blob_store, HOUR, dry_run=True, now=clock)

    for data in orphans:
        assert await present(store_client, digest_of(data)) and await BlobRow.exists(digest=digest_of(data))
    assert (await store_client.head(upload)).headers["upload-offset"] == "777"
    assert dry.dry_run and dry.temp_cleaned is None
    assert dry.blobs_removed == 2 and dry.bytes_freed == 5123
    assert dry.uploads_aborted == 1 and dry.upload_bytes_freed == 777
    assert "would free 5900 bytes" in dry.summary()

    real = await collect(blob_store, HOUR, dry_run=False, now=clock)

    assert (real.blobs_removed, real.bytes_freed, real.uploads_aborted, real.upload_bytes_freed) == (
        dry.blobs_removed, dry.bytes_freed, dry.uploads_aborted, dry.upload_bytes_freed)
    assert sorted(real.removed_digests) == sorted(dry.removed_digests)
    assert real.blobs_referenced == dry.blobs_referenced == 1
    assert real.summary().startswith("freed 5900 bytes")
    for data in orphans:
        assert not await present(store_client, digest_of(data))


async def test_blobs_of_a_deleted_model_are_freed(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    shared, own = os.urandom(4096), os.urandom(8192)
    await version(store_client, "keep", {"w.bin": shared})
    await version(store_client, "gone", {"w.bin": shared, "x.bin": own})
    await GraphQLClient(store_client).ok('mutation { deleteModel(name: "gone") { name } }')
    report = await collect(blob_store, HOUR, dry_run=False, now=later())
    assert report.removed_digests == [digest_of(own)] and report.bytes_freed == len(own)
    assert await present(store_client, digest_of(shared))


async def test_stale_uploads_are_aborted_fresh_ones_kept(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    upload = (await store_client.post("/api/uploads")).headers["location"]
    await store_client.patch(upload, content=b"y" * 1000, headers={"Upload-Offset": "0"})
    fresh = await collect(blob_store, HOUR, dry_run=False)
    assert fresh.uploads_aborted == 0 and fresh.uploads_kept_young == 1
    assert (await store_client.head(upload)).headers["upload-offset"] == "1000"
    stale = await collect(blob_store, HOUR, dry_run=False, now=later())
    assert stale.uploads_aborted == 1 and stale.upload_bytes_freed == 1000
    assert (await store_client.head(upload)).status_code == 404
    resumed = await store_client.patch(upload, content=b"z", headers={"Upload-Offset": "1000"})
    assert resumed.status_code == 404


async def test_records_without_bytes_are_dropped(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    """A record whose bytes are gone would let createVersion accept a blob it cannot serve."""
    ghost = digest_of(b"bytes lost with a disk")
    await BlobRow.create(digest=ghost, size=22)
    assert (await collect(blob_store, HOUR, dry_run=False)).records_removed == 0  # young
    dry = await collect(blob_store, HOUR, dry_run=True, now=later())
    assert dry.records_removed == 1 and await BlobRow.exists(digest=ghost)
    report = await collect(blob_store, HOUR, dry_run=False, now=later())
    assert report.records_removed == 1 and report.blobs_removed == 0
    assert not await BlobRow.exists(digest=ghost)
    refused = await GraphQLClient(store_client).error(
        'mutation($d: String!) { createModel(input: {name: "g"}) { name } '
        'createVersion(input: {model: "g", artifacts: [{path: "w", digest: $d}]}) { ref } }', {"d": ghost}
    )
    assert refused["extensions"]["code"] == "NOT_FOUND"


async def test_temp_leftovers_are_cleaned(
    store_client: httpx.AsyncClient, blob_store: BlobStore, request: pytest.FixtureRequest
) -> None:
    if isinstance(blob_store, LocalBlobStore):
        (blob_store.tmp_dir / "deadbeef").write_bytes(b"half a blob")
        os.utime(blob_store.tmp_dir / "deadbeef", (0, 0))
    else:
        assert isinstance(blob_store, S3BlobStore)
        admin = request.getfixturevalue("s3_admin")
        key = f"{blob_store.prefix}tmp/deadbeef"
        await anyio.to_thread.run_sync(
            lambda: admin.put_object(Bucket=blob_store.bucket, Key=key, Body=b"half a blob")
        )
    assert (await collect(blob_store, HOUR, dry_run=True, now=later())).temp_cleaned is None
    assert (await collect(blob_store, 0, dry_run=False)).temp_cleaned == 1
    assert (await collect(blob_store, 0, dry_run=False)).temp_cleaned == 0


async def test_negative_grace_is_refused(blob_store: BlobStore) -> None:
    with pytest.raises(ValueError):
        await collect(blob_store, -1, dry_run=True)


async def test_gc_racing_create_version_never_leaves_a_version_without_bytes(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    """An old unreferenced blob pushed again and named by createVersion while GC sweeps it:
    either the version wins (GC keeps the blob) or GC wins (createVersion answers NOT_FOUND)."""
    gql = GraphQLClient(store_client)
    await gql.ok('mutation { createModel(input: {name: "race"}) { name } }')
    create = ('mutation($d: String!) { createVersion(input: {model: "race", '
              'artifacts: [{path: "model.onnx", digest: $d}]}) { ref } }')
    for i in range(12):
        digest = await put(store_client, mlp_model(hidden=32, features=64, seed=i).SerializeToString())
        task = asyncio.create_task(gql.raw(create, {"d": digest}))
        await asyncio.sleep(0.0005 * (i % 6))
        await collect(blob_store, HOUR, dry_run=False, now=later())
        body = await task
        if body.get("errors"):
            assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        else:
            assert await present(store_client, digest), f"round {i}: a READY version lost its bytes"


async def test_gc_command_frees_unreferenced_blobs(settings: Settings) -> None:
    """`modelyard gc` on a real data dir: dry run first, then the bytes really go."""
    data = os.urandom(4096)
    app = create_app(settings)
    async with LifespanManager(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t",
        headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
    ) as client:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert (await client.put(f"/api/blobs/{digest}", content=data)).status_code == 201
    command = [sys.executable, "-m", "modelyard.cli", "gc", "--data-dir", str(settings.data_dir),
               "--database-url", settings.database_url]
    env = {**os.environ, "MODELYARD_UPLOAD_GRACE_SECONDS": "0"}

    def run(*extra: str) -> str:
        done = subprocess.run([*command, *extra], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("--dry-run").startswith(f"would free {len(data)} bytes")
    blob_file = settings.data_dir / "blobs" / "blobs" / "sha256" / digest.removeprefix("sha256:")
    assert blob_file.exists()
    assert run().startswith(f"freed {len(data)} bytes")
    assert not blob_file.exists()


async def test_bytes_a_crash_left_unrecorded_go_once_old(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    """A kill between the store and the catalog leaves bytes without a record: an unreferenced
    blob like any other, kept while young, removed once old."""
    data = os.urandom(5000)
    info = await blob_store.put(_chunks(data), digest_of(data))
    assert (await collect(blob_store, HOUR, dry_run=False)).blobs_kept_young == 1
    report = await collect(blob_store, HOUR, dry_run=False, now=later())
    assert report.removed_digests == [info.digest]
    assert not await present(store_client, info.digest) and not await BlobRow.exists(digest=info.digest)


async def test_gc_racing_a_read_that_records_never_leaves_a_record_without_bytes(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    """Old unrecorded bytes: a HEAD records them while GC removes them. Either the read wins
    (record and bytes stay) or GC does (neither stays); a record without bytes would let
    `createVersion` accept a blob nobody can download."""
    for i in range(12):
        data = os.urandom(1000 + i)
        digest = (await blob_store.put(_chunks(data), digest_of(data))).digest
        task = asyncio.create_task(store_client.head(f"/api/blobs/{digest}"))
        await asyncio.sleep(0.0005 * (i % 6))
        await collect(blob_store, HOUR, dry_run=False, now=later())
        answer = await task
        recorded, stored = await BlobRow.exists(digest=digest), await blob_store.stat(digest) is not None
        assert recorded == stored, f"round {i}: record {recorded}, bytes {stored}"
        assert answer.status_code in (200, 404)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data
