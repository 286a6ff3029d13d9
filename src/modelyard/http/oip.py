"""Open Inference Protocol V2 (REST) on the registry: health, server and model metadata, readiness.

Spec: https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md

    GET  /v2/health/live                      {"live": true}
    GET  /v2/health/ready                     {"ready": true}; 503 when the database does not answer
    GET  /v2                                  {"name": "modelyard", "version", "extensions": []}
    GET  /v2/models/<name>[/versions/<v>]     metadata from the version's ONNX signature
    GET  /v2/models/<name>[/versions/<v>]/ready
    POST /v2/models/<name>[/versions/<v>]/infer   501: the desktop agent runs models, not the registry

Decisions, where the spec leaves them to the server:

- `<name>` may carry its namespace as a plain slash (`/v2/models/vision/resnet`, what tritonclient
  sends) or as `%2F`. A trailing `ready`, `infer` or `versions/<v>` segment is read as the
  protocol's; a model whose own name ends in such a word is reached with `%2F`
  (`/v2/models/x%2Fready`).
- `<v>` is a version number, an alias (`production`), `latest` or a manifest digest: the registry's
  ref grammar (`name:3`, `name@production`, `name@sha256:…`). Without it: the latest READY version.
- Metadata needs an ONNX model in the version: one without answers 404. `versions` lists the READY
  versions that have one (those a client may request and run). An archived version still answers
  its metadata (archive is soft, pinned clients keep working) but is not listed.
- `…/ready` answers 200 `{"name", "ready": true}` for a READY version with an ONNX model; a version
  that exists but is archived, pending or holds no ONNX model answers 503 with `"ready": false`
  and the reason (probes and tritonclient read the status code); unknown names 404.
- Reads follow `MODELYARD_PUBLIC_READ` like every other read; health and server metadata are
  always open (probes carry no tokens).
- Errors are `{"error": message, "code": CODE}`: the OIP error object plus the registry's code.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tortoise import connections

from modelyard import __version__
from modelyard.catalog import policy
from modelyard.catalog.refs import NAME_RE, VersionRef, parse_ref
from modelyard.catalog.resolve import READY, resolve_version
from modelyard.config import Settings
from modelyard.db.tables import VersionRow
from modelyard.errors import InvalidError, ModelyardError, NotFoundError
from modelyard.http.client_limits import ClientLimits
from modelyard.http.responses import error_response

log = logging.getLogger("modelyard.oip")
PLATFORM = "onnx_onnxv1"
EXTENSIONS: list[str] = []  # none of the optional OIP/Triton extensions is served here
HEALTH_TIMEOUT = 2.0  # seconds; a readiness probe that hangs is as bad as one that fails
_PREFIX = "/v2/models/"
_NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class ModelPath:
    """What a `/v2/models/…` path asks: a model, an optional version string, and the action."""

    name: str
    version: str | None
    action: str  # "metadata", "ready" or "infer"


def parse_model_path(segments: list[str]) -> ModelPath:
    """Read `<name>[/versions/<v>][/ready|/infer]` from decoded path segments.

    A segment may hold a `/` of its own (sent as `%2F`): it is part of the name, never a keyword.
    """
    action = "metadata"
    if len(segments) > 1 and segments[-1] in ("ready", "infer"):
        action, segments = segments[-1], segments[:-1]
    version = None
    if len(segments) > 2 and segments[-2] == "versions":
        version, segments = segments[-1], segments[:-2]
    name = "/".join(segments)
    if not NAME_RE.fullmatch(name):
        raise InvalidError(
            f"no model name in path {'/'.join(segments)!r}: expected "
            "/v2/models/<name>[/versions/<version>][/ready|/infer] with a name such as "
            "'resnet' or 'vision/resnet'"
        )
    return ModelPath(name, version, action)


def version_ref(name: str, version: str | None) -> VersionRef:
    """The registry ref an OIP model name and version string stand for."""
    if version is None:
        return parse_ref(name)
    if version.isascii() and version.isdigit():
        return parse_ref(f"{name}:{version}")
    return parse_ref(f"{name}@{version}")  # an alias, `latest` or `sha256:<hex>`


def _segments(request: Request) -> list[str]:
    """The path after `/v2/models/`, split on literal slashes before percent-decoding."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1")
    start = path.find(_PREFIX)
    if start < 0:  # the router matched a decoded path the raw one does not show literally
        return str(request.path_params["rest"]).split("/")
    rest = path[start + len(_PREFIX):]
    return [unquote(part) for part in rest.split("/")]


