"""`embed` and `ask` on all-MiniLM-L6-v2 with its real weights, exported by scripts/export_minilm.py.

The export runs once per script version (cached under ~/.cache/modelyard-tests/); its fp32 and
int8 folders are published to a real server and pulled by the agent like any other version.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from assist_docs import DOCS, line_of, write_docs
from conftest import Agent, Publisher
from models import linear_model
from modelyard_agent.docindex import chunk
from modelyard_agent.embed import load_embedder
from onnx import TensorProto, helper, numpy_helper

WATERING = ("garden/tomatoes.md", line_of("garden/tomatoes.md", "## Watering"))
QUESTION = "How often should I water my tomato plants?"


def publish(publisher: Publisher, folder: Path, task: str = "FEATURE_EXTRACTION") -> str:
    """Publish every file of `folder` as a new model's version 1; returns its ref."""
    name = publisher.model("minilm")
    publisher.gql("mutation($n: String!, $t: Task!) { updateModel(input: {name: $n, task: $t}) { name } }",
                  n=name, t=task)
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    return publisher.version(name, files).ref


@pytest.fixture(scope="session")
def fp32_ref(minilm: Path, publisher: Publisher) -> str:
    return publish(publisher, minilm / "fp32")


@pytest.fixture(scope="session")
def int8_ref(minilm: Path, publisher: Publisher) -> str:
    return publish(publisher, minilm / "int8")


def ask(agent: Agent, ref: str, docs: Path, question: str, *more: str) -> dict[str, Any]:
    done = agent("ask", ref, "--docs", str(docs), question, "--json", *more)
    assert done.code == 0, done.err
    result: dict[str, Any] = done.json()
    return result


def first(result: dict[str, Any]) -> tuple[str, int]:
    top = result["results"][0]
    return top["file"], top["line"]


