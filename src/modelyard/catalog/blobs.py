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

from modelyard.db.tables import ArtifactRow, BlobClaimRow, BlobRow
from modelyard.errors import StorageError
from modelyard.storage.base import BlobInfo, BlobStore, digest_hex


class _Gone(Exception):
    """Raised inside `record_stored`'s transaction to roll it back: the bytes went meanwhile."""


async def record_stored(store: BlobStore, info: BlobInfo, claimant: str | None = None) -> bool:
    """Record a blob the store holds (idempotent); False, recording nothing, if it is gone.
    `claimant`: the namespace whose token just sent the bytes (see `usable_digests`).

    The insert comes first, then the store is asked again, in one transaction. GC removing the
    same blob claims the same row first (`gc._remove`), so one waits for the other (PostgreSQL:
    the unique key; SQLite: the write lock) and a record never outlives its bytes.
    """
    try:
        async with in_transaction():
            await BlobRow.bulk_create([BlobRow(digest=info.digest, size=info.size)], ignore_conflicts=True)
            if claimant is not None:
                await BlobClaimRow.bulk_create([BlobClaimRow(digest=info.digest, namespace=claimant)],
                                               ignore_conflicts=True)
            if await store.stat(info.digest) is None:
                raise _Gone
    except _Gone:
        return False
    return True


async def put_blob(
    store: BlobStore, chunks: AsyncIterable[bytes], digest: str, max_size: int | None,
    claimant: str | None = None,
) -> BlobInfo:
    """Store streamed bytes under `digest` (verified, even when the blob exists) and record them."""
    info = await store.put(chunks, digest, max_size)
    if not await record_stored(store, info, claimant):
        raise StorageError(f"blob {digest} was removed by garbage collection as it arrived: send it again")
    return info


async def usable_digests(digests: set[str], namespace: str) -> set[str]:
    """Of `digests`, those a writer confined to `namespace` (private reads) may put in a version:
    blobs a version of the namespace already holds, or whose bytes a token of the namespace has
    sent itself. Knowing a digest is not enough: naming another namespace's blob in a version of
    one's own would otherwise be a way to read it."""
    if not digests:
        return set()
    held = await ArtifactRow.filter(digest__in=list(digests), version__model__namespace=namespace
                                    ).values_list("digest", flat=True)
    sent = await BlobClaimRow.filter(digest__in=list(digests), namespace=namespace).values_list("digest", flat=True)
    return {str(d) for d in [*held, *sent]}


async def readable_blob(store: BlobStore, digest: str, namespace: str | None) -> BlobInfo | None:
    """The stored blob, or None when it is missing or hidden from the reader: the same answer.

    A reader restricted to `namespace` sees only blobs some version in that namespace
    references (archived ones too) or whose bytes the namespace sent (`usable_digests`). Bytes
    found without their record are recorded.
    """
    digest_hex(digest)
    if namespace is not None:
        if not await usable_digests({digest}, namespace):
            return None
        # Held or sent means recorded (GC drops a blob's claims with it): stat is enough.
        return await store.stat(digest)
    info = await store.stat(digest)
    if info is None:
        return None
    if not await BlobRow.exists(digest=digest) and not await record_stored(store, info):
        return None
    return info
