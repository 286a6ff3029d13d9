"""The agent's local Open Inference Protocol V2 REST server, with the binary tensor data extension.

    GET  /v2/health/live                      {"live": true}
    GET  /v2/health/ready                     {"ready": true}
    GET  /v2                                  {"name", "version", "extensions"}
    GET  /v2/models/<name>[/versions/<v>]     metadata (platform onnxruntime_onnx)
    GET  /v2/models/<name>[/versions/<v>]/ready
    POST /v2/models/<name>[/versions/<v>]/infer   JSON or JSON header + raw tensors

`<name>` may carry its namespace as a plain slash (`vision/resnet`, what tritonclient sends) or as
`%2F`; a trailing `ready`, `infer` or `versions/<v>` segment is the protocol's. Errors are
`{"error": message}`: 400 for a bad request or inputs that do not fit the model, 404 for an unknown
model or version, 503 for a model that fails to load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelyard_agent.runtime import Runtime
from modelyard_agent.tensors import (
    HEADER_LENGTH,
    InferenceError,
    InferenceInputError,
    encode_infer_response,
    parse_infer_request,
)

log = logging.getLogger("modelyard_agent.oip")
PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ["binary_tensor_data"]
_PREFIX = "/v2/models/"


@dataclass(frozen=True)
class LocalTensor:
    """A signature entry: name, OIP datatype, shape (-1 for a free dimension)."""

    name: str
    datatype: str
    shape: list[int]


@dataclass(frozen=True)
class LocalModel:
    """A pulled model version the local server can run."""

    name: str
    version: str
    path: Path
    inputs: list[LocalTensor] = field(default_factory=list)
    outputs: list[LocalTensor] = field(default_factory=list)


class ModelRegistry(Protocol):
    """What the server can serve: the agent's cache implements it."""

    def names(self) -> list[str]:
        """Names of the models available."""
        ...

    def resolve(self, name: str, version: str | None) -> LocalModel | None:
        """The model version `name` and `version` stand for (None: the default), or None."""
        ...


@dataclass(frozen=True)
class ModelPath:
    """What a `/v2/models/…` path asks: a model, an optional version, and the action."""

    name: str
    version: str | None
    action: str  # "metadata", "ready" or "infer"


def parse_model_path(segments: list[str]) -> ModelPath:
    """Read `<name>[/versions/<v>][/ready|/infer]` from decoded path segments."""
    action = "metadata"
    if len(segments) > 1 and segments[-1] in ("ready", "infer"):
        action, segments = segments[-1], segments[:-1]
    version = None
    if len(segments) > 2 and segments[-2] == "versions":
        version, segments = segments[-1], segments[:-2]
    if not segments or any(not s for s in segments):
        raise InferenceInputError(
            "no model name in the path: expected /v2/models/<name>[/versions/<v>][/ready|/infer]"
        )
    return ModelPath("/".join(segments), version, action)


def _segments(request: Request) -> list[str]:
    """The path after `/v2/models/`, split on literal slashes before percent-decoding."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    start = path.find(_PREFIX)
    if start < 0:
        return str(request.path_params["rest"]).split("/")
    return [unquote(part) for part in path[start + len(_PREFIX):].split("/")]


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status)


def _tensors(items: list[LocalTensor]) -> list[dict[str, Any]]:
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]


class _Routes:
    """The handlers, bound to a registry and a runtime."""

    def __init__(self, models: ModelRegistry, runtime: Runtime, version: str) -> None:
        self.models = models
        self.runtime = runtime
        self.version = version

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {"name": "modelyard-agent", "version": self.version, "extensions": EXTENSIONS}
        )

    async def model(self, request: Request) -> Response:
        try:
            path = parse_model_path(_segments(request))
        except InferenceInputError as exc:
            return _error(str(exc), 400)
        wanted = "POST" if path.action == "infer" else "GET"
        if request.method != wanted:
            return JSONResponse(
                {"error": f"{path.action} takes {wanted}, not {request.method}"},
                405, headers={"Allow": wanted},
            )
        # Reading manifests and linking a version's files is disk work: not on the event loop.
        model = await anyio.to_thread.run_sync(self.models.resolve, path.name, path.version)
        if model is None:
            what = path.name if path.version is None else f"{path.name} version {path.version}"
            return _error(f"unknown model {what}: pull it first", 404)
        if path.action == "metadata":
            return JSONResponse({
                "name": model.name,
                "versions": [model.version],
                "platform": PLATFORM,
                "inputs": _tensors(model.inputs),
                "outputs": _tensors(model.outputs),
            })
        if path.action == "ready":
            if not model.path.is_file():
                return JSONResponse(
                    {"name": model.name, "ready": False, "error": "the model file is missing"}, 503
                )
            return JSONResponse({"name": model.name, "ready": True})
        return await self.infer(request, model)

    async def infer(self, request: Request, model: LocalModel) -> Response:
        try:
            body = await request.body()
            parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH))
            loaded = await self.runtime.session(f"{model.name}:{model.version}", model.path)
            outputs = await self.runtime.infer(loaded, parsed.inputs, parsed.outputs)
        except InferenceError as exc:
            if exc.status >= 500:
                log.warning("infer on %s:%s failed: %s", model.name, model.version, exc)
            return _error(str(exc), exc.status)
        binary = set(outputs) if parsed.binary_all else parsed.binary_outputs
        content, header_length = encode_infer_response(
            model.name, model.version, outputs, binary, parsed.id
        )
        if header_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(header_length)},
        )


def _agent_version() -> str:
    try:
        return metadata.version("modelyard-agent")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def oip_routes(models: ModelRegistry, runtime: Runtime) -> list[Route]:
    """The OIP routes, to mount in a larger app."""
    handlers = _Routes(models, runtime, _agent_version())
    return [
        Route("/v2", handlers.server_metadata, methods=["GET"]),
        Route("/v2/health/live", handlers.live, methods=["GET"]),
        Route("/v2/health/ready", handlers.ready, methods=["GET"]),
        Route("/v2/models/{rest:path}", handlers.model, methods=["GET", "POST"]),
    ]


def oip_app(models: ModelRegistry, runtime: Runtime) -> Starlette:
    """A Starlette app serving the OIP V2 REST API over the registry's models."""
    return Starlette(routes=oip_routes(models, runtime))