def test_export_report_int8_close_to_fp32_and_fp32_matches_torch(minilm: Path) -> None:
    report = json.loads((minilm / "report.json").read_text())
    assert report["sentences"] >= 50
    assert report["int8_cosine_mean"] >= 0.98
    assert report["int8_cosine_min"] >= 0.98
    assert report["fp32_max_abs_diff_vs_torch"] < 1e-4
    assert report["fp32_max_abs_diff_vs_sentence_transformers"] < 1e-4
    assert (minilm / "int8" / "model.onnx").stat().st_size < (minilm / "fp32" / "model.onnx").stat().st_size / 2
    tok = json.loads((minilm / "fp32" / "tokenizer.json").read_text())
    assert tok["truncation"]["max_length"] == 256 and tok["padding"] is None
    graph = onnx.load(str(minilm / "fp32" / "model.onnx"), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    dims = [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert graph.output[0].name == "sentence_embedding" and dims[1] == 384 and isinstance(dims[0], str)


def test_ask_ranks_the_right_passage_first(agent: Agent, fp32_ref: str, tmp_path: Path) -> None:
    assert agent("pull", fp32_ref).code == 0
    docs = write_docs(tmp_path / "docs")
    done = agent("ask", fp32_ref, "--docs", str(docs), QUESTION)
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert lines[0].endswith(f"  {WATERING[0]}:{WATERING[1]}") and lines[0].startswith("1. ")
    assert "two or three times a week" in lines[1]
    assert len([ln for ln in lines if ln[:1].isdigit()]) == 3  # --top defaults to 3
    assert "embedded" in done.err and "5 file(s)" in done.err
    other = ask(agent, fp32_ref, docs, "When is the night train to Vienna?", "--top", "1")
    assert first(other) == ("notes/travel.txt", line_of("notes/travel.txt", "The night train"))
    assert len(other["results"]) == 1
    restore = ask(agent, fp32_ref, docs, "how often should I check that restoring my data works")
    assert first(restore) == ("it/backups.md", line_of("it/backups.md", "## Restores"))
    scores = [r["score"] for r in restore["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.3


def test_index_is_updated_file_by_file(agent: Agent, fp32_ref: str, tmp_path: Path) -> None:
    assert agent("pull", fp32_ref).code == 0
    docs = write_docs(tmp_path / "docs")
    all_passages = sum(len(chunk(n, t)) for n, t in DOCS.items())
    built = ask(agent, fp32_ref, docs, QUESTION)["index"]
    assert built["passages_embedded"] == built["passages"] == all_passages
    assert built["files_embedded"] == len(DOCS)

    again = ask(agent, fp32_ref, docs, QUESTION)
    assert again["index"]["passages_embedded"] == 0 and again["index"]["files_reused"] == len(DOCS)
    assert first(again) == WATERING

    os.utime(docs / "money/taxes.txt", ns=(1, 1))  # touched, same bytes: confirmed by hash
    assert ask(agent, fp32_ref, docs, QUESTION)["index"]["passages_embedded"] == 0

    travel = DOCS["notes/travel.txt"] + "\nThe ferry to Helsinki sails every morning at seven.\n"
    (docs / "notes/travel.txt").write_text(travel)
    changed = ask(agent, fp32_ref, docs, "What time does the boat to Finland leave?")
    assert changed["index"]["files_embedded"] == 1
    assert changed["index"]["passages_embedded"] == len(chunk("notes/travel.txt", travel))
    assert first(changed) == ("notes/travel.txt", len(travel.splitlines()))

    (docs / "garden/tomatoes.md").unlink()
    dropped = ask(agent, fp32_ref, docs, QUESTION, "--top", "20")
    assert dropped["index"]["files_dropped"] == 1 and dropped["index"]["passages_embedded"] == 0
    assert all(r["file"] != "garden/tomatoes.md" for r in dropped["results"])
    assert dropped["index"]["passages"] == len(dropped["results"])

    [saved] = (agent.home / "indexes").glob("*/index.npz")
    saved.write_bytes(b"damaged")
    rebuilt = ask(agent, fp32_ref, docs, QUESTION)["index"]
    assert rebuilt["rebuilt"] and rebuilt["passages_embedded"] == rebuilt["passages"] > 0


def test_binary_and_hidden_files_are_skipped(agent: Agent, fp32_ref: str, tmp_path: Path) -> None:
    assert agent("pull", fp32_ref).code == 0
    docs = write_docs(tmp_path / "docs")
    (docs / "broken.txt").write_bytes(b"\xff\xfe\x00\x01 not text")
    (docs / ".git").mkdir()
    (docs / ".git" / "notes.md").write_text("Water tomato plants every hour of the day.")
    (docs / "image.png").write_bytes(b"\x89PNG")
    done = agent("ask", fp32_ref, "--docs", str(docs), QUESTION, "--top", "50")
    assert done.code == 0
    assert "warning: skipped broken.txt: binary or not UTF-8" in done.err
    assert ".git" not in done.out and "broken.txt" not in done.out and "image.png" not in done.out


def test_int8_version_also_ranks_the_right_passage_first(agent: Agent, int8_ref: str, tmp_path: Path) -> None:
    assert agent("pull", int8_ref).code == 0
    docs = write_docs(tmp_path / "docs")
    assert first(ask(agent, int8_ref, docs, QUESTION)) == WATERING


def test_embed_prints_unit_vectors_paraphrases_closest(agent: Agent, fp32_ref: str) -> None:
    assert agent("pull", fp32_ref).code == 0
    texts = ["A man is playing a guitar.", "Someone strums an acoustic guitar.",
             "The stock market closed lower today."]
    done = agent("embed", fp32_ref, *texts, "--json")
    assert done.code == 0, done.err
    vectors = np.array(done.json()["embeddings"], dtype=np.float32)
    assert vectors.shape == (3, 384) and done.json()["dim"] == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.6 > vectors[0] @ vectors[2] + 0.3
    human = agent("embed", fp32_ref, texts[0])
    assert "dim 384" in human.out and "norm 1.0000" in human.out and "9 token(s)" in human.out  # [CLS], 6 words, ".", [SEP]


def test_embedder_batches_threads_and_long_texts(minilm: Path) -> None:
    emb = load_embedder(minilm / "fp32")
    assert emb.dim == 384 and emb.provider == "CPUExecutionProvider"
    assert emb.embed([]).shape == (0, 384)
    texts = [f"sentence number {i} about {'cats' if i % 2 else 'rockets'}" + " more" * i for i in range(40)]
    together = emb.embed(texts)
    alone = np.stack([emb.embed([t])[0] for t in texts[:5]])
    np.testing.assert_allclose(together[:5], alone, atol=1e-5)  # padding never leaks in
    got: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: got.append(emb.embed(texts))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(np.allclose(g, together, atol=1e-5) for g in got)
    long = "word " * 1000
    assert emb.count_tokens([long]) == 256 and emb.count_tokens(["hello world"]) == 4


def _hidden_state_model(folder: Path, minilm: Path) -> np.ndarray:
    """A real ONNX model without token_type_ids whose 3D output is a plain embedding lookup."""
    table = np.random.default_rng(0).standard_normal((30522, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["last_hidden_state"]),
         helper.make_node("Identity", ["attention_mask"], ["mask_out"])],
        "lookup",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", 8]),
         helper.make_tensor_value_info("mask_out", TensorProto.INT64, ["batch", "sequence"])],
        initializer=[numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"))
    shutil.copyfile(minilm / "fp32" / "tokenizer.json", folder / "tokenizer.json")
    return table


def test_embedder_mean_pools_a_hidden_state_output(minilm: Path, tmp_path: Path) -> None:
    table = _hidden_state_model(tmp_path / "lookup", minilm)
    emb = load_embedder(tmp_path / "lookup")
    assert emb.dim == 8
    short, longer = emb.embed(["hi", "a somewhat longer text"])
    ids = [101, 7632, 102]  # [CLS] hi [SEP]
    want = table[ids].mean(axis=0)
    np.testing.assert_allclose(short, want / np.linalg.norm(want), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(longer), 1.0, atol=1e-5)


def test_bad_inputs_are_one_line_errors(agent: Agent, publisher: Publisher, fp32_ref: str,
                                        minilm: Path, tmp_path: Path) -> None:
    assert agent("pull", fp32_ref).code == 0
    docs = write_docs(tmp_path / "docs")
    missing = agent("ask", fp32_ref, "--docs", str(tmp_path / "nowhere"), QUESTION)
    assert missing.code == 2 and "does not exist" in missing.err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "data.csv").write_text("a,b\n")
    empty = agent("ask", fp32_ref, "--docs", str(tmp_path / "empty"), QUESTION)
    assert empty.code == 2 and "holds no .txt or .md files" in empty.err
    unknown = agent("ask", "nobody-has-this:1", "--docs", str(docs), QUESTION)
    assert unknown.code == 2 and "not in the cache" in unknown.err and "pull it first" in unknown.err
    assert agent("embed", "nobody-has-this", "x").code == 2

    folder = tmp_path / "other-task"
    linear_model(folder / "model.onnx")
    shutil.copyfile(minilm / "fp32" / "tokenizer.json", folder / "tokenizer.json")
    for task in ("TEXT_GENERATION", "OTHER"):
        ref = publish(publisher, folder, task)
        assert agent("pull", ref).code == 0
        refused = agent("ask", ref, "--docs", str(docs), QUESTION)
        assert refused.code == 2 and "feature-extraction" in refused.err
        assert len(refused.err.strip().splitlines()) == 1
    assert agent("ask", fp32_ref, "--docs", str(docs), QUESTION, "--top", "0").code == 2
