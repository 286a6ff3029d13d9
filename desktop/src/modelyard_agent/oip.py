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
model or version, 413 for a body over `MAX_BODY`, 415 for a Content-Encoding other than gzip or
deflate, 501 for Triton's extensions (`extension`), 503 for a model that fails to load.

An infer body may be gzip or deflate (tritonclient's `request_compression_algorithm`); it is
inflated in a worker thread and refused once it passes `MAX_BODY`, so a zip bomb costs at most that.
An infer answer is compressed when `Accept-Encoding` asks for gzip or deflate (tritonclient's
`response_compression_algorithm`); errors never are, since tritonclient reads them undecoded.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Awaitable, Callable
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
MAX_BODY = 64 << 20  # Triton's default --http-max-input-size
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
# Triton's extensions under /v2/models/<name>[/versions/<v>]/…, by their trailing segment(s).
MODEL_EXTENSIONS = {("config",): "model configuration", ("stats",): "statistics",
                    ("trace", "setting"): "trace", ("generate",): "generate",
                    ("generate_stream",): "generate"}
# … and the ones of the server as a whole, by route.
SERVER_EXTENSIONS = {"/v2/models/stats": "statistics", "/v2/repository/{rest:path}": "model repository",
                     "/v2/systemsharedmemory/{rest:path}": "system shared memory",
                     "/v2/cudasharedmemory/{rest:path}": "CUDA shared memory",
                     "/v2/trace/setting": "trace", "/v2/logging": "logging"}


class BodyTooLargeError(InferenceError):
    """A body, or what it inflates to, over MAX_BODY (HTTP 413)."""

    status = 413


class EncodingError(InferenceError):
    """A Content-Encoding the server does not decode (HTTP 415)."""

    status = 415


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
    action: str  # "metadata", "ready", "infer", or the name of a Triton extension


def parse_model_path(segments: list[str]) -> ModelPath:
    """Read `<name>[/versions/<v>][/ready|/infer|/<extension>]` from decoded path segments."""
    action = "metadata"
    if len(segments) > 1 and segments[-1] in ("ready", "infer"):
        action, segments = segments[-1], segments[:-1]
    else:
        for tail, extension in MODEL_EXTENSIONS.items():
            if len(segments) > len(tail) and tuple(segments[-len(tail):]) == tail:
                action, segments = extension, segments[:-len(tail)]
                break
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


def extension(request: Request, name: str) -> JSONResponse:
    """A Triton extension this server does not implement: 501 Not Implemented, which is what
    Triton itself answers for an unsupported request (TRITONSERVER_ERROR_UNSUPPORTED). tritonclient
    raises any non-200 as InferenceServerException with our message and the status, and retries
    nothing; 400 would blame a request that is fine, and 404 would read as an unknown model."""
    return _error(f"{request.method} {request.url.path}: {name} is a Triton extension this server "
                  f"does not implement; GET /v2 lists the ones it does ({', '.join(EXTENSIONS)})", 501)


def _too_large(limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(f"the request body is larger than {limit >> 20} MiB (once decoded); "
                             "send smaller batches")


def inflate(data: bytes, encoding: str, limit: int = MAX_BODY) -> bytes:
    """A gzip or deflate (zlib) body decoded, refused as soon as it passes `limit` bytes."""
    out = bytearray()
    while True:
        decoder = zlib.decompressobj(_WBITS[encoding])
        try:
            out += decoder.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise InferenceInputError(f"the body is not valid {encoding} ({exc})") from None
        if len(out) > limit:
            raise _too_large(limit)
        if not decoder.eof:
            raise InferenceInputError(f"the body's {encoding} stream is cut short")
        data = decoder.unused_data
        if not data:
            return bytes(out)
        if encoding == "deflate":
            raise InferenceInputError("the body has bytes after the end of its deflate stream")
        # gzip: another member follows (RFC 1952 §2.2), as `cat a.gz b.gz` makes


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, decoded from its Content-Encoding; never more than `limit` bytes of it,
    sent or inflated, are held."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower() or "identity"
    if encoding != "identity" and encoding not in _WBITS:
        raise EncodingError(f"Content-Encoding {encoding} is not supported: send gzip, deflate or "
                            "an uncompressed body")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    if encoding == "identity":
        return bytes(body)
    return await anyio.to_thread.run_sync(inflate, bytes(body), encoding, limit)


def response_encoding(accept: str) -> str | None:
    """gzip or deflate when Accept-Encoding takes it (gzip first; `q=0` refuses), else None."""
    weights = {}
    for item in accept.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[name.lower()] = weight
    return next((name for name in ("gzip", "deflate") if weights.get(name, 0.0) > 0), None)


def _compress(content: bytes, encoding: str) -> bytes:
    return gzip.compress(content, compresslevel=6) if encoding == "gzip" else zlib.compress(content, 6)


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
        if path.action not in ("metadata", "ready", "infer"):
            return extension(request, path.action)
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
            body = await read_body(request)
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
        headers = {"Vary": "Accept-Encoding"}
        if header_length is not None:  # the length of the JSON header before any compression
            headers[HEADER_LENGTH] = str(header_length)
        encoding = response_encoding(request.headers.get("accept-encoding", ""))
        if encoding is not None:
            content = await anyio.to_thread.run_sync(_compress, content, encoding)
            headers["Content-Encoding"] = encoding
        kind = "application/json" if header_length is None else "application/octet-stream"
        return Response(content, media_type=kind, headers=headers)


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
        # before /v2/models/{rest}, which would read /v2/models/stats as a model named `stats`
        *(Route(path, _unimplemented(name), methods=["GET", "POST"])
          for path, name in SERVER_EXTENSIONS.items()),
        Route("/v2/models/{rest:path}", handlers.model, methods=["GET", "POST"]),
    ]


def _unimplemented(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return extension(request, name)

    return endpoint


def oip_app(models: ModelRegistry, runtime: Runtime) -> Starlette:
    """A Starlette app serving the OIP V2 REST API over the registry's models."""
    return Starlette(routes=oip_routes(models, runtime))
