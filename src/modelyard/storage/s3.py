"""A `BlobStore` in any S3-compatible bucket (AWS S3, MinIO, Ceph, R2, moto…).

    <prefix>blobs/sha256/<hex>             verified blobs
    <prefix>tmp/<random>                   puts whose digest is not known in advance
    <prefix>uploads/<owner>/<id>/started   a resumable upload exists (owner: its name in hex)
    <prefix>uploads/<owner>/<id>/<offset:020d>  its bytes, one object per piece, in offset order

A blob whose digest is announced streams into a multipart upload under its final key, which is
completed (made visible, atomically) only after the digest checks out, and aborted otherwise;
a blob that fits in one part is sent with a single PUT after it is verified. Resumable uploads
live in the bucket, so every server replica sees the same staging. Finishing one commits the blob
first and then removes the `started` marker (the upload ends there) before its pieces: a crash in
between leaves an upload that finishes again, or pieces without a marker that `gc` removes.

boto3 runs in worker threads (anyio.to_thread): its client is thread-safe, it is the reference
S3 client that every S3-compatible server is tested against, and it keeps dependency pins loose
(aiobotocore pins one exact botocore range, which then fights boto3 and moto).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError

from modelyard.errors import ConflictError, InvalidError, LimitError, NotFoundError, StorageError
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
from modelyard.storage.s3_parts import ChunksReader, PartWriter

PART_SIZE = 8 * 1024 * 1024
"""Bytes per multipart part and per staged upload piece (S3's minimum part is 5 MiB)."""

_MISSING = {"404", "NoSuchKey", "NotFound"}
_PRECONDITION = {"412", "PreconditionFailed", "409", "ConditionalRequestConflict"}
_STARTED = "started"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class S3BlobStore(BlobStore):
    """Blobs in an S3-compatible bucket, staged and verified before they become visible."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        addressing_style: str | None = None,
        part_size: int = PART_SIZE,
        max_connections: int = 32,
    ) -> None:
        if not bucket:
            raise InvalidError("an S3 store needs a bucket name")
        if part_size < 5 * 1024 * 1024:
            raise InvalidError("S3 multipart parts are at least 5 MiB")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.region = region
        self.part_size = part_size
        self._access_key = access_key
        self._secret_key = secret_key
        # Custom endpoints (MinIO, moto, an IP address) rarely resolve bucket subdomains.
        self._addressing_style = addressing_style or ("path" if endpoint_url else "auto")
        self._max_connections = max_connections
        self._client_or_none: Any = None

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # -- plumbing ---------------------------------------------------------------------------

    async def aopen(self) -> None:
        if self._client_or_none is None:
            self._client_or_none = await anyio.to_thread.run_sync(self._make_client)

    def _make_client(self) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            region_name=self.region,
        )
        config = botocore.config.Config(
            s3={"addressing_style": self._addressing_style},
            max_pool_connections=self._max_connections,
            retries={"mode": "standard"},
        )
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    async def aclose(self) -> None:
        client, self._client_or_none = self._client_or_none, None
        if client is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(client.close)

    @property
    def _client(self) -> Any:
        if self._client_or_none is None:
            raise RuntimeError(f"{self!r} is not open: use `async with store:`")
        return self._client_or_none

    async def _s3(self, operation: str, **params: Any) -> Any:
        """Call one S3 operation in a worker thread; an unreachable S3 is a StorageError (503)."""
        method: Callable[..., Any] = getattr(self._client, operation)
        try:
            return await anyio.to_thread.run_sync(functools.partial(method, Bucket=self.bucket, **params))
        except BotoCoreError as exc:  # connection, timeout, credentials: not answers from S3
            raise StorageError(f"S3 is unavailable ({type(exc).__name__})") from exc

    async def _s3_shielded(self, operation: str, **params: Any) -> Any:
        """An S3 call that must happen even while the task is being cancelled (cleanup)."""
        with anyio.CancelScope(shield=True):
            return await self._s3(operation, **params)

    def _blob_key(self, digest: str) -> str:
        return f"{self.prefix}blobs/sha256/{digest_hex(digest)}"

    def _upload_prefix(self, owner: str, upload_id: str) -> str:
        if not is_upload_id(upload_id):
            raise NotFoundError(f"no upload {upload_id!r}")
        return f"{self.prefix}uploads/{owner_key(owner)}/{upload_id}/"

    async def _list(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        """Every object under `prefix`, in key order, one page per request."""
        params: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = await self._s3("list_objects_v2", **params)
            for item in page.get("Contents", []):
                yield item
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    async def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            await self._s3_shielded("delete_objects", Delete={"Objects": batch, "Quiet": True})

    async def _key_exists(self, key: str) -> bool:
        try:
            await self._s3("head_object", Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    # -- blobs ------------------------------------------------------------------------------

    async def stat(self, digest: str) -> BlobInfo | None:
        key = self._blob_key(digest)
        try:
            head = await self._s3("head_object", Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        return BlobInfo(digest, int(head["ContentLength"]), _utc(head["LastModified"]))

    async def open(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        key = self._blob_key(digest)
        if start < 0 or (end is not None and end < start):
            raise InvalidError(f"byte range [{start}, {end}) is malformed")
        if end is not None and end == start:
            await self._require_range(digest, start, end)
            return
        byte_range = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
        try:
            response = await self._s3("get_object", Key=key, Range=byte_range)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFoundError(f"blob {digest} not found") from None
            if _code(exc) == "InvalidRange":  # start at or past the end (or an empty blob)
                await self._require_range(digest, start, end)
                return
            raise
        body = response["Body"]
        try:
            while chunk := await anyio.to_thread.run_sync(body.read, CHUNK_SIZE):
                yield chunk
        finally:
            body.close()

    async def _require_range(self, digest: str, start: int, end: int | None) -> None:
        """NotFoundError or InvalidError unless [start, end) is an empty range inside the blob."""
        info = await self.stat(digest)
        if info is None:
            raise NotFoundError(f"blob {digest} not found")
        check_range(start, end, info.size)

    async def put(
        self,
        chunks: AsyncIterable[bytes],
        expected: str | None = None,
        max_size: int | None = None,
    ) -> BlobInfo:
        if expected is not None:
            key = self._blob_key(expected)
            existing = await self.stat(expected)
            if existing is not None:
                await verify(chunks, expected, max_size)
                return existing
        else:
            key = f"{self.prefix}tmp/{uuid.uuid4().hex}"
        writer = PartWriter(self, key)
        hasher = hashlib.sha256()
        size = 0
        try:
            async for chunk in batched(chunks):
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise too_large(max_size)
                await anyio.to_thread.run_sync(hasher.update, chunk)
                await writer.write(chunk)
            digest = f"sha256:{hasher.hexdigest()}"
            if expected is not None and digest != expected:
                raise mismatch(expected, digest)
            await writer.commit(self._blob_key(digest))
        except BaseException:
            await writer.abort()
            raise
        return await self._stored(digest)

    async def _stored(self, digest: str) -> BlobInfo:
        info = await self.stat(digest)
        if info is None:
            raise NotFoundError(f"blob {digest} vanished while being stored")
        return info

    async def delete(self, digest: str) -> bool:
        key = self._blob_key(digest)
        if await self.stat(digest) is None:
            return False
        await self._s3("delete_object", Key=key)
        return True

    async def presign(self, digest: str, expires_seconds: int) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._blob_key(digest)}
        url: str = await anyio.to_thread.run_sync(
            functools.partial(
                self._client.generate_presigned_url,
                "get_object",
                Params=params,
                ExpiresIn=expires_seconds,
            )
        )
        return url

    async def iter_blobs(self) -> AsyncIterator[BlobInfo]:
        base = f"{self.prefix}blobs/sha256/"
        async for item in self._list(base):
            name = item["Key"][len(base) :]
            if len(name) == 64:
                yield BlobInfo(f"sha256:{name}", int(item["Size"]), _utc(item["LastModified"]))

    # -- resumable uploads ------------------------------------------------------------------

    async def start_upload(self, owner: str) -> str:
        upload_id = uuid.uuid4().hex
        await self._s3("put_object", Key=self._upload_prefix(owner, upload_id) + _STARTED, Body=b"")
        return upload_id

    async def _pieces(self, owner: str, upload_id: str) -> list[tuple[int, int, str]]:
        """The upload's pieces (offset, size, key) in order; NotFoundError if it does not exist."""
        prefix = self._upload_prefix(owner, upload_id)
        items = [item async for item in self._list(prefix)]
        if not any(item["Key"] == prefix + _STARTED for item in items):
            raise NotFoundError(f"no upload {upload_id}")
        return _contiguous(items, prefix)

    async def upload_size(self, owner: str, upload_id: str) -> int:
        return _end(await self._pieces(owner, upload_id))

    async def append(
        self,
        owner: str,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        max_size: int | None = None,
    ) -> int:
        prefix = self._upload_prefix(owner, upload_id)
        size = _end(await self._pieces(owner, upload_id))
        if offset != size:
            raise ConflictError(
                f"upload {upload_id} holds {size} bytes: append at offset {size}, not {offset}"
            )
        written: list[str] = []
        buffer: list[bytes] = []
        buffered = 0

        async def flush() -> None:
            nonlocal size, buffered
            if not buffered:
                return
            key = f"{prefix}{size:020d}"
            try:
                # If-None-Match: two appends racing at one offset (on two replicas) cannot
                # both write; the loser gets a conflict.
                await self._s3("put_object", Key=key, Body=ChunksReader(buffer), IfNoneMatch="*")
            except ClientError as exc:
                if _code(exc) in _PRECONDITION:
                    raise ConflictError(f"upload {upload_id} is busy with another request") from None
                raise
            written.append(key)
            size += buffered
            buffer.clear()  # in place: a worker thread may still hold the request (and the list)
            buffered = 0

        try:
            try:
                async for chunk in batched(chunks):
                    if max_size is not None and size + buffered + len(chunk) > max_size:
                        raise too_large(max_size)
                    buffer.append(chunk)
                    buffered += len(chunk)
                    if buffered >= self.part_size:
                        await flush()
            except (LimitError, ConflictError):
                raise
            except Exception:
                # The client went away: keep what arrived so it can resume from there.
                with anyio.CancelScope(shield=True):
                    await flush()
                raise
            await flush()
        except LimitError:
            await self._delete_keys(written)  # refuse the whole request
            raise
        return size

    async def finish_upload(self, owner: str, upload_id: str, expected: str) -> BlobInfo:
        key = self._blob_key(expected)
        prefix = self._upload_prefix(owner, upload_id)
        pieces = await self._pieces(owner, upload_id)
        exists = await self.stat(expected) is not None
        writer = None if exists else PartWriter(self, key)
        hasher = hashlib.sha256()
        try:
            for _offset, _size, piece_key in pieces:
                async for chunk in self._read_object(piece_key):
                    await anyio.to_thread.run_sync(hasher.update, chunk)
                    if writer is not None:
                        await writer.write(chunk)
            digest = f"sha256:{hasher.hexdigest()}"
            if digest != expected:
                await self._abort_prefix(prefix)
                raise mismatch(expected, digest)
            if writer is not None:
                await writer.commit(key)
        except BaseException:
            if writer is not None:
                await writer.abort()
            raise
        await self._abort_prefix(prefix)
        return await self._stored(expected)

    async def _read_object(self, key: str) -> AsyncIterator[bytes]:
        response = await self._s3("get_object", Key=key)
        body = response["Body"]
        try:
            while chunk := await anyio.to_thread.run_sync(body.read, CHUNK_SIZE):
                yield chunk
        finally:
            body.close()

    async def _abort_prefix(self, prefix: str) -> bool:
        """End the upload under `prefix`: its marker first (the upload is gone from then on,
        all at once), then its pieces."""
        keys = [item["Key"] async for item in self._list(prefix)]
        marker = prefix + _STARTED
        if marker in keys:
            await self._s3_shielded("delete_object", Key=marker)
        await self._delete_keys([key for key in keys if key != marker])
        return bool(keys)

    async def abort_upload(self, owner: str, upload_id: str) -> bool:
        if not is_upload_id(upload_id):
            return False
        return await self._abort_prefix(self._upload_prefix(owner, upload_id))

    async def iter_uploads(self, owner: str | None = None) -> AsyncIterator[UploadInfo]:
        base = f"{self.prefix}uploads/"
        group: list[dict[str, Any]] = []
        current = ("", "", "")  # owner, upload id and key prefix of `group`
        async for item in self._list(base if owner is None else f"{base}{owner_key(owner)}/"):
            parts = item["Key"][len(base) :].split("/")
            name = owner_of(parts[0])
            if len(parts) != 3 or name is None or not is_upload_id(parts[1]):
                continue  # the layout before owners (clean_temp removes it), or not ours
            if (name, parts[1]) != current[:2] and group:
                yield _upload_info(*current, group)
                group = []
            current = (name, parts[1], f"{base}{parts[0]}/{parts[1]}/")
            group.append(item)
        if group:
            yield _upload_info(*current, group)

    async def count_uploads(self, owner: str) -> int:
        # One key per upload id (not one per piece): the ids are the common prefixes.
        params: dict[str, Any] = {"Prefix": f"{self.prefix}uploads/{owner_key(owner)}/", "Delimiter": "/"}
        count = 0
        while True:
            page = await self._s3("list_objects_v2", **params)
            count += len(page.get("CommonPrefixes", []))
            if not page.get("IsTruncated"):
                return count
            params["ContinuationToken"] = page["NextContinuationToken"]

    async def clean_temp(self, older_than_seconds: float) -> int:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        stale = [
            item["Key"]
            async for item in self._list(f"{self.prefix}tmp/")
            if _utc(item["LastModified"]) < cutoff
        ]
        # Uploads staged before uploads had owners: `uploads/<id>/<piece>`.
        base = f"{self.prefix}uploads/"
        stale += [
            item["Key"]
            async for item in self._list(base)
            if _utc(item["LastModified"]) < cutoff
            and len(parts := item["Key"][len(base) :].split("/")) == 2 and is_upload_id(parts[0])
        ]
        await self._delete_keys(stale)
        removed = len(stale)
        params: dict[str, Any] = {"Prefix": self.prefix}
        while True:
            page = await self._s3("list_multipart_uploads", **params)
            for upload in page.get("Uploads", []):
                if _utc(upload["Initiated"]) < cutoff:
                    await self._s3_shielded(
                        "abort_multipart_upload", Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
            if not page.get("IsTruncated"):
                return removed
            params["KeyMarker"] = page["NextKeyMarker"]
            params["UploadIdMarker"] = page["NextUploadIdMarker"]


def _contiguous(items: list[dict[str, Any]], prefix: str) -> list[tuple[int, int, str]]:
    """The pieces that follow each other from offset 0; a gap or overlap ends the run."""
    pieces = []
    end = 0
    for item in items:
        name = item["Key"][len(prefix) :]
        if not name.isdigit():
            continue
        if int(name) != end:
            break
        pieces.append((end, int(item["Size"]), item["Key"]))
        end += int(item["Size"])
    return pieces


def _end(pieces: list[tuple[int, int, str]]) -> int:
    return pieces[-1][0] + pieces[-1][1] if pieces else 0


def _upload_info(owner: str, upload_id: str, prefix: str, items: list[dict[str, Any]]) -> UploadInfo:
    modified = max(_utc(item["LastModified"]) for item in items)
    return UploadInfo(owner, upload_id, _end(_contiguous(items, prefix)), modified)
