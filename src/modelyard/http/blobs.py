"""`HEAD|GET|PUT /api/blobs/sha256:<hex>`: content-addressed blobs over HTTP.

GET serves single byte ranges (206), an ETag and immutable caching; with a store that can
presign (S3) it redirects to a presigned URL instead. PUT streams the body into the store,
hashing as it goes: a mismatch answers 400 and stores nothing. A blob hidden from the reader
(catalog/blobs.py `readable_blob`) answers exactly as a missing one, before anything else about
it (range, ETag) could tell.
"""

from __future__ import annotations

import re

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from modelyard.catalog import policy
from modelyard.catalog.blobs import put_blob, readable_blob
from modelyard.config import Settings
from modelyard.errors import InvalidError, ModelyardError
from modelyard.http.client_limits import ClientLimits
from modelyard.http.headers import position
from modelyard.http.responses import error_response, timed_out, with_timeout
from modelyard.storage import BlobStore
from modelyard.storage.base import digest_hex

IMMUTABLE = "public, max-age=31536000, immutable"
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")

Span = tuple[int | None, int | None]
"""The first and last byte positions of a `Range: bytes=first-last` header (either may be absent)."""


def parse_range(header: str | None) -> Span | None:
    """The single range a `Range` header asks for; None for the whole blob.

    InvalidError (400) for positions past 2^63-1: no blob has such a byte.
    """
    if header is None:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None  # several ranges or another unit: RFC 9110 lets us send the whole blob
    first, last = (position(g) if g else None for g in m.groups())
    if (m.group(1) and first is None) or (m.group(2) and last is None):
        raise InvalidError("Range positions are at most 2^63-1 (19 digits)")
    return first, last


def byte_range(span: Span, size: int) -> tuple[int, int]:
    """[start, end) of `span` in a blob of `size` bytes; InvalidError when it cannot be
    satisfied (the caller answers 416)."""
    first, last = span
    if first is None:  # suffix: the last N bytes
        if not last:
            raise InvalidError("empty suffix range")
        return max(size - last, 0), size
    end = last + 1 if last is not None else size
    if first >= size or end <= first:
        shown = f"{first}-{'' if last is None else last}"
        raise InvalidError(f"range bytes={shown} is outside a blob of {size} bytes")
    return first, min(end, size)


def not_found(digest: str) -> JSONResponse:
    """The answer for a blob that is missing or hidden from the reader: the same for both."""
    return JSONResponse({"error": f"blob {digest} does not exist", "code": "NOT_FOUND"}, 404)


def _headers(digest: str) -> dict[str, str]:
    return {"ETag": f'"{digest}"', "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes",
            "Docker-Content-Digest": digest}


class BlobRoutes:
    """The handlers, bound to one store and the settings."""

    def __init__(self, store: BlobStore, settings: Settings, limits: ClientLimits) -> None:
        self.store = store
        self.settings = settings
        self.limits = limits

    async def _caller(self, request: Request) -> policy.Caller:
        return await self.limits.caller(request)

    async def head_or_get(self, request: Request) -> Response:
        digest = request.path_params["digest"]
        try:
            digest_hex(digest)
            caller = await self._caller(request)
            policy.check_read(caller, self.settings.public_read)
            span = parse_range(request.headers.get("range")) if request.method == "GET" else None
            namespace = policy.read_namespace(caller, self.settings.public_read)
            info = await readable_blob(self.store, digest, namespace)
        except ModelyardError as exc:
            return error_response(exc)
        if info is None:
            return not_found(digest)
        headers = _headers(digest)
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        if request.method == "HEAD":
            return Response(headers={**headers, "Content-Length": str(info.size)},
                            media_type="application/octet-stream")
        if self.settings.redirect_downloads:
            url = await self.store.presign(digest, self.settings.presign_seconds)
            if url is not None:
                return Response(status_code=307, headers={"Location": url, "Cache-Control": "no-store"})
        try:
            start, end = (0, info.size) if span is None else byte_range(span, info.size)
        except InvalidError as exc:
            return error_response(exc, 416, {"Content-Range": f"bytes */{info.size}"})
        headers["Content-Length"] = str(end - start)
        status = 200
        if span is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
        return StreamingResponse(self.store.open(digest, start, end), status_code=status,
                                 headers=headers, media_type="application/octet-stream")

    async def put(self, request: Request) -> Response:
        digest = request.path_params["digest"]
        try:
            digest_hex(digest)
            caller = await self._caller(request)
            policy.check_write(caller, None)
            body = with_timeout(request.stream(), self.settings.body_timeout_seconds)
            claimant = caller.principal.namespace if caller.principal else None
            info = await put_blob(self.store, body, digest, self.settings.max_blob_size, claimant)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening; the store kept nothing
        except TimeoutError:
            return timed_out(self.settings.body_timeout_seconds)
        except ModelyardError as exc:
            return error_response(exc)
        return JSONResponse({"digest": info.digest, "size": info.size}, status_code=201,
                            headers={"Location": f"/api/blobs/{info.digest}", **_headers(info.digest)})
