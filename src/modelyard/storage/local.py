"""A `BlobStore` in a local folder.

    root/blobs/sha256/<hex>   verified blobs, never modified
    root/tmp/<random>         puts in flight (same filesystem, so the final rename is atomic)
    root/uploads/<owner>/<id> resumable uploads, one growing file each, in a folder per owner
                              (the owner's name in hex: only its owner finds an upload)

File bytes move through aiofiles; hashing, fsync, rename and directory scans run in worker
threads (anyio.to_thread), so the event loop never waits on the disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import aiofiles
import anyio
import anyio.to_thread
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from modelyard.errors import ConflictError, NotFoundError, StorageError
from modelyard.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobStore,
    UploadInfo,
    batched,
    check_range,
    digest_hex,
    is_upload_id,
    mismatch,
    owner_key,
    owner_of,
    too_large,
    verify,
)

T = TypeVar("T")
_SCAN_BATCH = 1000


async def _thread(func: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(func, *args)


async def _shielded(func: Callable[..., Any], *args: Any) -> None:
    """Run cleanup in a thread even while the calling task is being cancelled."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(func, *args)


async def _close(file: AsyncBufferedIOBase) -> None:
    with anyio.CancelScope(shield=True):
        await file.close()


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _create(path: Path) -> None:
    """A new, empty upload file (and its owner's folder)."""
    path.parent.mkdir(exist_ok=True)
    path.touch(0o644, exist_ok=False)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(source: Path, target: Path) -> None:
    """Move a complete, verified file to its blob name: fsync, atomic rename, fsync the folder."""
    fd = os.open(source, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if target.exists():  # stored meanwhile by another put: same bytes, keep the first
        source.unlink()
        return
    os.replace(source, target)
    _fsync_dir(target.parent)


def _lock(file: AsyncBufferedIOBase, path: Path, upload_id: str) -> None:
    """Hold the upload exclusively (across processes) until the file is closed."""
    fd = file.fileno()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise ConflictError(f"upload {upload_id} is busy with another request") from None
        raise
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # finished or aborted while we waited for the lock
        raise NotFoundError(f"no upload {upload_id}")


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """A full, read-only or failing disk is the store's trouble, not a bug: StorageError (503)."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"the blob store cannot write: {exc.strerror or exc}") from exc


class LocalBlobStore(BlobStore):
    """Blobs in a folder on a local (or POSIX-locking shared) filesystem."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.tmp_dir = self.root / "tmp"
        self.uploads_dir = self.root / "uploads"

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    async def aopen(self) -> None:
        await _thread(self._make_dirs)

    def _make_dirs(self) -> None:
        for path in (self.blobs_dir, self.tmp_dir, self.uploads_dir):
            path.mkdir(parents=True, exist_ok=True)

    def _blob_path(self, digest: str) -> Path:
        return self.blobs_dir / digest_hex(digest)

    def _upload_path(self, owner: str, upload_id: str) -> Path:
        if not is_upload_id(upload_id):
            raise NotFoundError(f"no upload {upload_id!r}")
        return self.uploads_dir / owner_key(owner) / upload_id

    async def local_path(self, digest: str) -> Path | None:
        path = self._blob_path(digest)
        return path if await _thread(path.is_file) else None

    async def stat(self, digest: str) -> BlobInfo | None:
        path = self._blob_path(digest)
        try:
            st = await _thread(os.stat, path)
        except FileNotFoundError:
            return None
        return BlobInfo(digest, st.st_size, _mtime(st))

    async def open(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._blob_path(digest)
        try:
            file = await aiofiles.open(path, "rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found") from None
        try:
            size = (await _thread(os.fstat, file.fileno())).st_size
            remaining = check_range(start, end, size) - start
            await file.seek(start)
            while remaining > 0:
                chunk = await file.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await _close(file)

    async def put(
        self,
        chunks: AsyncIterable[bytes],
        expected: str | None = None,
        max_size: int | None = None,
    ) -> BlobInfo:
        if expected is not None:
            digest_hex(expected)
            existing = await self.stat(expected)
            if existing is not None:
                await verify(chunks, expected, max_size)
                return existing
        tmp = self.tmp_dir / uuid.uuid4().hex
        try:
            digest = await self._write(tmp, chunks, max_size)
            if expected is not None and digest != expected:
                raise mismatch(expected, digest)
            await _thread(_publish, tmp, self._blob_path(digest))
        except BaseException:
            await _shielded(_unlink, tmp)
            raise
        info = await self.stat(digest)
        if info is None:  # deleted between the rename and now
            raise NotFoundError(f"blob {digest} vanished while being stored")
        return info

    async def _write(self, path: Path, chunks: AsyncIterable[bytes], max_size: int | None) -> str:
        """Stream `chunks` into a new file while hashing; the digest of what was written."""
        hasher = hashlib.sha256()
        size = 0
        file = await aiofiles.open(path, "xb")
        try:
            async for chunk in batched(chunks):
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise too_large(max_size)
                await _thread(hasher.update, chunk)
                with disk_errors():
                    await file.write(chunk)
        finally:
            await _close(file)
        return f"sha256:{hasher.hexdigest()}"

    async def delete(self, digest: str) -> bool:
        return await _thread(_unlink, self._blob_path(digest))

    async def iter_blobs(self) -> AsyncIterator[BlobInfo]:
        async for name, st in _scan(self.blobs_dir):
            if len(name) == 64:
                yield BlobInfo(f"sha256:{name}", st.st_size, _mtime(st))

    async def start_upload(self, owner: str) -> str:
        upload_id = uuid.uuid4().hex
        with disk_errors():
            await _thread(_create, self._upload_path(owner, upload_id))
        return upload_id

    async def append(
        self,
        owner: str,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        max_size: int | None = None,
    ) -> int:
        path = self._upload_path(owner, upload_id)
        try:
            file = await aiofiles.open(path, "r+b")
        except FileNotFoundError:
            raise NotFoundError(f"no upload {upload_id}") from None
        try:
            await _thread(_lock, file, path, upload_id)
            size = await file.seek(0, os.SEEK_END)
            if offset != size:
                raise ConflictError(
                    f"upload {upload_id} holds {size} bytes: append at offset {size}, not {offset}"
                )
            try:
                async for chunk in batched(chunks):
                    if max_size is not None and size + len(chunk) > max_size:
                        await file.truncate(offset)  # refuse the whole request
                        size = offset
                        raise too_large(max_size)
                    with disk_errors():
                        await file.write(chunk)
                    size += len(chunk)
            finally:
                # What arrived is kept (also from a client that went away) and made durable,
                # so the size reported now survives a crash.
                with anyio.CancelScope(shield=True):
                    await file.flush()
                    await _thread(os.fsync, file.fileno())
            return size
        finally:
            await _close(file)  # also releases the lock

    async def upload_size(self, owner: str, upload_id: str) -> int:
        path = self._upload_path(owner, upload_id)
        try:
            return (await _thread(os.stat, path)).st_size
        except FileNotFoundError:
            raise NotFoundError(f"no upload {upload_id}") from None

    async def finish_upload(self, owner: str, upload_id: str, expected: str) -> BlobInfo:
        target = self._blob_path(expected)
        path = self._upload_path(owner, upload_id)
        try:
            file = await aiofiles.open(path, "rb")
        except FileNotFoundError:
            raise NotFoundError(f"no upload {upload_id}") from None
        try:
            await _thread(_lock, file, path, upload_id)
            hasher = hashlib.sha256()
            while chunk := await file.read(CHUNK_SIZE):
                await _thread(hasher.update, chunk)
            digest = f"sha256:{hasher.hexdigest()}"
            if digest != expected:
                await _shielded(_unlink, path)
                raise mismatch(expected, digest)
            await _thread(_publish, path, target)
        finally:
            await _close(file)
        info = await self.stat(expected)
        if info is None:
            raise NotFoundError(f"blob {expected} vanished while being stored")
        return info

    async def abort_upload(self, owner: str, upload_id: str) -> bool:
        if not is_upload_id(upload_id):
            return False
        return await _thread(_unlink, self._upload_path(owner, upload_id))

    async def iter_uploads(self, owner: str | None = None) -> AsyncIterator[UploadInfo]:
        if owner is not None:
            owners = [(owner, owner_key(owner))]
        else:
            owners = [(o, key) async for key, _ in _scan(self.uploads_dir, folders=True)
                      if (o := owner_of(key)) is not None]
        for name_of_owner, key in owners:
            async for name, st in _scan(self.uploads_dir / key):
                if is_upload_id(name):
                    yield UploadInfo(name_of_owner, name, st.st_size, _mtime(st))

    async def clean_temp(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        # Temp files of puts, and uploads staged before uploads had owners (`uploads/<id>`).
        for folder, legacy in ((self.tmp_dir, False), (self.uploads_dir, True)):
            async for name, st in _scan(folder):
                if legacy and not is_upload_id(name):
                    continue
                if st.st_mtime < cutoff and await _thread(_unlink, folder / name):
                    removed += 1
        return removed


async def _scan(folder: Path, *, folders: bool = False) -> AsyncIterator[tuple[str, os.stat_result]]:
    """The regular files (or the subfolders) of a folder with their stat, read in batches off
    the event loop."""

    def next_batch(entries: Iterator[os.DirEntry[str]]) -> list[tuple[str, os.stat_result]] | None:
        """Up to _SCAN_BATCH files; None once the folder is exhausted."""
        batch = []
        seen = 0
        for entry in islice(entries, _SCAN_BATCH):
            seen += 1
            try:
                if (entry.is_dir if folders else entry.is_file)(follow_symlinks=False):
                    batch.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:  # removed while we looked
                continue
        return batch if seen else None

    try:
        entries = await _thread(os.scandir, folder)
    except FileNotFoundError:
        return
    try:
        while (batch := await _thread(next_batch, entries)) is not None:
            for item in batch:
                yield item
    finally:
        entries.close()
