"""Resumable uploads: `POST /api/uploads` → `PATCH` chunks at an offset → `HEAD` → `PUT ?digest=`.

`PATCH` carries `Upload-Offset: <bytes already sent>`; a wrong offset answers 416 with the
offset the server holds, so a client that lost track asks `HEAD` and resumes from there. An
upload answers only the token that opened it (catalog/uploads.py).
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from modelyard.catalog import policy
from modelyard.catalog import uploads as service
from modelyard.catalog.tokens import Principal
from modelyard.config import Settings
from modelyard.errors import ConflictError, InvalidError, ModelyardError
from modelyard.http.client_limits import ClientLimits
from modelyard.http.headers import position
from modelyard.http.responses import error_response, timed_out, with_timeout
from modelyard.storage import BlobStore

OFFSET = "Upload-Offset"


class UploadRoutes:
    """The handlers, bound to one store and the settings."""

    def __init__(self, store: BlobStore, settings: Settings, limits: ClientLimits | None = None) -> None:
        self.store = store
        self.settings = settings
        self.limits = limits or ClientLimits(settings)
        self.rules = service.UploadRules(settings.max_open_uploads, settings.upload_grace_seconds,
                                         settings.max_blob_size)

    async def _authorised(self, request: Request) -> tuple[str, str]:
        """The caller's token name (its uploads' owner) and the upload id in the path."""
        principal = await self._principal(request)
        return principal.name, str(request.path_params.get("upload_id", ""))

    async def _principal(self, request: Request) -> Principal:
        caller = await self.limits.caller(request)
        policy.check_write(caller, None)
        assert caller.principal is not None  # check_write refuses anonymous callers
        return caller.principal

    async def start(self, request: Request) -> Response:
        try:
            owner, _ = await self._authorised(request)
            self.limits.start_upload(request)
            upload_id = await service.start_upload(self.store, owner, self.rules)
        except ModelyardError as exc:
            return error_response(exc)
        location = f"/api/uploads/{upload_id}"
        return JSONResponse({"id": upload_id, "location": location}, status_code=201,
                            headers={"Location": location, OFFSET: "0"})

    async def status(self, request: Request) -> Response:
        try:
            owner, upload_id = await self._authorised(request)
            size = await service.upload_size(self.store, owner, upload_id, self.rules)
        except ModelyardError as exc:
            return error_response(exc)
        return Response(status_code=204, headers={OFFSET: str(size), "Cache-Control": "no-store"})

    async def append(self, request: Request) -> Response:
        try:
            owner, upload_id = await self._authorised(request)
            offset = _offset(request.headers.get(OFFSET))
            body = with_timeout(request.stream(), self.settings.body_timeout_seconds)
            size = await service.append(self.store, owner, upload_id, offset, body, self.rules)
        except ClientDisconnect:
            return Response(status_code=400)  # what arrived stays staged; the client resumes
        except TimeoutError:
            return timed_out(self.settings.body_timeout_seconds)
        except ConflictError as exc:
            held = await self._held(owner, upload_id)
            return error_response(exc, 416, {OFFSET: str(held)} if held is not None else None)
        except ModelyardError as exc:
            return error_response(exc)
        return Response(status_code=204, headers={OFFSET: str(size)})

    async def finish(self, request: Request) -> Response:
        try:
            principal = await self._principal(request)
            upload_id = str(request.path_params["upload_id"])
            digest = request.query_params.get("digest")
            if digest is None:
                raise InvalidError("finish an upload with PUT /api/uploads/<id>?digest=sha256:<hex>")
            info = await service.finish_upload(self.store, principal.name, upload_id, digest, self.rules,
                                               claimant=principal.namespace)
        except ModelyardError as exc:
            return error_response(exc)
        return JSONResponse({"digest": info.digest, "size": info.size}, status_code=201,
                            headers={"Location": f"/api/blobs/{info.digest}"})

    async def abort(self, request: Request) -> Response:
        try:
            owner, upload_id = await self._authorised(request)
            await service.abort_upload(self.store, owner, upload_id, self.rules)
        except ModelyardError as exc:
            return error_response(exc)
        return Response(status_code=204)

    async def _held(self, owner: str, upload_id: str) -> int | None:
        try:
            return await self.store.upload_size(owner, upload_id)
        except ModelyardError:
            return None


def _offset(raw: str | None) -> int:
    offset = position(raw)
    if offset is None:
        raise InvalidError(f"PATCH needs an {OFFSET} header with the bytes already sent (0 to 2^63-1)")
    return offset
