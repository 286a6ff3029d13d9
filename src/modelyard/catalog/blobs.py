"""Blob records: the catalog's list of blobs the store holds whole and verified."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from modelyard.db.tables import BlobRow


async def record_blob(digest: str, size: int) -> BlobRow:
    """Note that the store holds `digest` (idempotent: replicas may race to record one blob)."""
    row = await BlobRow.get_or_none(digest=digest)
    if row is not None:
        return row
    try:
        return await BlobRow.create(digest=digest, size=size)
    except IntegrityError:
        return await BlobRow.get(digest=digest)
