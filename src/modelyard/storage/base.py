"""The `BlobStore` interface: content-addressed, immutable blobs plus resumable upload staging.

A blob is named by `sha256:<64 lowercase hex>` of its bytes. It becomes visible only whole and
verified: bytes stream to a temporary place while they are hashed, and are moved under their
final name only when the digest checks out. Bytes move in fixed-size chunks, never whole files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio.to_thread

from modelyard.errors import InvalidError, LimitError

CHUNK_SIZE = 1024 * 1024
"""Bytes per chunk when streaming blobs in and out."""

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
MAX_OWNER = 100
"""Longest owner name (a token name) of a resumable upload."""


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: its digest, size in bytes and last-modified time (UTC)."""

    digest: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class UploadInfo:
    """A resumable upload in progress: who opened it, bytes staged so far and when they last
    grew (UTC)."""

    owner: str
    upload_id: str
    size: int
    modified: datetime


def digest_hex(digest: str) -> str:
    """The hex part of a `sha256:<64 lowercase hex>` digest; InvalidError for anything else."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidError(f"malformed digest {digest!r}: expected sha256:<64 lowercase hex>")
    return digest[len("sha256:") :]


def is_upload_id(upload_id: str) -> bool:
    """Whether `upload_id` has the shape `start_upload` hands out (32 lowercase hex)."""
    return isinstance(upload_id, str) and _UPLOAD_ID.fullmatch(upload_id) is not None


def owner_key(owner: str) -> str:
    """The folder (or key segment) of an owner's uploads: its UTF-8 in hex, so any name is safe
    in a path and names differing only in case stay apart on case-insensitive disks."""
    try:
        key = owner.encode().hex() if len(owner) <= MAX_OWNER else ""
    except UnicodeEncodeError:  # a lone surrogate
        key = ""
    if not key:
        raise InvalidError(f"an upload owner is 1-{MAX_OWNER} characters of text")
    return key


def owner_of(key: str) -> str | None:
    """The owner whose uploads live under `key`, or None for something else."""
    try:
        owner = bytes.fromhex(key).decode()
    except ValueError:
        return None
    return owner if 0 < len(owner) <= MAX_OWNER and owner.encode().hex() == key else None


def check_range(start: int, end: int | None, size: int) -> int:
    """The end of the byte range [start, end) of a blob of `size` bytes, clamped to the size."""
    stop = size if end is None else min(end, size)
    if start < 0 or start > size or stop < start:
        raise InvalidError(f"byte range [{start}, {end}) is outside a blob of {size} bytes")
    return stop


def mismatch(expected: str, actual: str) -> InvalidError:
    """The error for bytes whose digest is not the one announced."""
    return InvalidError(f"digest mismatch: expected {expected}, received bytes hash to {actual}")


def too_large(max_size: int) -> LimitError:
    """The error for a blob or upload that grew past `max_size` bytes."""
    return LimitError(f"blob is larger than the limit of {max_size} bytes")


async def batched(chunks: AsyncIterable[bytes], size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """Regroup `chunks` into chunks of at least `size` bytes (the last may be shorter).

    HTTP bodies arrive in small pieces (uvicorn hands out 64 KiB); hashing and writing them one
    by one would cost a thread hop each. When `chunks` raises, the bytes buffered so far are
    yielded before the error.
    """
    buffer = bytearray()
    try:
        async for chunk in chunks:
            if not buffer and len(chunk) >= size:
                yield bytes(chunk)
                continue
            buffer += chunk
            if len(buffer) >= size:
                yield bytes(buffer)
                buffer = bytearray()
    except Exception:
        # Pass on what arrived before the source failed: a resumable upload keeps it.
        if buffer:
            yield bytes(buffer)
        raise
    if buffer:
        yield bytes(buffer)


async def verify(chunks: AsyncIterable[bytes], expected: str, max_size: int | None = None) -> None:
    """Hash streamed bytes without keeping them: what a put of an existing blob does."""
    hasher = hashlib.sha256()
    size = 0
    async for chunk in batched(chunks):
        size += len(chunk)
        if max_size is not None and size > max_size:
            raise too_large(max_size)
        await anyio.to_thread.run_sync(hasher.update, chunk)
    digest = f"sha256:{hasher.hexdigest()}"
    if digest != expected:
        raise mismatch(expected, digest)


class BlobStore:
    """Where blob bytes live. Open and close with `async with store:`.

    Digests are `sha256:<64 lowercase hex>`; a malformed one raises InvalidError. "Missing" is
    `None` (stat, presign) or `False` (delete, abort_upload); methods that need the blob or the
    upload raise NotFoundError.
    """

    async def __aenter__(self) -> Self:
        await self.aopen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    async def aopen(self) -> None:
        """Prepare clients and folders."""

    async def aclose(self) -> None:
        """Release clients."""

    async def stat(self, digest: str) -> BlobInfo | None:
        """The blob's size and time, or None when it is not stored."""
        raise NotImplementedError

    async def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""
        return await self.stat(digest) is not None

    def open(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of the blob (end clamped to its size) in CHUNK_SIZE chunks.

        Raises NotFoundError (missing) or InvalidError (start past the end) when iteration
        starts; a caller that must answer before streaming calls `stat` first.
        """
        raise NotImplementedError

    async def put(
        self,
        chunks: AsyncIterable[bytes],
        expected: str | None = None,
        max_size: int | None = None,
    ) -> BlobInfo:
        """Store the streamed bytes under their digest, visible only whole and verified.

        InvalidError when they do not hash to `expected`, LimitError past `max_size` bytes; in
        both cases, and when `chunks` raises, nothing is stored and no temporary data is left.
        Putting a blob that exists verifies the bytes and changes nothing.
        """
        raise NotImplementedError

    async def delete(self, digest: str) -> bool:
        """Remove the blob; False when it was not stored."""
        raise NotImplementedError

    async def local_path(self, digest: str) -> Path | None:
        """The blob's file when the store is a local folder (readers may seek in it), else None."""
        return None

    async def presign(self, digest: str, expires_seconds: int) -> str | None:
        """A URL that serves the blob (with Range) to anyone for a while, or None if unsupported.

        It does not check that the blob exists.
        """
        return None

    def iter_blobs(self) -> AsyncIterator[BlobInfo]:
        """Every stored blob, in no particular order (for garbage collection)."""
        raise NotImplementedError

    async def start_upload(self, owner: str) -> str:
        """Begin a resumable upload for `owner`; its id is 32 lowercase hex characters.

        Every other upload method takes the same owner: an upload is found only by the owner
        that started it (another owner gets NotFoundError, as for an id that never existed).
        """
        raise NotImplementedError

    async def append(
        self,
        owner: str,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        max_size: int | None = None,
    ) -> int:
        """Add the streamed bytes at `offset` of the upload and return its new size.

        ConflictError when `offset` is not the upload's current size (HTTP 416) or another append
        or finish holds the upload; NotFoundError for an unknown id; LimitError when the upload
        would grow past `max_size` (the refused bytes are dropped). If `chunks` raises, the
        bytes that arrived stay staged so the client can resume.
        """
        raise NotImplementedError

    async def upload_size(self, owner: str, upload_id: str) -> int:
        """How many bytes the upload holds; NotFoundError for an unknown id."""
        raise NotImplementedError

    async def finish_upload(self, owner: str, upload_id: str, expected: str) -> BlobInfo:
        """Verify the staged bytes against `expected`, store them as a blob and end the upload.

        On a mismatch the upload is discarded and InvalidError raised; nothing is stored. The
        blob becomes visible before the upload ends: a crash in between leaves both, and
        finishing again completes (the bytes are verified again, the blob is kept).
        """
        raise NotImplementedError

    async def abort_upload(self, owner: str, upload_id: str) -> bool:
        """Discard the upload; False when there was no such upload."""
        raise NotImplementedError

    def iter_uploads(self, owner: str | None = None) -> AsyncIterator[UploadInfo]:
        """Every upload in progress (or only `owner`'s), with when it last grew (for expiry)."""
        raise NotImplementedError

    async def count_uploads(self, owner: str) -> int:
        """How many uploads `owner` holds open."""
        return len([upload async for upload in self.iter_uploads(owner)])

    async def clean_temp(self, older_than_seconds: float) -> int:
        """Remove temporary data of puts that died with their process, and uploads staged in the
        layout before uploads had owners; the count removed.

        Temporary data younger than `older_than_seconds` may belong to a put in flight.
        """
        raise NotImplementedError
