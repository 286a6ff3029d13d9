"""Resumable uploads: each belongs to the token that opened it; one token holds a bounded number.

Ownership lives in the store, which files every upload under its owner's name: no table to keep
in step with the staged bytes, a crash cannot separate the two, and replicas agree. Another
token asking about an upload gets the answer for one that never existed (issue 11, item 5). A
token at its cap first loses its uploads idle for the grace period (those `gc` would abort).
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modelyard.catalog.blobs import record_stored
from modelyard.errors import LimitError, NotFoundError, StorageError
from modelyard.storage.base import BlobInfo, BlobStore, digest_hex


@dataclass(frozen=True)
class UploadRules:
    """The limits uploads live by (from Settings)."""

    max_open: int
    idle_seconds: int
    max_blob_size: int

    def missing(self, upload_id: str) -> NotFoundError:
        """The one answer for an upload that is not the caller's to see, whatever the reason."""
        return NotFoundError(
            f"no upload {upload_id!r}: an upload ends when finished or aborted, answers only the "
            f"token that opened it, and expires after {self.idle_seconds} s without new bytes"
        )


async def start_upload(store: BlobStore, owner: str, rules: UploadRules) -> str:
    """Open an upload for `owner`; LIMIT when it holds `max_open` and none has been idle that long."""
    if await store.count_uploads(owner) >= rules.max_open:
        cutoff = datetime.now(UTC) - timedelta(seconds=rules.idle_seconds)
        idle = [u async for u in store.iter_uploads(owner) if u.modified < cutoff]
        for upload in idle:
            await store.abort_upload(owner, upload.upload_id)
        if await store.count_uploads(owner) >= rules.max_open:
            raise LimitError(
                f"token {owner!r} holds {rules.max_open} open uploads, the most one token may "
                f"(MODELYARD_MAX_OPEN_UPLOADS): finish or DELETE one first; an upload expires "
                f"after {rules.idle_seconds} s without new bytes"
            )
    return await store.start_upload(owner)


async def upload_size(store: BlobStore, owner: str, upload_id: str, rules: UploadRules) -> int:
    """Bytes the owner's upload holds."""
    try:
        return await store.upload_size(owner, upload_id)
    except NotFoundError:
        raise rules.missing(upload_id) from None


async def append(
    store: BlobStore, owner: str, upload_id: str, offset: int, chunks: AsyncIterable[bytes], rules: UploadRules
) -> int:
    """Add bytes at `offset` of the owner's upload; its new size."""
    try:
        return await store.append(owner, upload_id, offset, chunks, rules.max_blob_size)
    except NotFoundError:
        raise rules.missing(upload_id) from None


async def finish_upload(store: BlobStore, owner: str, upload_id: str, digest: str, rules: UploadRules,
                        claimant: str | None = None) -> BlobInfo:
    """Verify and store the owner's upload as the blob `digest`, and record it (and, for a token
    bound to a namespace, that the namespace sent these bytes)."""
    digest_hex(digest)
    try:
        info = await store.finish_upload(owner, upload_id, digest)
    except NotFoundError:
        raise rules.missing(upload_id) from None
    if not await record_stored(store, info, claimant):
        raise StorageError(f"blob {digest} was removed by garbage collection as it was stored: upload it again")
    return info


async def abort_upload(store: BlobStore, owner: str, upload_id: str, rules: UploadRules) -> None:
    """Discard the owner's upload."""
    if not await store.abort_upload(owner, upload_id):
        raise rules.missing(upload_id)
