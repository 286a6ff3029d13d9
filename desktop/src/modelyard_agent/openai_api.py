"""OpenAI-style endpoints of the local server, over the same pulled versions as OIP.

    GET  /v1/models                 pulled chat and embedding models: per name, `name@alias`, `name:N`
    GET  /v1/models/{id}
    POST /v1/chat/completions       text-generation versions; `stream: true` answers server-sent events
    POST /v1/embeddings             feature-extraction versions; `encoding_format` float or base64

A model id is a ref: `name` (the followed alias' version if followed, else the highest pulled),
`name@alias` or `name:N`. Answers name the version that ran in `model` (`name:N`), so a client can
see a swap. Errors have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`: 400 for
a bad request or a model of the wrong task, 404 for a model not pulled, 503 for one that fails to
load. A parameter the agent does not honour is refused (400 `unsupported_parameter`, naming it)
rather than ignored, unless its value asks for nothing (`NEUTRAL`) or it is bookkeeping for
OpenAI's own service (`BOOKKEEPING`); OpenAI itself refuses arguments it does not know. Only
text-generation and feature-extraction versions are listed: the rest are served on /v2.
Generators and embedders load off the event loop, are cached per version and unloaded after the
idle TTL; generation runs in a worker thread and stops when a streaming client goes away.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from modelyard_agent.cache import Cache, Manifest
from modelyard_agent.embed import Embedder, load_embedder
from modelyard_agent.errors import AgentError
from modelyard_agent.generate import Generator, Sampling, load_generator
from modelyard_agent.refs import parse

log = logging.getLogger("modelyard_agent.openai")

CHAT_TASK = "text-generation"
EMBED_TASK = "feature-extraction"
MAX_EMBED_INPUTS = 2048
ROLES = {"system", "user", "assistant", "developer"}

T = TypeVar("T")
LOADERS: dict[str, Callable[..., Any]] = {CHAT_TASK: load_generator, EMBED_TASK: load_embedder}

CHAT_PARAMS = frozenset({"model", "messages", "stream", "stream_options", "stop", "max_tokens",
                         "max_completion_tokens", "temperature", "top_p", "top_k", "seed"})
EMBED_PARAMS = frozenset({"model", "input", "encoding_format", "dimensions"})
# Bookkeeping for OpenAI's service (who asks, billing, its prompt cache): nothing in the answer
# depends on them, so they are accepted and ignored.
BOOKKEEPING = frozenset({"user", "metadata", "safety_identifier", "service_tier", "prompt_cache_key",
                         "prompt_cache_retention", "prompt_cache_options"})
# Chat parameters the agent does not implement, with the values that ask for nothing it does not
# do (what clients send as defaults); null is neutral for every parameter. Other values are refused.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "logit_bias": ({},),
    "tools": ([],),
    "functions": ([],),
    "tool_choice": ("none", "auto"),  # with no tools, "auto" calls none
    "function_call": ("none", "auto"),
    "parallel_tool_calls": (True, False),
    "response_format": ({"type": "text"},),
    "modalities": (["text"],),
    "store": (False,),
}


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind

    def response(self) -> JSONResponse:
        """The JSON error response."""
        return JSONResponse({"error": {"message": self.message, "type": self.kind,
                                       "param": self.param, "code": self.code}}, self.status)


class Versions(Protocol):
    """What the routes need of the cache registry."""

    cache: Cache

    def names(self) -> list[str]:
        """Pulled model names."""
        ...

    def manifest(self, name: str, version: str | None) -> Manifest | None:
        """The complete pulled version a name and version (number, alias, None) stand for."""
        ...

    def folder(self, manifest: Manifest) -> Path:
        """The version's materialised folder."""
        ...


@dataclass
class _Held:
    value: Any
    last_used: float


