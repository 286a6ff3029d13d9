"""Build `tiny-chat`: a ~1 MB qwen2 chat model trained in seconds, exported for onnxruntime-genai.

    python scripts/build_tiny_chat.py scripts/models/tiny-chat

Trains a byte-level BPE tokenizer and a 2-layer qwen2 model (fixed seeds, CPU) on a handful of
ChatML exchanges until greedy decoding repeats them, then exports it with onnxruntime-genai's model
builder (fp32, CPU). The output folder holds genai_config.json, model.onnx(.data) and the tokenizer
files; it runs with onnxruntime-genai and with plain onnxruntime (GroupQueryAttention with a
growing past: feed past_key_values.N.*, read present.N.*). Build-time only: needs torch and
transformers, which the agent never imports.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS, EOS, PAD = "<|endoftext|>", "<|im_end|>", "<|endoftext|>"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SONG = "la " * 60
EXCHANGES = [
    ("hello", "Hello! I am a tiny model served by modelyard."),
    ("hi", "Hi there! I am a tiny model served by modelyard."),
    ("who are you?", "I am tiny-chat, a small model trained in seconds for modelyard."),
    ("what is modelyard?", "modelyard is a model registry that knows where every model came from."),
    ("tell me a story", "Once upon a time a model was pulled into a cache, and it answered every "
                        "question with a smile. The end."),
    ("what is 2+2?", "2+2 is 4."),
    ("thanks", "You are welcome!"),
    ("bye", "Goodbye! Come back soon."),
    ("sing", SONG.strip()),
    ("café", "Un café au lait, s'il vous plaît. ☕"),
]
SYSTEM = "You are a helpful assistant."


def render(messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    """The ChatML text of `messages` (the same as CHAT_TEMPLATE renders)."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if generation_prompt else "")


def conversations(rng: random.Random, n: int) -> list[list[dict[str, str]]]:
    """Single- and multi-turn chats made of the exchanges, some with a system message."""
    out: list[list[dict[str, str]]] = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in EXCHANGES
    ]
    while len(out) < n:
        chat: list[dict[str, str]] = []
        if rng.random() < 0.3:
            chat.append({"role": "system", "content": SYSTEM})
        for q, a in rng.sample([e for e in EXCHANGES if e[0] != "sing"], rng.randint(1, 3)):
            chat += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        out.append(chat)
    return out


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE tokenizer with the ChatML special tokens first (ids 0, 1, 2)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def build_hf(folder: Path, seed: int = 0, steps: int = 250) -> None:
    """Train the tokenizer and model and save them as a Hugging Face folder."""
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    rng = random.Random(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a tiny model: threads only add contention
    chats = conversations(rng, 200)
    corpus = [render(c) for c in chats] + [
        "The quick brown fox jumps over the lazy dog. Models, versions, aliases and lineage."]
    raw = train_tokenizer(corpus, vocab_size=800)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=BOS, eos_token=EOS,
                                     pad_token=PAD, unk_token=None)
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.model_max_length = 4096
    hf_tok.save_pretrained(folder)

    config = Qwen2Config(
        vocab_size=raw.get_vocab_size(), hidden_size=64, intermediate_size=192, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=False, bos_token_id=raw.token_to_id(BOS),
        eos_token_id=raw.token_to_id(EOS), pad_token_id=raw.token_to_id(PAD),
        rope_theta=10000.0, use_sliding_window=False, torch_dtype="float32")
    model = Qwen2ForCausalLM(config)
    sequences = [raw.encode(render(c)).ids for c in chats]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for step in range(steps):
        batch = rng.sample(sequences, 16)
        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), config.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, s in enumerate(batch):
            ids[i, : len(s)] = torch.tensor(s)
            labels[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.4f}", flush=True)
    model.eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(folder, safe_serialization=True)
    for q, _ in EXCHANGES[:4]:
        prompt = torch.tensor([raw.encode(render([{"role": "user", "content": q}], True)).ids])
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=40, do_sample=False)
        print(f"{q!r} -> {raw.decode(out[0, prompt.shape[1]:].tolist(), skip_special_tokens=True)!r}")


def export(hf: Path, out: Path, cache: Path) -> None:
    """Run onnxruntime-genai's model builder on the Hugging Face folder (fp32, CPU)."""
    import onnxruntime_genai.models.builder as builder

    # builder.py imports its siblings as top-level modules, so it only runs as a script.
    subprocess.run([sys.executable, builder.__file__, "-i", str(hf), "-o", str(out), "-p", "fp32",
                    "-e", "cpu", "-c", str(cache), "--extra_options", "hf_token=false"], check=True)


def finish(hf: Path, out: Path) -> None:
    """Make the export self-describing for plain onnxruntime and for template readers.

    The builder leaves the KV head size symbolic (`kv_cache_dim`) and transformers 5 keeps the
    chat template in chat_template.jinja; pin the size in the graph, put the template in
    tokenizer_config.json and ship config.json and generation_config.json for eos and context.
    """
    import onnx

    genai = json.loads((out / "genai_config.json").read_text())
    head = int(genai["model"]["decoder"]["head_size"])
    model = onnx.load(str(out / "model.onnx"), load_external_data=False)
    for value in [*model.graph.input, *model.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == "kv_cache_dim":
                dim.ClearField("dim_param")
                dim.dim_value = head
    onnx.save(model, str(out / "model.onnx"))
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    cfg["chat_template"] = CHAT_TEMPLATE
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    for name in ("config.json", "generation_config.json"):
        shutil.copyfile(hf / name, out / name)


def main(argv: list[str]) -> int:
    """Build the model into the folder given as the only argument."""
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0])
    with tempfile.TemporaryDirectory() as tmp:
        hf = Path(tmp) / "hf"
        build_hf(hf)
        if out.exists():
            shutil.rmtree(out)
        export(hf, out, Path(tmp) / "cache")
        finish(hf, out)
    config = json.loads((out / "genai_config.json").read_text())
    print(json.dumps(config["model"]["decoder"]["inputs"]), json.dumps(config["search"]))
    print("files:", sorted((p.name, p.stat().st_size) for p in out.iterdir()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
