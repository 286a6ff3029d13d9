"""Moving bytes to S3 in parts: a seekable reader over buffered chunks and a multipart writer."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import anyio.to_thread

if TYPE_CHECKING:
    from modelyard.storage.s3 import S3BlobStore


class ChunksReader:
    """A read-only, seekable file over a list of byte chunks: a part body without joining them.

    Joining would briefly hold each part twice; botocore only needs read/seek/tell.
    """

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self._starts: list[int] = []
        total = 0
        for chunk in chunks:
            self._starts.append(total)
            total += len(chunk)
        self._size = total
        self._pos = 0
        self._index = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        self._index = 0
        while self._index + 1 < len(self._chunks) and self._starts[self._index + 1] <= self._pos:
            self._index += 1
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        out: list[bytes] = []
        while size > 0 and self._pos < self._size:
            chunk = self._chunks[self._index]
            inner = self._pos - self._starts[self._index]
            piece = chunk[inner : inner + size]
            out.append(piece)
            self._pos += len(piece)
            size -= len(piece)
            if self._pos - self._starts[self._index] >= len(chunk):
                self._index += 1
        return out[0] if len(out) == 1 else b"".join(out)



class PartWriter:
    """Streams a blob into a multipart upload, one part buffered at a time.

    Nothing is visible until `commit`; a blob smaller than one part never starts a multipart
    upload and is written by one PUT at commit time.
    """

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._staged: str | None = None  # a completed temporary object to remove on abort

    def _part_size(self) -> int:
        # Parts grow every 1000 so that 10,000 parts (S3's limit) reach hundreds of GiB while
        # the common case keeps one small part in memory.
        return self._store.part_size * (1 + len(self._parts) // 1000)

    async def write(self, chunk: bytes) -> None:
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= self._part_size():
            await self._flush()

    async def _flush(self) -> None:
        s3 = self._store._s3
        if self._upload_id is None:
            created = await s3("create_multipart_upload", Key=self._key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        uploaded = await s3(
            "upload_part",
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=ChunksReader(self._buffer),
        )
        part = {"PartNumber": number, "ETag": uploaded["ETag"]}
        # With botocore's default integrity checks each part carries a checksum that the
        # completion must repeat.
        part.update({k: v for k, v in uploaded.items() if k.startswith("Checksum") and k != "ChecksumType"})
        self._parts.append(part)
        self._drop_buffer()

    def _drop_buffer(self) -> None:
        # In place: an idle worker thread may still hold the last request, and with it the list.
        self._buffer.clear()
        self._buffered = 0

    async def commit(self, key: str) -> None:
        """Make the verified bytes visible under `key`."""
        s3 = self._store._s3
        if self._upload_id is None:
            await s3("put_object", Key=key, Body=ChunksReader(self._buffer))
            self._drop_buffer()
            return
        if self._buffered:
            await self._flush()
        await s3(
            "complete_multipart_upload",
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None
        if self._key == key:
            return
        # The digest was not known up front: copy the verified object into place (a
        # server-side copy; multipart for large objects), then drop the temporary one.
        self._staged = self._key
        if not await self._store._key_exists(key):
            source = {"Bucket": self._store.bucket, "Key": self._key}
            copy = self._store._client.copy
            await anyio.to_thread.run_sync(functools.partial(copy, source, self._store.bucket, key))
        await self.abort()

    async def abort(self) -> None:
        """Discard everything written so far (safe to call twice, and while cancelled)."""
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            await self._store._s3_shielded(
                "abort_multipart_upload", Key=self._key, UploadId=upload_id
            )
        if self._staged is not None:
            staged, self._staged = self._staged, None
            await self._store._s3_shielded("delete_object", Key=staged)
        self._drop_buffer()
