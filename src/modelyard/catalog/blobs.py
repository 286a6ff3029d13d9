"""Blob records: the catalog's list of blobs the store holds whole and verified, and who may read one.

The store makes a blob visible (atomic rename; S3 commit) before the catalog records it, so a
crash in between leaves bytes without a record (issue 11, item 2). Such bytes are whole and
verified, since nothing else ever reaches a blob's final name, so whoever meets them records
them: HEAD, GET, PUT and finishing an upload all agree with `createVersion`, and a push retried
after the crash completes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from tortoise.transactions import in_transaction

from modelyard.db.tables import ArtifactRow, BlobRow
from modelyard.errors import StorageError
from modelyard.storage.base import BlobInfo, BlobStore, digest_hex


class _Gone(Exception):
    """Raised inside `record_stored`'s transaction to roll it back: the bytes went meanwhile."""


async def record_stored(store: BlobStore, info: BlobInfo) -> bool:
    """Record a blob the store holds (idempotent); False, recording nothing, if it is gone.

    The insert comes first, then the store is asked again, in one transaction. GC removing the
    same blob claims the same row first (`gc._remove`), so one waits for the other (PostgreSQL:
    the unique key; SQLite: the write lock) and a record never outlives its bytes.
    """
    try:
        async with in_transaction():
            await BlobRow.bulk_create([BlobRow(digest=info.digest, size=info.size)], ignore_conflicts=True)
            if await store.stat(info.digest) is None:
                raise _Gone
    except _Gone:
        return False
    return True


async def put_blob(
    store: BlobStore, chunks: AsyncIterable[bytes], digest: str, max_size: int | None
) -> BlobInfo:
    """Store streamed bytes under `digest` (verified) and record them."""
    info = await store.put(chunks, digest, max_size)
    if not await record_stored(store, info):
        raise StorageError(f"blob {digest} was removed by garbage collection as it arrived: send it again")
    return info


async def readable_blob(store: BlobStore, digest: str, namespace: str | None) -> BlobInfo | None:
    """The stored blob, or None when it is missing or hidden from the reader: the same answer.

    A reader restricted to `namespace` sees only blobs some version in that namespace
    references (archived ones too). Bytes found without their record are recorded.
    """
    digest_hex(digest)
    if namespace is not None:
        referenced = ArtifactRow.filter(digest=digest, version__model__namespace=namespace)
        if not await referenced.exists():
            return None
        # Referenced means recorded: createVersion needs the record and GC keeps it.
        return await store.stat(digest)
    info = await store.stat(digest)
    if info is None:
        return None
    if not await BlobRow.exists(digest=digest) and not await record_stored(store, info):
        return None
    return info
