"""Blob storage: the `BlobStore` interface and its local-folder and S3 backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from modelyard.errors import InvalidError
from modelyard.storage.base import CHUNK_SIZE, BlobInfo, BlobStore, UploadInfo, digest_hex
from modelyard.storage.local import LocalBlobStore

__all__ = [
    "CHUNK_SIZE",
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "UploadInfo",
    "digest_hex",
    "open_store",
]


def open_store(url: str, **s3_options: Any) -> BlobStore:
    """The store a URL names: `s3://bucket/prefix`, `file:///path` or a plain path.

    `s3_options` (endpoint_url, region, access_key, secret_key, …) go to S3BlobStore and are
    ignored for a local folder, so callers can always pass their settings.
    """
    if url.startswith("s3://"):
        from modelyard.storage.s3 import S3BlobStore  # boto3 loads only when S3 is used

        parts = urlsplit(url)
        if parts.query or parts.fragment:
            raise InvalidError(f"unexpected query or fragment in storage URL {url!r}")
        return S3BlobStore(parts.netloc, unquote(parts.path), **s3_options)
    if url.startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise InvalidError(f"storage URL {url!r} must look like file:///absolute/path")
        return LocalBlobStore(Path(unquote(parts.path)))
    if not url or "://" in url:
        raise InvalidError(f"storage URL {url!r}: expected s3://bucket/prefix, file:///path or a path")
    return LocalBlobStore(Path(url))
