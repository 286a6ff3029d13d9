"""Resumable uploads: `POST /api/uploads` → `PATCH` chunks at an offset → `HEAD` → `PUT ?digest=`.

`PATCH` carries `Upload-Offset: <bytes already sent>`; a wrong offset answers 416 with the
offset the server holds, so a client that lost track asks `HEAD` and resumes from there.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from modelyard.catalog import policy
from modelyard.catalog.blobs import record_blob
from modelyard.config import Settings
from modelyard.errors import ConflictError, InvalidError, ModelyardError, NotFoundError
from modelyard.http.responses import error_response, timed_out, with_timeout
from modelyard.storage import BlobStore
from modelyard.storage.base import digest_hex, is_upload_id

OFFSET = "Upload-Offset"


class UploadRoutes:
    """The handlers, bound to one store and the settings."""

    def __init__(self, store: BlobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def _authorised(self, request: Request) -> str:
        policy.check_write(await policy.caller_for(request.headers.get("authorization")), None)
        upload_id = request.path_params.get("upload_id", "")
        if "upload_id" in request.path_params and not is_upload_id(upload_id):
            raise NotFoundError(f"no upload {upload_id!r}")
        return str(upload_id)

    async def start(self, request: Request) -> Response:
        try:
            await self._authorised(request)
            upload_id = await self.store.start_upload()
        except ModelyardError as exc:
            return error_response(exc)
        location = f"/api/uploads/{upload_id}"
        return JSONResponse({"id": upload_id, "location": location}, status_code=201,
                            headers={"Location": location, OFFSET: "0"})

    async def status(self, request: Request) -> Response:
        try:
            upload_id = await self._authorised(request)
            size = await self.store.upload_size(upload_id)
        except ModelyardError as exc:
            return error_response(exc)
        return Response(status_code=204, headers={OFFSET: str(size), "Cache-Control": "no-store"})

    async def append(self, request: Request) -> Response:
        try:
            upload_id = await self._authorised(request)
            offset = _offset(request.headers.get(OFFSET))
            body = with_timeout(request.stream(), self.settings.body_timeout_seconds)
            size = await self.store.append(upload_id, offset, body, self.settings.max_blob_size)
        except ClientDisconnect:
            return Response(status_code=400)  # what arrived stays staged; the client resumes
        except TimeoutError:
            return timed_out(self.settings.body_timeout_seconds)
        except ConflictError as exc:
            held = await self._held(request)
            return error_response(exc, 416, {OFFSET: str(held)} if held is not None else None)
        except ModelyardError as exc:
            return error_response(exc)
        return Response(status_code=204, headers={OFFSET: str(size)})

    async def finish(self, request: Request) -> Response:
        try:
            upload_id = await self._authorised(request)
            digest = request.query_params.get("digest")
            if digest is None:
                raise InvalidError("finish an upload with PUT /api/uploads/<id>?digest=sha256:<hex>")
            digest_hex(digest)
            info = await self.store.finish_upload(upload_id, digest)
            await record_blob(info.digest, info.size)
        except ModelyardError as exc:
            return error_response(exc)
        return JSONResponse({"digest": info.digest, "size": info.size}, status_code=201,
                            headers={"Location": f"/api/blobs/{info.digest}"})

    async def abort(self, request: Request) -> Response:
        try:
            upload_id = await self._authorised(request)
            if not await self.store.abort_upload(upload_id):
                raise NotFoundError(f"no upload {upload_id!r}")
        except ModelyardError as exc:
            return error_response(exc)
        return Response(status_code=204)

    async def _held(self, request: Request) -> int | None:
        try:
            return await self.store.upload_size(request.path_params["upload_id"])
        except ModelyardError:
            return None


def _offset(raw: str | None) -> int:
    if raw is None or not raw.isdigit():
        raise InvalidError(f"PATCH needs an {OFFSET} header with the bytes already sent")
    return int(raw)