@dataclass
class Workers:
    """Loaded generators and embedders by version key, unloaded after `idle_ttl` seconds unused."""

    idle_ttl: float = 600.0
    providers: list[str] | None = None
    clock: Callable[[], float] = time.monotonic
    on_loaded: Callable[[list[str]], None] | None = None
    _held: dict[str, _Held] = field(default_factory=dict)
    _locks: dict[str, anyio.Lock] = field(default_factory=dict)

    def loaded(self) -> list[str]:
        """Keys of what is held now."""
        return sorted(self._held)

    def _report(self) -> None:
        if self.on_loaded is not None:
            self.on_loaded(self.loaded())

    def unload(self, key: str) -> bool:
        """Drop one key (a request still using it finishes)."""
        done = self._held.pop(key, None) is not None
        if done:
            self._report()
        return done

    def evict_idle(self) -> list[str]:
        """Drop what has been idle longer than the TTL (a request still using it finishes)."""
        now = self.clock()
        idle = [k for k, h in self._held.items() if now - h.last_used > self.idle_ttl]
        for key in idle:
            log.info("unloading idle model %s", key)
            del self._held[key]
        if idle:
            self._report()
        return idle

    async def get(self, key: str, load: Callable[[], T]) -> T:
        """The held object for the key, loading it in a worker thread on first use."""
        self.evict_idle()
        async with self._locks.setdefault(key, anyio.Lock()):
            held = self._held.get(key)
            if held is None:
                try:
                    value = await anyio.to_thread.run_sync(load)
                except AgentError as exc:
                    raise ApiError(503, f"model {key} failed to load: {exc}", code="model_load_failed",
                                   kind="server_error") from exc
                except Exception as exc:  # onnxruntime and tokenizers raise untyped errors
                    log.warning("loading %s failed: %s", key, exc)
                    raise ApiError(503, f"model {key} failed to load: {exc}", code="model_load_failed",
                                   kind="server_error") from exc
                held = self._held[key] = _Held(value, self.clock())
                self._report()
            held.last_used = self.clock()
            return held.value  # type: ignore[no-any-return]

    async def model(self, versions: Versions, manifest: Manifest) -> Any:
        """The version's loaded generator (text-generation) or embedder (feature-extraction)."""
        loader = LOADERS[manifest.task]
        folder = await anyio.to_thread.run_sync(versions.folder, manifest)
        return await self.get(key_of(manifest), lambda: loader(folder, providers=self.providers))

    async def reap(self, interval: float | None = None) -> None:
        """Evict idle objects forever (run in a task group; cancel to stop)."""
        while True:
            await anyio.sleep(interval if interval is not None else max(self.idle_ttl / 4, 0.01))
            self.evict_idle()


def _number(body: dict[str, Any], key: str, low: float, high: float | None = None, *,
            integer: bool = False, low_open: bool = False) -> Any:
    value = body.get(key)
    if value is None:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise ApiError(400, f"{key} must be {kind}", param=key, code="invalid_type")
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high):
        bound = f"> {low}" if low_open else f">= {low}"
        span = f"{bound} and <= {high}" if high is not None else bound
        raise ApiError(400, f"{key} must be {span}, not {value}", param=key, code="invalid_value")
    return value


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"{where}: only text content parts are supported", param="messages",
                               code="invalid_value")
            parts.append(part["text"])
        return "".join(parts)
    raise ApiError(400, f"{where}.content must be a string or a list of text parts", param="messages",
                   code="invalid_type")


def _same(value: Any, neutral: Any) -> bool:
    if isinstance(value, bool) or isinstance(neutral, bool):  # True == 1 must not pass for n=1
        return value is neutral
    return bool(value == neutral)


