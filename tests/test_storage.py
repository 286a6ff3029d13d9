"""The BlobStore contract, run on both backends: a local folder and S3 (moto's real server)."""

from __future__ import annotations

import asyncio
import hashlib
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from modelyard.errors import ConflictError, InvalidError, LimitError, NotFoundError
from modelyard.storage import CHUNK_SIZE, BlobStore, LocalBlobStore, open_store
from modelyard.storage.s3 import PART_SIZE, S3BlobStore
from tests.conftest import S3_KEYS

MiB = 1024 * 1024
OWNER = "ci"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def blob(size: int, seed: int = 0) -> bytes:
    """`size` bytes that differ from one seed to another and from one MiB to the next."""
    block = hashlib.sha256(f"{seed}".encode()).digest() * (MiB // 32)
    return b"".join(bytes([i % 256]) + block[1:] for i in range(size // MiB + 1))[:size]


async def stream(data: bytes, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    """The bytes as an HTTP server hands them over: small pieces."""
    for start in range(0, len(data), piece):
        yield data[start : start + piece]
        await asyncio.sleep(0)


class ClientWentAway(Exception):
    """What an ASGI server raises when the client disconnects mid-body."""


async def broken(data: bytes, fail_after: int) -> AsyncIterator[bytes]:
    """The first `fail_after` bytes, then the connection drops."""
    async for piece in stream(data[:fail_after]):
        yield piece
    raise ClientWentAway


async def read(store: BlobStore, digest: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.open(digest, start, end)])


def s3_keys(store: S3BlobStore) -> tuple[list[str], list[str]]:
    """Every object key under the store's prefix, and the keys of unfinished multipart uploads."""
    client = store._client
    objects = [
        item["Key"][len(store.prefix) :]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
        for item in page.get("Contents", [])
    ]
    uploads = client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return objects, [upload["Key"] for upload in uploads]


async def leftovers(store: BlobStore) -> list[str]:
    """Temporary data of puts: must be empty whenever no put is running."""
    if isinstance(store, LocalBlobStore):
        return sorted(p.name for p in store.tmp_dir.iterdir())
    assert isinstance(store, S3BlobStore)
    objects, multipart = await anyio.to_thread.run_sync(s3_keys, store)
    return sorted([key for key in objects if key.startswith("tmp/")] + multipart)


async def stored(store: BlobStore) -> dict[str, int]:
    return {info.digest: info.size async for info in store.iter_blobs()}


def replica(store: BlobStore) -> BlobStore:
    """Another server replica's view of the same store."""
    if isinstance(store, LocalBlobStore):
        return LocalBlobStore(store.root)
    assert isinstance(store, S3BlobStore)
    return S3BlobStore(store.bucket, store.prefix, endpoint_url=store.endpoint_url, **S3_KEYS)


# -- put, stat, open -------------------------------------------------------------------------


async def test_put_stat_open(blob_store: BlobStore) -> None:
    data = blob(3 * MiB + 123)
    before = time.time()
    info = await blob_store.put(stream(data))
    assert info.digest == digest_of(data)
    assert info.size == len(data)
    assert info.modified.tzinfo is not None and info.modified.timestamp() > before - 5
    assert await blob_store.stat(info.digest) == info
    assert await blob_store.exists(info.digest)
    chunks = [chunk async for chunk in blob_store.open(info.digest)]
    assert b"".join(chunks) == data
    assert all(len(chunk) <= CHUNK_SIZE for chunk in chunks) and len(chunks) >= 4


@pytest.mark.parametrize(
    "start, end",
    [
        (0, None), (0, 1), (1, 2), (10, 20), (CHUNK_SIZE - 1, CHUNK_SIZE + 1),
        (2 * MiB + 7, None), (2 * MiB + 99, 2 * MiB + 100), (2 * MiB + 99, None),
        (2 * MiB + 100, None), (5, 2 * MiB + 5000), (7, 7),
    ],
)
async def test_ranges(blob_store: BlobStore, start: int, end: int | None) -> None:
    """Byte ranges [start, end), the last byte included, an end past the size clamped."""
    data = blob(2 * MiB + 100)
    info = await blob_store.put(stream(data), digest_of(data))
    assert await read(blob_store, info.digest, start, end) == data[start:end]


async def test_empty_blob(blob_store: BlobStore) -> None:
    empty = digest_of(b"")
    info = await blob_store.put(stream(b""), empty)
    assert (info.digest, info.size) == (empty, 0)
    assert (await blob_store.stat(empty)) is not None
    assert await read(blob_store, empty) == b""
    assert await read(blob_store, empty, 0, 0) == b""
    with pytest.raises(InvalidError):
        await read(blob_store, empty, 1)


async def test_bad_ranges_and_missing_blobs(blob_store: BlobStore) -> None:
    data = b"0123456789"
    digest = (await blob_store.put(stream(data))).digest
    for start, end in [(11, None), (-1, None), (5, 4), (11, 12)]:
        with pytest.raises(InvalidError):
            await read(blob_store, digest, start, end)
    assert await read(blob_store, digest, 10) == b""
    missing = digest_of(b"missing")
    assert await blob_store.stat(missing) is None
    assert not await blob_store.exists(missing)
    with pytest.raises(NotFoundError):
        await read(blob_store, missing)
    with pytest.raises(NotFoundError):
        await read(blob_store, missing, 0, 0)


@pytest.mark.parametrize(
    "digest",
    ["", "sha256:", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256:" + "a" * 64 + "\n",
     "md5:" + "a" * 32, "a" * 64, "sha256:../../etc/passwd"],
)
async def test_malformed_digests_are_refused(blob_store: BlobStore, digest: str) -> None:
    with pytest.raises(InvalidError):
        await blob_store.stat(digest)
    with pytest.raises(InvalidError):
        await read(blob_store, digest)
    with pytest.raises(InvalidError):
        await blob_store.put(stream(b"x"), digest)
    with pytest.raises(InvalidError):
        await blob_store.delete(digest)
    upload = await blob_store.start_upload(OWNER)
    with pytest.raises(InvalidError):
        await blob_store.finish_upload(OWNER, upload, digest)


# -- refusals leave nothing behind -----------------------------------------------------------


@pytest.mark.parametrize("size", [1000, PART_SIZE + MiB])  # one PUT, and a multipart upload
async def test_digest_mismatch_stores_nothing(blob_store: BlobStore, size: int) -> None:
    data = blob(size)
    wrong = digest_of(b"something else")
    with pytest.raises(InvalidError) as refused:
        await blob_store.put(stream(data), wrong)
    assert wrong in refused.value.message and digest_of(data) in refused.value.message
    assert await blob_store.stat(wrong) is None
    assert await blob_store.stat(digest_of(data)) is None
    assert await stored(blob_store) == {}
    assert await leftovers(blob_store) == []


@pytest.mark.parametrize("size", [1000, PART_SIZE + MiB])
async def test_max_size_is_enforced(blob_store: BlobStore, size: int) -> None:
    data = blob(size)
    for expected in (digest_of(data), None):
        with pytest.raises(LimitError):
            await blob_store.put(stream(data), expected, max_size=size - 1)
    assert await stored(blob_store) == {}
    assert await leftovers(blob_store) == []
    info = await blob_store.put(stream(data), digest_of(data), max_size=size)
    assert info.size == size


@pytest.mark.parametrize("with_digest", [True, False])
@pytest.mark.parametrize("size", [3 * MiB, PART_SIZE + 3 * MiB])
async def test_client_disconnects_mid_put(blob_store: BlobStore, size: int, with_digest: bool) -> None:
    data = blob(size)
    expected = digest_of(data) if with_digest else None
    with pytest.raises(ClientWentAway):
        await blob_store.put(broken(data, size - MiB), expected)
    assert await stored(blob_store) == {}
    assert await leftovers(blob_store) == []


@pytest.mark.parametrize("size", [3 * MiB, PART_SIZE + 3 * MiB])
async def test_cancelled_put_leaves_nothing(blob_store: BlobStore, size: int) -> None:
    """A request task cancelled mid-body (server shutdown, timeout) cleans up all the same."""
    data = blob(size)
    stalled = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        async for piece in stream(data):
            yield piece
        stalled.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(blob_store.put, stalls(), digest_of(data + b"more"))
        await stalled.wait()
        await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    assert await stored(blob_store) == {}
    assert await leftovers(blob_store) == []


# -- idempotence and concurrency -------------------------------------------------------------


async def test_putting_an_existing_blob_changes_nothing(blob_store: BlobStore) -> None:
    data = blob(2 * MiB)
    first = await blob_store.put(stream(data))
    again = await blob_store.put(stream(data), first.digest)
    assert again == first
    again = await blob_store.put(stream(data))
    assert (again.digest, again.size) == (first.digest, first.size)
    # The incoming bytes are still checked: wrong bytes under an existing digest are refused.
    with pytest.raises(InvalidError):
        await blob_store.put(stream(blob(2 * MiB, seed=1)), first.digest)
    with pytest.raises(LimitError):
        await blob_store.put(stream(data), first.digest, max_size=MiB)
    assert await read(blob_store, first.digest) == data
    assert await stored(blob_store) == {first.digest: len(data)}
    assert await leftovers(blob_store) == []


@pytest.mark.parametrize("size", [MiB, PART_SIZE + MiB])
async def test_concurrent_puts_of_one_blob(blob_store: BlobStore, size: int) -> None:
    data = blob(size)
    digest = digest_of(data)
    results = await asyncio.gather(
        *(blob_store.put(stream(data), digest if i % 2 else None) for i in range(4))
    )
    assert {info.digest for info in results} == {digest}
    assert await stored(blob_store) == {digest: size}
    assert await read(blob_store, digest) == data
    assert await leftovers(blob_store) == []


async def test_delete(blob_store: BlobStore) -> None:
    keep = await blob_store.put(stream(b"keep"))
    gone = await blob_store.put(stream(b"gone"))
    assert await blob_store.delete(gone.digest) is True
    assert await blob_store.stat(gone.digest) is None
    assert await blob_store.delete(gone.digest) is False
    with pytest.raises(NotFoundError):
        await read(blob_store, gone.digest)
    assert await stored(blob_store) == {keep.digest: 4}


async def test_iter_blobs(blob_store: BlobStore) -> None:
    assert await stored(blob_store) == {}
    infos = [await blob_store.put(stream(blob(size, seed=size))) for size in (0, 10, MiB + 1)]
    listed = [info async for info in blob_store.iter_blobs()]
    assert {info.digest: info.size for info in listed} == {i.digest: i.size for i in infos}
    assert all(info.modified.tzinfo is not None for info in listed)


# -- presigned URLs --------------------------------------------------------------------------


async def test_presign(blob_store: BlobStore) -> None:
    data = blob(MiB + 10)
    info = await blob_store.put(stream(data))
    url = await blob_store.presign(info.digest, 300)
    if isinstance(blob_store, LocalBlobStore):
        assert url is None
        return
    assert url is not None and url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient() as http:
        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == data
        part = await http.get(url, headers={"Range": f"bytes=100-{len(data) - 1}"})
        assert part.status_code == 206 and part.content == data[100:]


# -- resumable uploads -----------------------------------------------------------------------


async def test_resumable_upload(blob_store: BlobStore) -> None:
    data = blob(PART_SIZE + 2 * MiB + 5)
    upload = await blob_store.start_upload(OWNER)
    assert len(upload) == 32
    assert await blob_store.upload_size(OWNER, upload) == 0
    cut = [0, 1000, 3 * MiB, PART_SIZE + MiB, len(data)]
    for start, end in zip(cut, cut[1:], strict=False):
        assert await blob_store.append(OWNER, upload, start, stream(data[start:end])) == end
        assert await blob_store.upload_size(OWNER, upload) == end
    with pytest.raises(ConflictError) as refused:
        await blob_store.append(OWNER, upload, 5, stream(b"late"))
    assert str(len(data)) in refused.value.message
    assert await blob_store.upload_size(OWNER, upload) == len(data)
    assert await blob_store.stat(digest_of(data)) is None  # not visible before the finish
    info = await blob_store.finish_upload(OWNER, upload, digest_of(data))
    assert (info.digest, info.size) == (digest_of(data), len(data))
    assert await read(blob_store, info.digest) == data
    with pytest.raises(NotFoundError):
        await blob_store.upload_size(OWNER, upload)
    assert [u async for u in blob_store.iter_uploads()] == []
    assert await leftovers(blob_store) == []


async def test_upload_of_an_existing_blob(blob_store: BlobStore) -> None:
    data = blob(MiB)
    first = await blob_store.put(stream(data))
    upload = await blob_store.start_upload(OWNER)
    await blob_store.append(OWNER, upload, 0, stream(data))
    assert await blob_store.finish_upload(OWNER, upload, first.digest) == first
    assert [u async for u in blob_store.iter_uploads()] == []


async def test_upload_with_wrong_digest_is_discarded(blob_store: BlobStore) -> None:
    data = blob(PART_SIZE + MiB)
    upload = await blob_store.start_upload(OWNER)
    await blob_store.append(OWNER, upload, 0, stream(data))
    wrong = digest_of(b"not it")
    with pytest.raises(InvalidError) as refused:
        await blob_store.finish_upload(OWNER, upload, wrong)
    assert wrong in refused.value.message and digest_of(data) in refused.value.message
    assert await stored(blob_store) == {}
    with pytest.raises(NotFoundError):
        await blob_store.upload_size(OWNER, upload)
    assert await leftovers(blob_store) == []


async def test_truncated_upload_is_refused(blob_store: BlobStore) -> None:
    data = blob(3 * MiB)
    upload = await blob_store.start_upload(OWNER)
    await blob_store.append(OWNER, upload, 0, stream(data[:-1]))
    with pytest.raises(InvalidError):
        await blob_store.finish_upload(OWNER, upload, digest_of(data))
    assert await stored(blob_store) == {}


@pytest.mark.parametrize("upload", ["0" * 32, "../../blobs", "", "A" * 32])
async def test_unknown_upload(blob_store: BlobStore, upload: str) -> None:
    with pytest.raises(NotFoundError):
        await blob_store.append(OWNER, upload, 0, stream(b"x"))
    with pytest.raises(NotFoundError):
        await blob_store.upload_size(OWNER, upload)
    with pytest.raises(NotFoundError):
        await blob_store.finish_upload(OWNER, upload, digest_of(b"x"))
    assert await blob_store.abort_upload(OWNER, upload) is False
    assert await stored(blob_store) == {}


async def test_abort_upload(blob_store: BlobStore) -> None:
    upload = await blob_store.start_upload(OWNER)
    await blob_store.append(OWNER, upload, 0, stream(b"abc"))
    assert await blob_store.abort_upload(OWNER, upload) is True
    assert await blob_store.abort_upload(OWNER, upload) is False
    with pytest.raises(NotFoundError):
        await blob_store.append(OWNER, upload, 3, stream(b"def"))
    with pytest.raises(NotFoundError):
        await blob_store.finish_upload(OWNER, upload, digest_of(b"abc"))
    assert [u async for u in blob_store.iter_uploads()] == []


async def test_append_over_the_limit_is_refused_whole(blob_store: BlobStore) -> None:
    upload = await blob_store.start_upload(OWNER)
    await blob_store.append(OWNER, upload, 0, stream(blob(MiB)), max_size=PART_SIZE + 2 * MiB)
    with pytest.raises(LimitError):
        await blob_store.append(OWNER, upload, MiB, stream(blob(PART_SIZE + 2 * MiB)), max_size=PART_SIZE + 2 * MiB)
    assert await blob_store.upload_size(OWNER, upload) == MiB
    assert await blob_store.append(OWNER, upload, MiB, stream(b"fits"), max_size=MiB + 4) == MiB + 4


async def test_client_disconnects_mid_append(blob_store: BlobStore) -> None:
    """What arrived before the connection dropped stays staged; the client resumes from there."""
    data = blob(PART_SIZE + 4 * MiB)
    upload = await blob_store.start_upload(OWNER)
    with pytest.raises(ClientWentAway):
        await blob_store.append(OWNER, upload, 0, broken(data, PART_SIZE + MiB + 5))
    arrived = await blob_store.upload_size(OWNER, upload)
    assert arrived == PART_SIZE + MiB + 5
    assert await blob_store.append(OWNER, upload, arrived, stream(data[arrived:])) == len(data)
    info = await blob_store.finish_upload(OWNER, upload, digest_of(data))
    assert await read(blob_store, info.digest, len(data) - 10) == data[-10:]


async def test_racing_appends_at_one_offset(blob_store: BlobStore) -> None:
    """Two requests at the same offset (say on two replicas): one wins, the other is refused."""
    upload = await blob_store.start_upload(OWNER)
    other = replica(blob_store)
    release = anyio.Event()

    async def slow(data: bytes) -> AsyncIterator[bytes]:
        yield data[:10]
        await release.wait()
        yield data[10:]

    async with other:
        results: list[Any] = []

        async def attempt(store: BlobStore, data: bytes) -> None:
            try:
                results.append(await store.append(OWNER, upload, 0, slow(data)))
            except ConflictError as exc:
                results.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, blob_store, b"a" * 100)
            tg.start_soon(attempt, other, b"b" * 100)
            await anyio.sleep(0.5)
            release.set()
    assert sorted(type(r).__name__ for r in results) == ["ConflictError", "int"]
    assert await blob_store.upload_size(OWNER, upload) == 100


async def test_upload_across_replicas(blob_store: BlobStore) -> None:
    """PATCHes land on different replicas, the finish on a third: the staging is shared."""
    data = blob(3 * MiB)
    second, third = replica(blob_store), replica(blob_store)
    async with second, third:
        upload = await blob_store.start_upload(OWNER)
        await second.append(OWNER, upload, 0, stream(data[:MiB]))
        assert await third.upload_size(OWNER, upload) == MiB
        await blob_store.append(OWNER, upload, MiB, stream(data[MiB:]))
        info = await third.finish_upload(OWNER, upload, digest_of(data))
    assert await read(blob_store, info.digest) == data


async def test_iter_uploads(blob_store: BlobStore) -> None:
    before = time.time()
    empty = await blob_store.start_upload(OWNER)
    busy = await blob_store.start_upload(OWNER)
    await blob_store.append(OWNER, busy, 0, stream(b"x" * 1000))
    theirs = await blob_store.start_upload("other")
    uploads = {u.upload_id: u async for u in blob_store.iter_uploads()}
    assert {k: (u.owner, u.size) for k, u in uploads.items()} == {
        empty: (OWNER, 0), busy: (OWNER, 1000), theirs: ("other", 0)}
    assert all(u.modified.timestamp() > before - 5 for u in uploads.values())
    assert sorted([u.upload_id async for u in blob_store.iter_uploads(OWNER)]) == sorted([empty, busy])
    assert await blob_store.count_uploads(OWNER) == 2 and await blob_store.count_uploads("nobody") == 0


@pytest.mark.parametrize("other", ["CI", "ci2", "c", "ä/../ci"])
async def test_an_upload_is_found_only_by_its_owner(blob_store: BlobStore, other: str) -> None:
    """Another owner (even one differing only in case) finds nothing, and changes nothing."""
    data = b"abc" * 1000
    upload = await blob_store.start_upload(OWNER)
    await blob_store.append(OWNER, upload, 0, stream(data[:100]))
    with pytest.raises(NotFoundError):
        await blob_store.upload_size(other, upload)
    with pytest.raises(NotFoundError):
        await blob_store.append(other, upload, 100, stream(data[100:]))
    with pytest.raises(NotFoundError):
        await blob_store.finish_upload(other, upload, digest_of(data[:100]))
    assert await blob_store.abort_upload(other, upload) is False
    assert await blob_store.upload_size(OWNER, upload) == 100
    await blob_store.append(OWNER, upload, 100, stream(data[100:]))
    assert (await blob_store.finish_upload(OWNER, upload, digest_of(data))).size == len(data)
    with pytest.raises(InvalidError):
        await blob_store.start_upload("")


async def test_an_upload_whose_marker_is_gone_is_over(blob_store: BlobStore) -> None:
    """S3 ends an upload by its `started` marker, then removes its pieces: a crash in between
    leaves pieces that no request finds but `iter_uploads` lists (so gc aborts them)."""
    if not isinstance(blob_store, S3BlobStore):
        pytest.skip("a local upload is one file: it ends with one rename or unlink")
    upload = await blob_store.start_upload(OWNER)
    await blob_store.append(OWNER, upload, 0, stream(b"x" * 1000))
    marker = f"{blob_store._upload_prefix(OWNER, upload)}started"
    await anyio.to_thread.run_sync(lambda: blob_store._client.delete_object(Bucket=blob_store.bucket, Key=marker))
    with pytest.raises(NotFoundError):
        await blob_store.upload_size(OWNER, upload)
    assert [(u.owner, u.upload_id) async for u in blob_store.iter_uploads()] == [(OWNER, upload)]
    assert await blob_store.abort_upload(OWNER, upload) is True
    assert [u async for u in blob_store.iter_uploads()] == []


async def test_clean_temp_removes_uploads_of_the_layout_before_owners(blob_store: BlobStore) -> None:
    """`uploads/<id>` (no owner) was the layout before uploads had owners: swept once old."""
    legacy = "f" * 32
    current = await blob_store.start_upload(OWNER)
    if isinstance(blob_store, LocalBlobStore):
        (blob_store.uploads_dir / legacy).write_bytes(b"staged long ago")
    else:
        assert isinstance(blob_store, S3BlobStore)
        for name, body in (("started", b""), ("0" * 20, b"staged long ago")):
            key = f"{blob_store.prefix}uploads/{legacy}/{name}"
            await anyio.to_thread.run_sync(
                lambda k=key, b=body: blob_store._client.put_object(Bucket=blob_store.bucket, Key=k, Body=b))
    assert [u.upload_id async for u in blob_store.iter_uploads()] == [current]
    assert await blob_store.clean_temp(older_than_seconds=3600) == 0
    assert await blob_store.clean_temp(older_than_seconds=-60) >= 1
    assert [u.upload_id async for u in blob_store.iter_uploads()] == [current]
    assert await blob_store.upload_size(OWNER, current) == 0
    if isinstance(blob_store, LocalBlobStore):
        assert not (blob_store.uploads_dir / legacy).exists()
    else:
        objects, _ = await anyio.to_thread.run_sync(s3_keys, blob_store)
        assert [key for key in objects if legacy in key] == []


async def test_clean_temp_removes_only_old_leftovers(blob_store: BlobStore) -> None:
    """Leftovers of a process that died mid-put are swept once older than the grace period."""
    if isinstance(blob_store, LocalBlobStore):
        (blob_store.tmp_dir / "deadbeef").write_bytes(b"half a blob")
        assert await blob_store.clean_temp(older_than_seconds=3600) == 0
    else:
        assert isinstance(blob_store, S3BlobStore)
        client, bucket, prefix = blob_store._client, blob_store.bucket, blob_store.prefix

        def crash(multipart: bool) -> None:
            if multipart:
                client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}blobs/sha256/{'0' * 64}")
            else:
                client.put_object(Bucket=bucket, Key=f"{prefix}tmp/deadbeef", Body=b"x")

        await anyio.to_thread.run_sync(crash, False)
        assert await blob_store.clean_temp(older_than_seconds=3600) == 0
        # moto reports every multipart upload as initiated in 2010, so only after the check above.
        await anyio.to_thread.run_sync(crash, True)
    assert await leftovers(blob_store) != []
    assert await blob_store.clean_temp(older_than_seconds=-60) >= 1
    assert await leftovers(blob_store) == []


# -- memory stays flat -----------------------------------------------------------------------

LARGE = 64 * MiB


async def generated(size: int, hasher: Any) -> AsyncIterator[bytes]:
    """`size` bytes made on the fly in 64 KiB pieces, hashed as they go."""
    piece = 64 * 1024
    for offset in range(0, size, piece):
        data = offset.to_bytes(8, "big") * (piece // 8)
        hasher.update(data)
        yield data


async def test_memory_stays_flat_for_a_large_blob(blob_store: BlobStore, capsys: pytest.CaptureFixture[str]) -> None:
    """Put, read and upload-resumably 64 MiB while tracemalloc watches the peak."""
    sent = hashlib.sha256()
    tracemalloc.start()
    try:
        info = await blob_store.put(generated(LARGE, sent))
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        received = hashlib.sha256()
        async for chunk in blob_store.open(info.digest):
            received.update(chunk)
        read_peak = tracemalloc.get_traced_memory()[1]
        await blob_store.delete(info.digest)
        tracemalloc.reset_peak()
        upload = await blob_store.start_upload(OWNER)
        await blob_store.append(OWNER, upload, 0, generated(LARGE, hashlib.sha256()))
        await blob_store.finish_upload(OWNER, upload, info.digest)
        upload_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.digest == f"sha256:{sent.hexdigest()}" == f"sha256:{received.hexdigest()}"
    assert info.size == LARGE
    with capsys.disabled():
        print(
            f"\n[{type(blob_store).__name__}] 64 MiB tracemalloc peaks: put {put_peak / MiB:.1f} MiB,"
            f" read {read_peak / MiB:.1f} MiB, append+finish {upload_peak / MiB:.1f} MiB"
        )
    for peak in (put_peak, read_peak, upload_peak):
        assert peak < 16 * MiB


# -- choosing a backend ----------------------------------------------------------------------


def test_open_store(tmp_path: Path) -> None:
    local = open_store(f"file://{tmp_path}/blobs", endpoint_url="ignored")
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "blobs"
    plain = open_store("data/blobs")
    assert isinstance(plain, LocalBlobStore) and plain.root == Path("data/blobs")
    s3 = open_store("s3://models/registry/prod/", endpoint_url="http://127.0.0.1:9", region="x")
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("models", "registry/prod/", "http://127.0.0.1:9")
    assert isinstance(open_store("s3://models"), S3BlobStore)
    for bad in ("", "s3://", "http://example.com/x", "file://otherhost/x", "s3://b/p?x=1"):
        with pytest.raises(InvalidError):
            open_store(bad)
