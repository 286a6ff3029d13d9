"""`POST /v1/ask`: grounded answers over the folder `serve --docs DIR` was started with.

    {"model": "<a pulled chat model>", "question": "…", "top": 4, "stream": true,
     "temperature": 0.2, "max_tokens": 160, "seed": 1}

A route of its own rather than an option of `/v1/chat/completions`: the server builds the prompt
(retrieval, numbered sources) instead of taking the caller's messages, and the answer carries its
sources and citations, which OpenAI's chat schema has no place for — an OpenAI client sending a
retrieval option to another server would have it silently ignored. The folder is fixed when the
server starts, so a web page (even an allowed origin) can never make the agent read other files.

Streamed (`stream: true`) as server-sent events, one JSON object per `data:` line: `sources`,
then `delta`s, then `done` (cited, attributed, grounded, finish_reason, usage), then `[DONE]`;
otherwise one JSON answer. Errors are OpenAI-shaped: 400 `no_docs` when the server has no folder,
`no_embedder` when it cannot tell which embedder to use, the chat routes' codes for the model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from modelyard_agent import answer
from modelyard_agent.docindex import DocIndex, index_dir
from modelyard_agent.errors import AgentError
from modelyard_agent.generate import Completion
from modelyard_agent.openai_api import (
    CHAT_TASK,
    EMBED_TASK,
    ApiError,
    ModelRoutes,
    Workers,
    json_body,
    key_of,
    refuse_unsupported,
)

ASK_PARAMS = frozenset({"model", "question", "top", "stream", "temperature", "top_p", "max_tokens", "seed",
                        "min_score"})
MAX_TOP = 20
MAX_QUESTION = 4000


@dataclass
class Assistant:
    """What `/v1/ask` answers from: the docs folder and, optionally, the embedder's ref."""

    home: Path
    docs: Path | None = None
    embedder: str | None = None
    _lock: anyio.Lock = field(default_factory=anyio.Lock)


class AskRoutes(ModelRoutes):
    def __init__(self, versions: Any, workers: Workers, assistant: Assistant) -> None:
        super().__init__(versions, workers)
        self.assistant = assistant

    def _embedder_manifest(self) -> Any:
        chosen = self.assistant.embedder
        if chosen is not None:
            return self.resolve(chosen, EMBED_TASK)
        found = [m for m in (self.lookup(n) for n in self.versions.names()) if m is not None and m.task == EMBED_TASK]
        if len(found) != 1:
            which = ", ".join(sorted(m.ref for m in found)) or "none is pulled"
            raise ApiError(400, f"start the server with --embedder REF to choose the embedder ({which})",
                           code="no_embedder")
        return found[0]

    async def ask(self, request: Request) -> Response:
        try:
            body = await json_body(request)
            refuse_unsupported(body, ASK_PARAMS, {})
            docs = self.assistant.docs
            if docs is None:
                raise ApiError(400, "this server answers from no files: start it with "
                                    "`modelyard-agent serve --docs DIR`", code="no_docs")
            question, top, stream, sampling, min_score = _request(body)
            chat = await anyio.to_thread.run_sync(self.resolve, body.get("model"), CHAT_TASK)
            embed = await anyio.to_thread.run_sync(self._embedder_manifest)
            embedder = await self.workers.model(self.versions, embed)
            index = DocIndex(index_dir(self.assistant.home, embed.manifest_digest, docs), embed.manifest_digest, docs)
            async with self.assistant._lock:
                await anyio.to_thread.run_sync(index.update, embedder, lambda message: None)
            sources = await anyio.to_thread.run_sync(answer.retrieve, index, embedder, question, top, min_score)
            generator = await self.workers.model(self.versions, chat) if sources else None
            grounding = (await anyio.to_thread.run_sync(answer.build_prompt, generator, question, sources,
                                                        sampling.max_tokens)
                         if generator is not None else answer.Grounding(question, []))
        except ApiError as exc:
            return exc.response()
        except AgentError as exc:
            return ApiError(400, str(exc), code="invalid_request").response()
        started: list[Completion] = []
        events = answer.events(generator, grounding, sampling, started)
        key = key_of(chat)
        if stream:
            return StreamingResponse(self._answer_stream(events, started, key), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        parts: list[str] = []
        out: dict[str, Any] = {}
        try:
            while (event := await anyio.to_thread.run_sync(next, events, None)) is not None:
                if event["type"] == "delta":
                    parts.append(event["content"])
                else:
                    out.update({k: v for k, v in event.items() if k != "type"})
        finally:
            for completion in started:
                completion.cancel()
        return JSONResponse({"object": "answer", "model": key, "system_fingerprint": chat.manifest_digest,
                             "question": question, "answer": "".join(parts), **out})

    async def _answer_stream(self, events: Iterator[dict[str, Any]], started: list[Completion],
                      key: str) -> AsyncIterator[bytes]:
        try:
            while (event := await anyio.to_thread.run_sync(next, events, None)) is not None:
                yield f"data: {json.dumps({**event, 'model': key})}\n\n".encode()
            yield b"data: [DONE]\n\n"
        finally:
            for completion in started:  # the client went away or the answer is over
                completion.cancel()


def _request(body: dict[str, Any]) -> tuple[str, int, bool, Any, float]:
    question = body.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ApiError(400, "question is required: a non-empty string", param="question", code="invalid_value")
    if len(question) > MAX_QUESTION:
        raise ApiError(400, f"question may be at most {MAX_QUESTION} characters", param="question",
                       code="invalid_value")
    top = body.get("top", 4)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
        raise ApiError(400, f"top must be an integer from 1 to {MAX_TOP}", param="top", code="invalid_value")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", param="stream", code="invalid_type")
    min_score = body.get("min_score", answer.MIN_SCORE)
    if isinstance(min_score, bool) or not isinstance(min_score, int | float) or not -1 <= min_score <= 1:
        raise ApiError(400, "min_score must be a number from -1 to 1", param="min_score", code="invalid_value")
    changes: dict[str, Any] = {}
    for name, kind in (("temperature", float), ("top_p", float), ("max_tokens", int), ("seed", int)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
            raise ApiError(400, f"{name} must be a number", param=name, code="invalid_type")
        changes[name] = value
    try:
        sampling = dataclasses.replace(answer.SAMPLING, **changes).check()
    except AgentError as exc:
        raise ApiError(400, str(exc), code="invalid_value") from None
    return question, top, stream, sampling, float(min_score)


def ask_routes(versions: Any, workers: Workers, assistant: Assistant) -> list[Route]:
    """`/v1/ask`, to mount beside the OpenAI-style routes."""
    return [Route("/v1/ask", AskRoutes(versions, workers, assistant).ask, methods=["POST"])]
