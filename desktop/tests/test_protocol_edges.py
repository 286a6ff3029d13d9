"""Protocol edges found by real clients (issue 13, item 5), against a real `modelyard-agent serve`:
OpenAI parameters the agent does not honour are refused by name, unknown routes and wrong methods
answer JSON in each API's shape, `/v1/models` lists only what `/v1` can run, tritonclient's
request and response compression works (with a cap on what a body may inflate to), and Triton's
extensions answer a clear 501."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import tritonclient.http as triton
from conftest import Publisher, Server, agent_serving
from models import linear_model
from tritonclient.utils import InferenceServerException

TINY = Path(__file__).resolve().parents[2] / "scripts" / "models" / "tiny-chat"
HELLO = "Hello! I am a tiny model served by modelyard."
LIMIT = 64 << 20  # the OIP body cap, as Triton's default --http-max-input-size
USER: Any = [{"role": "user", "content": "hello"}]



@dataclass
class Edges:
    """A running `serve` over a chat model, an embedding model and a plain (OIP-only) model."""

    url: str
    chat: str
    embed: str
    other: str
    made: list[Any] = field(default_factory=list)  # clients to close when the module ends

    def openai(self) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)
        self.made.append(client)
        return client

    def triton(self) -> triton.InferenceServerClient:
        client = triton.InferenceServerClient(url=self.url.removeprefix("http://"))
        self.made.append(client)
        return client

    def close(self) -> None:
        """Close every client made (left to the garbage collector, a socket may go before its
        client and warn: an unclosed-socket ResourceWarning in some later test)."""
        for client in self.made:
            client.close()


@pytest.fixture(scope="module")
def edges(server: Server, publisher: Publisher, minilm: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edges]:
    tmp = tmp_path_factory.mktemp("edges")
    linear_model(tmp / "linear" / "model.onnx")
    names = (publisher.folder("chat", TINY, "TEXT_GENERATION").model,
             publisher.folder("embed", minilm / "fp32", "FEATURE_EXTRACTION").model,
             publisher.folder("linear", tmp / "linear", "OTHER").model)
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(tmp / "home"), "MODELYARD_SERVER": server.url}
    for name in names:
        subprocess.run([sys.executable, "-m", "modelyard_agent", "pull", name], env=env, check=True,
                       capture_output=True)
    with agent_serving(env) as url:
        edges = Edges(url, *names)
        try:
            yield edges
        finally:
            edges.close()


# --- OpenAI parameters the agent does not honour ---------------------------------------------------

TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(("param", "value"), [
    ("logprobs", True),
    ("top_logprobs", 2),
    ("tools", [TOOL]),
    ("tool_choice", "required"),
    ("response_format", {"type": "json_object"}),
    ("presence_penalty", 0.5),
    ("frequency_penalty", -1.0),
    ("logit_bias", {"50256": -100}),
    ("n", 2),
    ("functions", [TOOL["function"]]),
    ("function_call", {"name": "weather"}),
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]),
    ("prediction", {"type": "content", "content": "Hello!"}),
    ("reasoning_effort", "high"),
    ("store", True),
    ("web_search_options", {}),
])
def test_openai_parameters_not_honoured_are_refused_by_name(edges: Edges, param: str, value: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        edges.openai().chat.completions.create(model=edges.chat, messages=USER,
                                               **{param: value})
    error = refused.value.body
    assert isinstance(error, dict), error
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error", param, "unsupported_parameter")
    assert param in error["message"]


def test_a_refused_parameter_stops_a_stream_before_it_starts(edges: Edges) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        edges.openai().chat.completions.create(model=edges.chat, messages=USER,
                                               stream=True, logprobs=True)
    assert refused.value.code == "unsupported_parameter" and refused.value.param == "logprobs"


def test_parameters_no_openai_model_takes_are_refused_not_ignored(edges: Edges) -> None:
    """Vendor options other local servers take (`repetition_penalty`, `min_p`) would change the
    reply; ignoring them would hand back an answer the caller did not ask for."""
    client = edges.openai()
    for extra in ({"repetition_penalty": 1.3}, {"min_p": 0.1}):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=edges.chat, messages=USER,
                                           extra_body=extra)
        assert refused.value.code == "unsupported_parameter" and refused.value.param == next(iter(extra))
    with pytest.raises(openai.BadRequestError) as embed:
        client.embeddings.create(model=edges.embed, input="hi", extra_body={"input_type": "query"})
    assert embed.value.code == "unsupported_parameter" and embed.value.param == "input_type"


def test_neutral_values_and_bookkeeping_are_accepted(edges: Edges) -> None:
    """Values that ask for nothing the agent does not do (a client's defaults) and OpenAI's
    bookkeeping fields change nothing in the answer: the reply is the plain greedy one."""
    client = edges.openai()
    reply = client.chat.completions.create(
        model=edges.chat, messages=USER, temperature=0, seed=7,
        n=1, logprobs=False, presence_penalty=0, frequency_penalty=0.0, logit_bias={}, tools=[],
        tool_choice="none", parallel_tool_calls=True, response_format={"type": "text"},
        modalities=["text"], store=False, audio=None, user="me", metadata={"app": "test"},
        service_tier="auto", safety_identifier="abc", prompt_cache_key="k")
    assert reply.choices[0].message.content == HELLO
    vectors = client.embeddings.create(model=edges.embed, input="hi", user="me", encoding_format="float")
    assert len(vectors.data[0].embedding) == 384


# --- unknown routes and wrong methods --------------------------------------------------------------


def test_unknown_openai_routes_answer_openai_404s(edges: Edges) -> None:
    client = edges.openai()
    with pytest.raises(openai.NotFoundError) as legacy:
        client.completions.create(model=edges.chat, prompt="hello")
    with pytest.raises(openai.NotFoundError) as responses:
        client.responses.create(model=edges.chat, input="hello")
    for refused, path in ((legacy, "/v1/completions"), (responses, "/v1/responses")):
        error = refused.value.body
        assert isinstance(error, dict), error
        assert error["type"] == "invalid_request_error" and error["code"] == "unknown_url"
        assert path in error["message"] and "/v1/chat/completions" in error["message"]


def test_wrong_methods_on_openai_routes_answer_openai_405s(edges: Edges) -> None:
    with pytest.raises(openai.APIStatusError) as deleted:
        edges.openai().models.delete(edges.chat)
    assert deleted.value.status_code == 405
    error = deleted.value.body
    assert isinstance(error, dict) and error["code"] == "method_not_allowed", error
    assert "GET" in deleted.value.response.headers["allow"]
    r = httpx.get(f"{edges.url}/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "POST"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v2/nothing", 404), ("GET", "/v2/health/alive", 404), ("POST", "/v2/health/live", 405),
    ("PUT", "/v2/models/x/infer", 405), ("DELETE", "/v2", 405),
    ("GET", "/nothing-here", 404), ("GET", "/v3/models", 404), ("POST", "/api/infer", 404),
])
def test_unknown_routes_elsewhere_answer_json_errors(edges: Edges, method: str, path: str, status: int) -> None:
    r = httpx.request(method, f"{edges.url}{path}", json={} if method in ("POST", "PUT") else None)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and path in body["error"]
    if status == 405:
        assert r.headers["allow"]


# --- /v1/models ------------------------------------------------------------------------------------


def test_openai_model_list_holds_only_chat_and_embedding_models(edges: Edges) -> None:
    client = edges.openai()
    listed = {m.id for m in client.models.list()}
    assert {edges.chat, f"{edges.chat}:1", edges.embed, f"{edges.embed}:1"} <= listed
    assert not [i for i in listed if i.startswith(edges.other)]
    with pytest.raises(openai.NotFoundError) as other:
        client.models.retrieve(edges.other)
    assert f"/v2/models/{edges.other}" in other.value.message
    client_oip = edges.triton()
    try:
        assert client_oip.get_model_metadata(edges.other)["name"] == edges.other  # still served on /v2
    finally:
        client_oip.close()


# --- compression -----------------------------------------------------------------------------------


@pytest.mark.parametrize("request_algorithm", ["gzip", "deflate"])
@pytest.mark.parametrize("response_algorithm", [None, "gzip", "deflate"])
@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_compression_works(edges: Edges, request_algorithm: str, response_algorithm: str | None,
                                        binary: bool) -> None:
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    client = edges.triton()
    try:
        given = triton.InferInput("x", [10, 4], "FP32")
        given.set_data_from_numpy(x, binary_data=binary)
        result = client.infer(edges.other, [given],
                              outputs=[triton.InferRequestedOutput("z", binary_data=binary)],
                              request_compression_algorithm=request_algorithm,
                              response_compression_algorithm=response_algorithm)
    finally:
        client.close()
    np.testing.assert_array_equal(result.as_numpy("z"), x + x)


@pytest.mark.parametrize(("accept", "encoding"), [("gzip", "gzip"), ("deflate", "deflate"),
                                                  ("gzip;q=0, deflate", "deflate"), ("br", None),
                                                  ("identity", None)])
def test_infer_answers_compressed_when_asked(edges: Edges, accept: str, encoding: str | None) -> None:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    r = httpx.post(f"{edges.url}/v2/models/{edges.other}/infer", json=body, headers={"Accept-Encoding": accept})
    assert r.status_code == 200, r.text
    assert r.headers.get("content-encoding") == encoding
    assert r.json()["outputs"][1]["data"] == [2, 4, 6, 8]  # httpx decodes it


def test_a_compressed_body_that_inflates_past_the_limit_is_a_413(edges: Edges) -> None:
    """A zip bomb: 64 MiB and a bit of zeros are 65 KiB of gzip; the server stops inflating at the
    limit instead of holding all of it."""
    rows = LIMIT // 16 + 1
    client = edges.triton()
    try:
        given = triton.InferInput("x", [rows, 4], "FP32")
        given.set_data_from_numpy(np.zeros((rows, 4), np.float32))
        with pytest.raises(InferenceServerException) as refused:
            client.infer(edges.other, [given], request_compression_algorithm="gzip")
    finally:
        client.close()
    assert refused.value.status() == "413"
    assert "64 MiB" in str(refused.value.message())
    bomb = zlib.compress(b"{" + b" " * (LIMIT + 1) + b"}")
    r = httpx.post(f"{edges.url}/v2/models/{edges.other}/infer", content=bomb,
                   headers={"Content-Encoding": "deflate", "Content-Type": "application/json"})
    assert r.status_code == 413 and set(r.json()) == {"error"}


@pytest.mark.parametrize(("encoding", "body", "status", "message"), [
    ("br", b"\x1b\x00", 415, "Content-Encoding br"),
    ("gzip", b"not gzip at all", 400, "not valid gzip"),
    ("gzip", gzip.compress(b'{"inputs": []}', mtime=0)[:-6], 400, "cut short"),
    ("deflate", zlib.compress(b"{}") + b"junk", 400, "after the end"),
], ids=["brotli", "not-gzip", "truncated", "trailing-junk"])
def test_bad_compressed_bodies_are_clear_errors(edges: Edges, encoding: str, body: bytes, status: int,
                                                message: str) -> None:
    r = httpx.post(f"{edges.url}/v2/models/{edges.other}/infer", content=body,
                   headers={"Content-Encoding": encoding, "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and message in r.json()["error"]


def test_gzip_members_one_after_another_are_one_body(edges: Edges) -> None:
    """RFC 1952 §2.2: a gzip file is a series of members (what `cat a.gz b.gz` makes)."""
    text = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}'
    body = gzip.compress(text[:30]) + gzip.compress(text[30:])
    r = httpx.post(f"{edges.url}/v2/models/{edges.other}/infer", content=body,
                   headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][1]["data"] == [2, 4, 6, 8]


# --- Triton's extensions ---------------------------------------------------------------------------


def _extension_calls(model: str) -> list[tuple[str, Any]]:
    return [
        ("get_model_config", lambda c: c.get_model_config(model)),
        ("get_model_config version", lambda c: c.get_model_config(model, "1")),
        ("get_inference_statistics", lambda c: c.get_inference_statistics()),
        ("get_inference_statistics model", lambda c: c.get_inference_statistics(model)),
        ("get_model_repository_index", lambda c: c.get_model_repository_index()),
        ("load_model", lambda c: c.load_model(model)),
        ("unload_model", lambda c: c.unload_model(model)),
        ("get_system_shared_memory_status", lambda c: c.get_system_shared_memory_status()),
        ("register_system_shared_memory", lambda c: c.register_system_shared_memory("r", "/k", 64)),
        ("unregister_system_shared_memory", lambda c: c.unregister_system_shared_memory("r")),
        ("get_cuda_shared_memory_status", lambda c: c.get_cuda_shared_memory_status()),
        ("unregister_cuda_shared_memory", lambda c: c.unregister_cuda_shared_memory()),
        ("get_trace_settings", lambda c: c.get_trace_settings()),
        ("get_trace_settings model", lambda c: c.get_trace_settings(model)),
        ("update_trace_settings", lambda c: c.update_trace_settings(settings={"trace_level": ["OFF"]})),
        ("get_log_settings", lambda c: c.get_log_settings()),
        ("update_log_settings", lambda c: c.update_log_settings({"log_verbose_level": 1})),
    ]


def test_triton_extensions_answer_a_clear_501(edges: Edges) -> None:
    client = edges.triton()
    try:
        for what, call in _extension_calls(edges.other):
            with pytest.raises(InferenceServerException) as refused:
                call(client)
            assert refused.value.status() == "501", (what, refused.value)
            message = str(refused.value.message())
            assert "is a Triton extension this server does not implement" in message, (what, message)
        assert client.is_server_live()  # and the server is none the worse
    finally:
        client.close()
    r = httpx.post(f"{edges.url}/v2/models/{edges.other}/generate", json={"text_input": "hi"})
    assert r.status_code == 501 and "generate" in r.json()["error"]
