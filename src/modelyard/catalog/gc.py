"""Garbage collection: remove blobs no version references, stale uploads and dead temp data.

The rule. A blob is removed only when

  1. no artifact of any version names it (archived versions included: archive is soft), and
  2. both its bytes in the store and its catalog record (`BlobRow`) are older than the grace
     period (`MODELYARD_UPLOAD_GRACE_SECONDS`, a day by default).

A client pushes blobs first and creates the version after; between the two a blob is
unreferenced. Rule 2 covers that gap: a blob just stored, or just recorded again by a new upload
of bytes the store already held, is young and survives. Each removal re-checks rules 1 and 2 in
a transaction that deletes the blob's record first (its row lock on PostgreSQL, the write lock
on SQLite), then re-reads, then deletes the bytes and commits: a `createVersion` that re-checks
its blobs under lock in its own transaction either commits first (GC sees the artifact and rolls
back) or finds the record gone and refuses with NOT_FOUND, never pointing at missing bytes.

Uploads that have not grown for the grace period are aborted, and temporary data of puts that
died with their process is removed (`BlobStore.clean_temp`). Bytes a crash left without their
record are unreferenced blobs like any other: recorded by the next request that meets them,
removed here once old. Catalog records whose bytes are gone, unreferenced and old, are dropped
so `createVersion` cannot accept them.

A dry run changes nothing and reports what a real run would remove; the store offers no way to
count temporary data without removing it, so a dry run reports `temp_cleaned` as None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from modelyard.db.tables import ArtifactRow, BlobClaimRow, BlobRow
from modelyard.storage.base import BlobInfo, BlobStore

_BATCH = 500
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class GcReport:
    """What a collection removed (or, in a dry run, would remove) and what it kept."""

    dry_run: bool
    grace_seconds: int
    blobs_removed: int = 0
    bytes_freed: int = 0
    removed_digests: list[str] = field(default_factory=list)
    records_removed: int = 0  # catalog records of blobs whose bytes were already gone
    uploads_aborted: int = 0
    upload_bytes_freed: int = 0
    temp_cleaned: int | None = 0  # None in a dry run: not counted
    blobs_referenced: int = 0
    blobs_kept_young: int = 0
    bytes_kept_young: int = 0
    uploads_kept_young: int = 0

    @property
    def total_bytes_freed(self) -> int:
        """Blob bytes plus bytes staged by aborted uploads."""
        return self.bytes_freed + self.upload_bytes_freed

    def summary(self) -> str:
        """One line for the CLI."""
        verb = "would free" if self.dry_run else "freed"
        temp = "not counted" if self.temp_cleaned is None else str(self.temp_cleaned)
        return (
            f"{verb} {self.total_bytes_freed} bytes: {self.blobs_removed} blobs "
            f"({self.bytes_freed} bytes), {self.uploads_aborted} stale uploads "
            f"({self.upload_bytes_freed} bytes), {self.records_removed} records without bytes, "
            f"temp files {temp}; kept {self.blobs_referenced} referenced blobs and "
            f"{self.blobs_kept_young} blobs ({self.bytes_kept_young} bytes) and "
            f"{self.uploads_kept_young} uploads younger than {self.grace_seconds} s"
        )


async def collect(
    store: BlobStore, grace_seconds: int, dry_run: bool, *, now: datetime | None = None
) -> GcReport:
    """Remove unreferenced blobs older than the grace period, stale uploads and dead temp data.

    `now` stands in for the clock (tests age data by moving it forward).
    """
    if grace_seconds < 0:
        raise ValueError("grace_seconds must be >= 0")
    report = GcReport(dry_run=dry_run, grace_seconds=grace_seconds)
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=grace_seconds)
    candidates: list[BlobInfo] = []
    batch: list[BlobInfo] = []
    async for info in store.iter_blobs():
        batch.append(info)
        if len(batch) >= _BATCH:
            candidates += await _unreferenced_old(batch, cutoff, report)
            batch = []
    if batch:
        candidates += await _unreferenced_old(batch, cutoff, report)
    for info in candidates:
        size = info.size if dry_run else await _remove(store, info.digest, cutoff)
        if size is None:  # referenced or touched since the scan: it stays
            report.blobs_kept_young += 1
            report.bytes_kept_young += info.size
            continue
        report.blobs_removed += 1
        report.bytes_freed += size
        report.removed_digests.append(info.digest)
    await _drop_records_without_bytes(store, cutoff, set(report.removed_digests), report)
    await _abort_stale_uploads(store, cutoff, report)
    report.temp_cleaned = None if dry_run else await store.clean_temp(grace_seconds)
    return report


async def _unreferenced_old(batch: list[BlobInfo], cutoff: datetime, report: GcReport) -> list[BlobInfo]:
    """The blobs of `batch` that no artifact names and that are older than `cutoff` (two queries)."""
    digests = [b.digest for b in batch]
    referenced = set(
        await ArtifactRow.filter(digest__in=digests).distinct().values_list("digest", flat=True)
    )
    recorded = dict(
        await BlobRow.filter(digest__in=digests).values_list("digest", "created_at")
    )
    old = []
    for info in batch:
        if info.digest in referenced:
            report.blobs_referenced += 1
        elif info.modified >= cutoff or _young(recorded.get(info.digest), cutoff):
            report.blobs_kept_young += 1
            report.bytes_kept_young += info.size
        else:
            old.append(info)
    return old


def _young(created_at: datetime | None, cutoff: datetime) -> bool:
    return created_at is not None and created_at >= cutoff


class _Keep(Exception):
    """Raised inside a removal's transaction to roll it back: the blob stays."""