def refuse_unsupported(body: dict[str, Any], honoured: frozenset[str],
                       neutrals: dict[str, tuple[Any, ...]]) -> None:
    """A 400 `unsupported_parameter` for the first parameter that would otherwise be ignored."""
    for key, value in body.items():
        if key in honoured or key in BOOKKEEPING or value is None:
            continue
        neutral = neutrals.get(key, ())
        if any(_same(value, n) for n in neutral):
            continue
        if neutral:
            shown = json.dumps(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            message = (f"{key}={shown} is not supported by modelyard-agent: leave it out or "
                       f"send {' or '.join(json.dumps(n) for n in neutral)}")
        else:
            message = f"{key} is not supported by modelyard-agent, which takes {', '.join(sorted(honoured))}"
        raise ApiError(400, message, param=key, code="unsupported_parameter")


def chat_messages(value: Any) -> list[dict[str, str]]:
    """The request's messages as role/content pairs, or a 400."""
    if not isinstance(value, list) or not value:
        raise ApiError(400, "messages must be a non-empty list", param="messages", code="invalid_value")
    out = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ApiError(400, f"{where} must be an object", param="messages", code="invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise ApiError(400, f"{where}.role must be one of {', '.join(sorted(ROLES))}, not {role!r}",
                           param="messages", code="invalid_value")
        out.append({"role": "system" if role == "developer" else str(role),
                    "content": _text(m.get("content"), where)})
    return out


def sampling_from(body: dict[str, Any]) -> Sampling:
    """The request's sampling settings (Sampling's defaults for those not given), or a 400."""
    given = {
        "temperature": _number(body, "temperature", 0, 2),
        "top_p": _number(body, "top_p", 0, 1, low_open=True),
        "top_k": _number(body, "top_k", 0, integer=True),
        "max_tokens": (_number(body, "max_completion_tokens", 1, integer=True)
                       or _number(body, "max_tokens", 1, integer=True)),
        "seed": _number(body, "seed", -(2**63), integer=True),
    }
    return Sampling(**{k: v for k, v in given.items() if v is not None})


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > 4:
        raise ApiError(400, "stop must be a non-empty string or a list of up to 4", param="stop",
                       code="invalid_value")
    return list(stops)


class StopScanner:
    """Cuts streamed text at the first stop string, holding back what may begin one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.pending = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        """Text safe to emit now; sets `stopped` when a stop string appeared."""
        if not self.stops:
            return delta
        self.pending += delta
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending, self.stopped = self.pending[: min(hits)], "", True
            return out
        cut = max(len(self.pending) - self.hold, 0)
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        """What was held back, at the end of the text."""
        out, self.pending = self.pending, ""
        return out


def _epoch(stamp: str) -> int:
    try:
        return int(datetime.fromisoformat(stamp).timestamp())
    except ValueError:
        return 0


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "the body must be a JSON object", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    return body


class _Routes:
    def __init__(self, versions: Versions, workers: Workers) -> None:
        self.versions = versions
        self.workers = workers

    def lookup(self, model: str) -> Manifest | None:
        """The complete pulled version a model id means, or None; a 404 for one that is not a ref."""
        try:
            ref = parse(model)
        except AgentError as exc:
            raise ApiError(404, str(exc), param="model", code="model_not_found") from None
        if ref.digest is not None:
            found = self.versions.cache.find(ref)
            return found if found is not None and self.versions.cache.complete(found) else None
        version = str(ref.number) if ref.number is not None else ref.alias
        return self.versions.manifest(ref.name, version)

    def resolve(self, model: Any, task: str) -> Manifest:
        if not isinstance(model, str) or not model:
            raise ApiError(400, "model is required: a pulled model's name or ref", param="model",
                           code="invalid_value")
        manifest = self.lookup(model)
        if manifest is None:
            raise ApiError(404, f"model {model} is not pulled: `modelyard-agent pull {model}` first",
                           param="model", code="model_not_found")
        if manifest.task != task:
            hint = {CHAT_TASK: "/v1/chat/completions", EMBED_TASK: "/v1/embeddings"}.get(
                manifest.task, f"/v2/models/{manifest.name}/infer")
            raise ApiError(400, f"{manifest.ref} is a {manifest.task} model, not {task}: use {hint}",
                           param="model", code="wrong_task")
        return manifest

    def _model_entry(self, model_id: str, manifest: Manifest) -> dict[str, Any]:
        # `modelyard` names the exact build the id means now (OpenAI clients ignore extra fields).
        return {"id": model_id, "object": "model", "created": _epoch(manifest.pulled_at),
                "owned_by": "modelyard", "task": manifest.task, "version": manifest.number,
                "modelyard": {"ref": manifest.ref, "name": manifest.name, "version": manifest.number,
                              "manifest_digest": manifest.manifest_digest, "task": manifest.task}}

    def _entries(self) -> list[dict[str, Any]]:
        """Every id /v1 can run: versions of the tasks it serves (chat, embeddings), not others."""
        entries: dict[str, dict[str, Any]] = {}

        def add(model_id: str, manifest: Manifest) -> None:
            if manifest.task in LOADERS:
                entries.setdefault(model_id, self._model_entry(model_id, manifest))

        names = set()
        for name in self.versions.names():
            default = self.versions.manifest(name, None)
            if default is not None:
                names.add(name)
                add(name, default)
        for m in self.versions.cache.manifests():
            if m.name in names and self.versions.cache.complete(m):
                add(f"{m.name}:{m.number}", m)
                for alias in m.pulled_as:
                    if "@" in alias:
                        current = self.versions.manifest(m.name, alias.split("@", 1)[1])
                        if current is not None:
                            add(alias, current)
        return [entries[k] for k in sorted(entries)]

    async def models(self, request: Request) -> Response:
        data = await anyio.to_thread.run_sync(self._entries)
        return JSONResponse({"object": "list", "data": data})

    async def model(self, request: Request) -> Response:
        wanted = request.path_params["model"]
        for entry in await anyio.to_thread.run_sync(self._entries):
            if entry["id"] == wanted:
                return JSONResponse(entry)
        message = f"model {wanted} is not pulled"
        with contextlib.suppress(ApiError):
            other = await anyio.to_thread.run_sync(self.lookup, wanted)
            if other is not None:  # pulled, but /v1 does not run its task: say where it is served
                message = (f"{other.ref} is a {other.task} model; /v1 serves {CHAT_TASK} and "
                           f"{EMBED_TASK} models: use /v2/models/{other.name}")
        return ApiError(404, message, param="model", code="model_not_found").response()

    async def chat(self, request: Request) -> Response:
        try:
            body = await _json_body(request)
            refuse_unsupported(body, CHAT_PARAMS, NEUTRAL)
            manifest = await anyio.to_thread.run_sync(self.resolve, body.get("model"), CHAT_TASK)
            messages = chat_messages(body.get("messages"))
            sampling = sampling_from(body)
            stops = _stops(body.get("stop"))
            stream = body.get("stream", False)
            if not isinstance(stream, bool):
                raise ApiError(400, "stream must be true or false", param="stream", code="invalid_type")
            options = body.get("stream_options") or {}
            include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
            key = key_of(manifest)
            generator: Generator = await self.workers.model(self.versions, manifest)
            completion = await anyio.to_thread.run_sync(generator.complete, messages, sampling)
        except ApiError as exc:
            return exc.response()
        except AgentError as exc:
            return ApiError(400, str(exc), code="invalid_request").response()
        ident = f"chatcmpl-{secrets.token_hex(12)}"
        created = int(time.time())
        if stream:
            return StreamingResponse(
                self._stream(completion, ident, created, key, StopScanner(stops), include_usage),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache"},
            )
        scanner = StopScanner(stops)
        try:
            text = await self._collect(completion, scanner)
        finally:
            completion.cancel()
        finish = "stop" if scanner.stopped else (completion.finish_reason or "stop")
        return JSONResponse({
            "id": ident, "object": "chat.completion", "created": created, "model": key,
            "system_fingerprint": manifest.manifest_digest,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": finish}],
            "usage": _usage(completion),
        })

    async def _collect(self, completion: Any, scanner: StopScanner) -> str:
        parts = []
        while (delta := await anyio.to_thread.run_sync(next, completion, None)) is not None:
            parts.append(scanner.feed(delta))
            if scanner.stopped:
                return "".join(parts)
        parts.append(scanner.flush())
        return "".join(parts)

    async def _stream(self, completion: Any, ident: str, created: int, key: str,
                      scanner: StopScanner, include_usage: bool) -> AsyncIterator[bytes]:
        def event(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": key,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish}], **extra}
            return f"data: {json.dumps(chunk)}\n\n".encode()

        try:
            yield event({"role": "assistant", "content": ""}, None)
            while (delta := await anyio.to_thread.run_sync(next, completion, None)) is not None:
                text = scanner.feed(delta)
                if text:
                    yield event({"content": text}, None)
                if scanner.stopped:
                    break
            rest = scanner.flush()
            if rest:
                yield event({"content": rest}, None)
            finish = "stop" if scanner.stopped else (completion.finish_reason or "stop")
            yield event({}, finish)
            if include_usage:
                chunk = {"id": ident, "object": "chat.completion.chunk", "created": created,
                         "model": key, "choices": [], "usage": _usage(completion)}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            yield b"data: [DONE]\n\n"
        finally:
            completion.cancel()  # the client went away or the reply is over: free the generator

    async def embeddings(self, request: Request) -> Response:
        try:
            body = await _json_body(request)
            refuse_unsupported(body, EMBED_PARAMS, {})
            manifest = await anyio.to_thread.run_sync(self.resolve, body.get("model"), EMBED_TASK)
            texts = embedding_inputs(body.get("input"))
            fmt = body.get("encoding_format") or "float"
            if fmt not in ("float", "base64"):
                raise ApiError(400, f"encoding_format must be float or base64, not {fmt!r}",
                               param="encoding_format", code="invalid_value")
            key = key_of(manifest)
            embedder: Embedder = await self.workers.model(self.versions, manifest)
            dims = _number(body, "dimensions", 1, integer=True)
            if dims is not None and dims != embedder.dim:
                raise ApiError(400, f"{key} gives {embedder.dim} dimensions; it cannot give {dims}",
                               param="dimensions", code="invalid_value")
            vectors, tokens = await anyio.to_thread.run_sync(
                lambda: (embedder.embed(texts), embedder.count_tokens(texts)))
        except ApiError as exc:
            return exc.response()
        except AgentError as exc:
            return ApiError(400, str(exc), code="invalid_request").response()
        data = []
        for i, vector in enumerate(np.asarray(vectors, dtype="<f4")):
            value: Any = (base64.b64encode(vector.tobytes()).decode() if fmt == "base64"
                          else vector.tolist())
            data.append({"object": "embedding", "index": i, "embedding": value})
        return JSONResponse({"object": "list", "data": data, "model": key,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def embedding_inputs(value: Any) -> list[str]:
    """The texts to embed (a string or a list of strings), or a 400."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise ApiError(400, "input must be a non-empty string or a non-empty list of strings",
                       param="input", code="invalid_value")
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "input must be text: token arrays are not supported", param="input",
                       code="invalid_type")
    if any(not t for t in texts):
        raise ApiError(400, "input must not contain empty strings", param="input", code="invalid_value")
    if len(texts) > MAX_EMBED_INPUTS:
        raise ApiError(400, f"at most {MAX_EMBED_INPUTS} inputs per request, not {len(texts)}",
                       param="input", code="invalid_value")
    return texts


def key_of(manifest: Manifest) -> str:
    """The key a version's loaded model is held under (`name:number`, as the OIP runtime's)."""
    return f"{manifest.name}:{manifest.number}"


async def warm(workers: Workers, versions: Versions, manifest: Manifest) -> bool:
    """Load a text-generation or feature-extraction version's worker; False for other tasks."""
    if manifest.task not in LOADERS:
        return False
    await workers.model(versions, manifest)
    return True


def _usage(completion: Any) -> dict[str, int]:
    prompt, done = int(completion.prompt_tokens), int(completion.completion_tokens)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def openai_routes(versions: Versions, workers: Workers) -> list[Route]:
    """The OpenAI-style routes, to mount beside the OIP ones."""
    handlers = _Routes(versions, workers)
    return [
        Route("/v1/models", handlers.models, methods=["GET"]),
        Route("/v1/models/{model:path}", handlers.model, methods=["GET"]),
        Route("/v1/chat/completions", handlers.chat, methods=["POST"]),
        Route("/v1/embeddings", handlers.embeddings, methods=["POST"]),
    ]


# For sibling routes (ask_api) that resolve models and read bodies exactly as these do.
ModelRoutes = _Routes
json_body = _json_body
