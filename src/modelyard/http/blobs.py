"""`HEAD|GET|PUT /api/blobs/sha256:<hex>`: content-addressed blobs over HTTP.

GET serves single byte ranges (206), an ETag and immutable caching; with a store that can
presign (S3) it redirects to a presigned URL instead. PUT streams the body into the store,
hashing as it goes: a mismatch answers 400 and stores nothing.
"""

from __future__ import annotations

import re

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from modelyard.catalog import policy
from modelyard.catalog.blobs import record_blob
from modelyard.config import Settings
from modelyard.errors import InvalidError, ModelyardError
from modelyard.http.responses import error_response, timed_out, with_timeout
from modelyard.storage import BlobStore
from modelyard.storage.base import digest_hex

IMMUTABLE = "public, max-age=31536000, immutable"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `Range: bytes=a-b` header; None for the whole blob.

    InvalidError for a range that cannot be satisfied (the caller answers 416).
    """
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None  # several ranges or another unit: RFC 9110 lets us send the whole blob
    if not m.group(1):  # suffix: the last N bytes
        length = int(m.group(2))
        if length == 0:
            raise InvalidError("empty suffix range")
        return max(size - length, 0), size
    start = int(m.group(1))
    end = int(m.group(2)) + 1 if m.group(2) else size
    if start >= size or end <= start:
        raise InvalidError(f"range {header!r} is outside a blob of {size} bytes")
    return start, min(end, size)


def _headers(digest: str) -> dict[str, str]:
    return {"ETag": f'"{digest}"', "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes",
            "Docker-Content-Digest": digest}


class BlobRoutes:
    """The handlers, bound to one store and the settings."""

    def __init__(self, store: BlobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def _caller(self, request: Request) -> policy.Caller:
        return await policy.caller_for(request.headers.get("authorization"))

    async def head_or_get(self, request: Request) -> Response:
        digest = request.path_params["digest"]
        try:
            digest_hex(digest)
            policy.check_read(await self._caller(request), self.settings.public_read)
            info = await self.store.stat(digest)
        except ModelyardError as exc:
            return error_response(exc)
        if info is None:
            return JSONResponse({"error": f"blob {digest} does not exist", "code": "NOT_FOUND"}, 404)
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
            span = byte_range(request.headers.get("range"), info.size)
        except InvalidError as exc:
            return error_response(exc, 416, {"Content-Range": f"bytes */{info.size}"})
        start, end = span or (0, info.size)
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
            policy.check_write(await self._caller(request), None)
            body = with_timeout(request.stream(), self.settings.body_timeout_seconds)
            info = await self.store.put(body, digest, self.settings.max_blob_size)
            await record_blob(info.digest, info.size)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening; the store kept nothing
        except TimeoutError:
            return timed_out(self.settings.body_timeout_seconds)
        except ModelyardError as exc:
            return error_response(exc)
        return JSONResponse({"digest": info.digest, "size": info.size}, status_code=201,
                            headers={"Location": f"/api/blobs/{info.digest}", **_headers(info.digest)})