async def _remove(store: BlobStore, digest: str, cutoff: datetime) -> int | None:
    """Delete one blob's record and bytes if it is still unreferenced and old; the bytes freed.

    The transaction writes first: deleting the record takes its row lock on PostgreSQL and the
    write lock on SQLite before anything is read, so a `createVersion` naming the blob either
    committed before (its artifact is seen: rollback) or finds the record gone, and a request
    recording the bytes (`blobs.record_stored`) waits and then finds them gone. The bytes go
    last; if that fails the record comes back with the rollback.
    """
    try:
        async with in_transaction():
            # Claim the digest's row even when there is none (bytes a crash left unrecorded): an
            # old placeholder, deleted at once, holds the key until commit, so a concurrent
            # `record_stored` waits for this transaction and then finds the bytes gone.
            placeholder = BlobRow(digest=digest, size=0, created_at=_LONG_AGO)
            await BlobRow.bulk_create([placeholder], ignore_conflicts=True)
            await BlobRow.filter(digest=digest, created_at__lt=cutoff).delete()
            if await BlobRow.exists(digest=digest):
                raise _Keep  # recorded again a moment ago: an upload of the same bytes
            if await ArtifactRow.exists(digest=digest):
                raise _Keep  # a version took it since the scan
            info = await store.stat(digest)
            if info is None or info.modified >= cutoff:
                raise _Keep
            await BlobClaimRow.filter(digest=digest).delete()
            await store.delete(digest)
    except _Keep:
        return None
    return info.size


async def _drop_records_without_bytes(
    store: BlobStore, cutoff: datetime, removed: set[str], report: GcReport
) -> None:
    """Forget old, unreferenced blob records whose bytes the store no longer holds."""
    unreferenced = (
        BlobRow.filter(created_at__lt=cutoff)
        .exclude(digest__in=Subquery(ArtifactRow.all().values("digest")))
        .values_list("digest", flat=True)
    )
    for digest in [str(d) for d in await unreferenced]:
        if digest in removed or await store.exists(digest):
            continue  # removed above (a dry run keeps the row), or young bytes kept above
        if report.dry_run or await _forget(store, digest, cutoff):
            report.records_removed += 1


async def _forget(store: BlobStore, digest: str, cutoff: datetime) -> bool:
    """Delete a blob record if it is still old, unreferenced and without bytes (writes first)."""
    try:
        async with in_transaction():
            deleted = await BlobRow.filter(digest=digest, created_at__lt=cutoff).delete()
            if not deleted or await ArtifactRow.exists(digest=digest) or await store.exists(digest):
                raise _Keep
    except _Keep:
        return False
    return True


async def _abort_stale_uploads(store: BlobStore, cutoff: datetime, report: GcReport) -> None:
    """Abort resumable uploads that have not grown since `cutoff`."""
    stale = []
    async for upload in store.iter_uploads():
        if upload.modified >= cutoff:
            report.uploads_kept_young += 1
        else:
            stale.append(upload)
    for upload in stale:
        if report.dry_run or await store.abort_upload(upload.owner, upload.upload_id):
            report.uploads_aborted += 1
            report.upload_bytes_freed += upload.size
