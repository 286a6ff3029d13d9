"""The local server's OpenAI-style endpoints, driven by the `openai` package against a real
`modelyard-agent serve` over pulled versions: tiny-chat, all-MiniLM-L6-v2 and a tiny linear model."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from conftest import Publisher, Server, agent_serving
from models import linear_model
from modelyard_agent.embed import load_embedder
from modelyard_agent.generate import Sampling, load_generator

TINY = Path(__file__).resolve().parents[2] / "scripts" / "models" / "tiny-chat"
HELLO = "Hello! I am a tiny model served by modelyard."



@dataclass
class Local:
    """A running `modelyard-agent serve` and the names of what it serves."""

    url: str
    chat: str
    embed: str
    other: str
    home: Path
    made: list[openai.OpenAI] = field(default_factory=list)  # closed when the module ends

    def client(self, **kw: object) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, **kw)  # type: ignore[arg-type]
        self.made.append(client)
        return client


@pytest.fixture(scope="module")
def local(server: Server, publisher: Publisher, minilm: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    tmp = tmp_path_factory.mktemp("openai")
    linear_model(tmp / "linear" / "model.onnx")
    names = (publisher.folder("chat", TINY, "TEXT_GENERATION").model,
             publisher.folder("embed", minilm / "fp32", "FEATURE_EXTRACTION").model,
             publisher.folder("linear", tmp / "linear", "OTHER").model)
    home = tmp / "home"
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(home), "MODELYARD_SERVER": server.url}
    for name in names:
        subprocess.run([sys.executable, "-m", "modelyard_agent", "pull", name], env=env, check=True,
                       capture_output=True)
    with agent_serving(env) as url:
        local = Local(url, *names, home=home)
        try:
            yield local
        finally:
            for client in local.made:  # not left to the garbage collector: see test_protocol_edges
                client.close()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_models_lists_each_pulled_name_and_version(local: Local) -> None:
    listed = {m.id: m for m in local.client().models.list()}
    for name in (local.chat, local.embed):
        assert name in listed and f"{name}:1" in listed
        assert listed[name].owned_by == "modelyard"
    assert local.other not in listed and f"{local.other}:1" not in listed  # a classifier neither chats nor embeds
    assert local.client().models.retrieve(f"{local.chat}:1").id == f"{local.chat}:1"
    with pytest.raises(openai.NotFoundError):
        local.client().models.retrieve("nobody-has-this")


def test_chat_answers_like_the_generator_and_names_the_version(local: Local) -> None:
    reply = local.client().chat.completions.create(model=local.chat, messages=user("hello"),  # type: ignore[arg-type]
                                                   temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == HELLO
    assert choice.finish_reason == "stop"
    assert reply.model == f"{local.chat}:1"
    completion = load_generator(TINY).complete(user("hello"), Sampling(temperature=0))
    assert "".join(completion) == HELLO
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        completion.prompt_tokens, completion.completion_tokens)


def test_chat_streams_token_by_token_with_usage_at_the_end(local: Local) -> None:
    stream = local.client().chat.completions.create(
        model=local.chat, messages=user("hello"), temperature=0, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == HELLO
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 3


def test_max_tokens_and_stop_sequences_end_the_reply(local: Local) -> None:
    client = local.client()
    short = client.chat.completions.create(model=local.chat, messages=user("hello"),  # type: ignore[arg-type]
                                           temperature=0, max_tokens=3)
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens == 3
    assert HELLO.startswith(short.choices[0].message.content or "-")
    cut = client.chat.completions.create(model=local.chat, messages=user("hello"),  # type: ignore[arg-type]
                                         temperature=0, stop=["tiny"])
    assert cut.choices[0].message.content == HELLO[: HELLO.index("tiny")]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model=local.chat, messages=user("hello"),  # type: ignore[arg-type]
                                              temperature=0, stop="tiny", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == HELLO[: HELLO.index("tiny")]


def test_a_client_leaving_mid_stream_does_not_hurt_the_next_request(local: Local) -> None:
    with httpx.stream("POST", f"{local.url}/v1/chat/completions", timeout=30, json={
            "model": local.chat, "messages": user("tell me everything"), "stream": True,
            "max_tokens": 2000, "temperature": 1.0}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        first = next(r.iter_lines())
        assert first.startswith("data: {")
    reply = local.client().chat.completions.create(model=local.chat, messages=user("hello"),  # type: ignore[arg-type]
                                                   temperature=0)
    assert reply.choices[0].message.content == HELLO


def test_embeddings_match_the_embedder_in_float_and_base64(local: Local, minilm: Path) -> None:
    texts = ["How often should I water tomatoes?", "Tomato plants need water twice a week.",
             "The registry keeps lineage."]
    want = load_embedder(minilm / "fp32").embed(texts)
    got = local.client().embeddings.create(model=local.embed, input=texts)  # base64 on the wire
    assert [d.index for d in got.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in got.data], dtype=np.float32)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(vectors, want, atol=1e-5)
    assert got.usage.prompt_tokens > 10 and got.model == f"{local.embed}:1"
    raw = httpx.post(f"{local.url}/v1/embeddings", json={"model": local.embed, "input": texts[0],
                                                         "encoding_format": "float"}).json()
    np.testing.assert_allclose(raw["data"][0]["embedding"], want[0], atol=1e-5)
    b64 = httpx.post(f"{local.url}/v1/embeddings", json={"model": local.embed, "input": texts[0],
                                                         "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, want[0], atol=1e-5)


def test_unknown_models_and_wrong_tasks_answer_openai_errors(local: Local) -> None:
    client = local.client()
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="never-pulled", messages=user("hi"))  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    assert "modelyard-agent pull never-pulled" in missing.value.message
    with pytest.raises(openai.BadRequestError) as wrong:
        client.chat.completions.create(model=local.embed, messages=user("hi"))  # type: ignore[arg-type]
    assert wrong.value.code == "wrong_task" and "/v1/embeddings" in wrong.value.message
    with pytest.raises(openai.BadRequestError) as other:
        client.embeddings.create(model=local.other, input="hi")
    assert other.value.code == "wrong_task" and f"/v2/models/{local.other}/infer" in other.value.message
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model=f"{local.embed}:7", input="hi")


@pytest.mark.parametrize(("path", "body", "param"), [
    ("chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ("chat/completions", {"messages": []}, "messages"),
    ("chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, "messages"),
    ("chat/completions", {"messages": [{"role": "user", "content": 7}]}, "messages"),
    ("chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages"),
    ("chat/completions", {"messages": [{"role": "user", "content": "hi"}], "temperature": -1}, "temperature"),
    ("chat/completions", {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"},
     "temperature"),
    ("chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_p": 0}, "top_p"),
    ("chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
    ("chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
    ("chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
    ("chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stop": [""]}, "stop"),
    ("embeddings", {"input": [[101, 2023]]}, "input"),
    ("embeddings", {"input": []}, "input"),
    ("embeddings", {"input": ""}, "input"),
    ("embeddings", {"input": "hi", "encoding_format": "int8"}, "encoding_format"),
    ("embeddings", {"input": "hi", "dimensions": 128}, "dimensions"),
    ("embeddings", {"input": ["hi"] * 2049}, "input"),
    ("chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 0},
     "max_completion_tokens"),
])
def test_bad_requests_are_400_with_the_parameter_named(local: Local, path: str, body: dict[str, object],
                                                        param: str) -> None:
    model = local.chat if path.startswith("chat") else local.embed
    full = body if param == "model" else {"model": model, **body}
    r = httpx.post(f"{local.url}/v1/{path}", json=full, timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]


def test_a_body_that_is_not_json_is_a_400(local: Local) -> None:
    r = httpx.post(f"{local.url}/v1/chat/completions", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_serving_marks_chat_and_embedding_models_loaded(local: Local) -> None:
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(local.home)}
    out = subprocess.run([sys.executable, "-m", "modelyard_agent", "ls", "--json"], env=env,
                         check=True, capture_output=True, text=True).stdout
    import json

    loaded = {row["ref"]: row["loaded"] for row in json.loads(out)}
    assert loaded[f"{local.chat}:1"] and loaded[f"{local.embed}:1"]
