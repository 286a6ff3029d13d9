"""`make demo-assistant`'s SmolLM2 part: the GGUF from PyPI as a version of its own and the int4
ONNX built from it, published through the API with honest provenance (scripts/demo/extras.py
run against a real registry with the tests' cached build)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from conftest import ADMIN, Agent, Server

ROOT = Path(__file__).resolve().parents[2]
QUERY = """{
  gguf: version(ref: "demo/smollm2-135m-instruct-gguf@production") {
    ref artifacts { path digest size } params { key value } metrics { key value } }
  int4: version(ref: "demo/smollm2-135m-instruct@production") {
    ref params { key value } metrics { key value }
    parents { relation parent { ... on ModelVersion { ref } } } }
}"""


def test_smollm2_is_published_with_its_lineage_params_and_metrics(
        smollm2: Path, server: Server, agent: Agent, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts" / "demo"))
    try:
        import extras
        from publish import Publisher
    finally:
        sys.path.remove(str(ROOT / "scripts" / "demo"))
    publisher = Publisher(server.url, ADMIN, tmp_path)
    try:
        refs = extras.smollm2(publisher, smollm2)
        assert len(publisher.created) == 2
        assert extras.smollm2(publisher, smollm2) == refs and len(publisher.created) == 2  # a re-run adds nothing
    finally:
        publisher.close()
    assert "demo/smollm2-135m-instruct:1" in refs and "demo/smollm2-135m-instruct-gguf:1" in refs
    data: dict[str, Any] = httpx.post(f"{server.url}/graphql", json={"query": QUERY}, timeout=30).json()["data"]
    report = json.loads((smollm2 / "report.json").read_text())
    gguf, int4 = data["gguf"], data["int4"]
    gguf_file = next(a for a in gguf["artifacts"] if a["path"].endswith(".gguf"))
    assert gguf_file["digest"] == "sha256:" + report["source"]["gguf_sha256"]
    assert gguf_file["digest"] == "sha256:" + hashlib.sha256((smollm2 / "gguf" / gguf_file["path"]).read_bytes()).hexdigest()
    relations = sorted((p["relation"], p["parent"]["ref"]) for p in int4["parents"])
    assert relations == [("CONVERTED_FROM", gguf["ref"]), ("QUANTIZED_FROM", gguf["ref"])]
    params = {p["key"]: p["value"] for p in int4["params"]}
    assert params["precision"] == "int4" and params["block_size"] == 32
    assert params["builder"].startswith("onnxruntime-genai ") and params["runtime"] == "onnxruntime-genai"
    metrics = {m["key"]: m["value"] for m in int4["metrics"]}
    assert metrics["next_token_agreement"] == report["quality"]["next_token_agreement"]
    assert metrics["perplexity"] > {m["key"]: m["value"] for m in gguf["metrics"]}["perplexity"]
    assert {p["key"]: p["value"] for p in gguf["params"]}["quantization"] == "Q4_1"
    assert agent("pull", "demo/smollm2-135m-instruct@production").code == 0