def _label(row: VersionRow, name: str) -> str:
    return f"{name}:{row.number}"


async def _requestable_versions(model_id: int) -> list[str]:
    """READY versions holding an ONNX model, oldest first, as OIP version strings."""
    numbers = (
        await VersionRow.filter(model_id=model_id, status=READY, onnx__isnull=False)
        .order_by("number")
        .values_list("number", flat=True)
    )
    return [str(n) for n in numbers]


def _tensors(signature: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = signature.get(key) or []
    return [{"name": t["name"], "datatype": t["datatype"], "shape": list(t["shape"])} for t in items]


async def model_metadata(name: str, version: str | None) -> dict[str, Any]:
    """The OIP model metadata of the version `name` and `version` name; NOT_FOUND without ONNX."""
    ref = version_ref(name, version)
    row = await resolve_version(ref)
    signature = row.onnx
    if not signature:
        raise NotFoundError(
            f"{_label(row, ref.model.full)} holds no ONNX model, so it has no OIP signature"
        )
    return {
        "name": ref.model.full,
        "versions": await _requestable_versions(row.model_id),
        "platform": PLATFORM,
        "inputs": _tensors(signature, "inputs"),
        "outputs": _tensors(signature, "outputs"),
    }


async def model_readiness(name: str, version: str | None) -> str | None:
    """None when the version is READY with an ONNX model; else why it is not ready."""
    ref = version_ref(name, version)
    row = await resolve_version(ref)
    if row.status != READY:
        return f"{_label(row, ref.model.full)} is {row.status}, not READY"
    if not row.onnx:
        return f"{_label(row, ref.model.full)} holds no ONNX model"
    return None


async def _database_answers() -> str | None:
    """None when the catalog database answers; else a short reason (no hosts or paths)."""
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), HEALTH_TIMEOUT)
    except TimeoutError:
        return "the catalog database did not answer in time"
    except Exception as exc:
        log.warning("OIP readiness: database did not answer: %r", exc)
        return f"the catalog database is unavailable ({type(exc).__name__})"
    return None


class OipRoutes:
    """The handlers, bound to the settings."""

    def __init__(self, settings: Settings, limits: ClientLimits) -> None:
        self.settings = settings
        self.limits = limits

    def routes(self) -> list[Route]:
        """The routes to mount in the app."""
        return [
            Route("/v2", self.server_metadata, methods=["GET"]),
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route("/v2/models/{rest:path}", self.model, methods=["GET", "POST"]),
        ]

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True}, headers=_NO_STORE)

    async def ready(self, request: Request) -> Response:
        reason = await _database_answers()
        if reason is not None:
            return JSONResponse({"ready": False, "error": reason}, 503, headers=_NO_STORE)
        return JSONResponse({"ready": True}, headers=_NO_STORE)

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse({"name": "modelyard", "version": __version__, "extensions": EXTENSIONS})

    async def model(self, request: Request) -> Response:
        try:
            path = parse_model_path(_segments(request))
            wanted = "POST" if path.action == "infer" else "GET"
            if request.method != wanted:
                return JSONResponse(
                    {"error": f"{path.action} takes {wanted}, not {request.method}", "code": "INVALID"},
                    405, headers={"Allow": wanted},
                )
            caller = await self.limits.caller(request)
            policy.check_read(caller, self.settings.public_read, path.name)
            if path.action == "metadata":
                return JSONResponse(await model_metadata(path.name, path.version))
            if path.action == "ready":
                reason = await model_readiness(path.name, path.version)
                body: dict[str, Any] = {"name": path.name, "ready": reason is None}
                if reason is not None:
                    return JSONResponse({**body, "error": reason}, 503)
                return JSONResponse(body)
            await resolve_version(version_ref(path.name, path.version))  # unknown names: 404
            return JSONResponse(
                {
                    "error": "the modelyard server stores models and does not run them: pull the "
                    "version with the desktop agent and send inference to its local OIP server "
                    f"(POST /v2/models/{path.name}/infer on 127.0.0.1)",
                    "code": "NOT_IMPLEMENTED",
                },
                501,
            )
        except ModelyardError as exc:
            return error_response(exc)
