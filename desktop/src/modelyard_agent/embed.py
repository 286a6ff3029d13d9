"""Sentence embeddings from an ONNX model folder (model.onnx + tokenizer.json), e.g. all-MiniLM-L6-v2.

The model may already pool (a 2D output such as `sentence_embedding`) or return a 3D
`last_hidden_state`, which is mean-pooled over the attention mask here; either way the vectors
are L2-normalised. `token_type_ids` is fed only when the model asks for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from modelyard_agent.errors import UsageError
from modelyard_agent.manifest import Artifact
from modelyard_agent.registry import main_onnx
from modelyard_agent.runtime import choose_providers

BATCH = 32
# Used when tokenizer.json sets no truncation: MiniLM's max_seq_length; BERT's limit is 512.
DEFAULT_MAX_TOKENS = 256
_TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class _Plan:
    """Which model inputs to feed and which output to read."""

    inputs: tuple[str, ...]
    output: str
    pooled: bool


class Embedder:
    """Texts to unit vectors with one ONNX Runtime session; safe to call from many threads."""

    def __init__(self, session: ort.InferenceSession, tokenizer: Tokenizer, *, batch: int = BATCH) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._batch = batch
        self._plan = _plan(session)
        self.provider: str = session.get_providers()[0]
        self._lock = threading.Lock()
        self.texts_embedded = 0
        self.dim: int = self._probe_dim()

    def _probe_dim(self) -> int:
        shape = next(o.shape for o in self._session.get_outputs() if o.name == self._plan.output)
        last = shape[-1] if shape else None
        if isinstance(last, int) and last > 0:
            return last
        return int(self._run(["dim"]).shape[1])

    def _encode(self, texts: list[str]) -> list[tuple[list[int], list[int], list[int]]]:
        # Tokenizer objects are not documented as thread-safe: copy-free encoding under a lock.
        with self._lock:
            encs = self._tokenizer.encode_batch(texts)
        return [(e.ids, e.attention_mask, e.type_ids) for e in encs]

    def _run(self, texts: list[str]) -> np.ndarray:
        encs = self._encode(texts)
        width = max(1, max(len(ids) for ids, _, _ in encs))
        arrays = {k: np.zeros((len(encs), width), dtype=np.int64) for k in _TEXT_INPUTS}
        for i, (ids, attention, types) in enumerate(encs):
            arrays["input_ids"][i, : len(ids)] = ids
            arrays["attention_mask"][i, : len(ids)] = attention
            arrays["token_type_ids"][i, : len(ids)] = types
        feed = {name: arrays[name] for name in self._plan.inputs}
        # InferenceSession.run is thread-safe; ONNX Runtime serialises what it must.
        out = np.asarray(self._session.run([self._plan.output], feed)[0], dtype=np.float32)
        if not self._plan.pooled:
            mask = arrays["attention_mask"][:, :, None].astype(np.float32)
            out = (out * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.maximum(norms, 1e-12), dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors, in the order of `texts`."""
        result = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return result
        # Sorting by length keeps similar lengths together: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self._batch):
            picked = order[start : start + self._batch]
            result[picked] = self._run([texts[i] for i in picked])
        with self._lock:
            self.texts_embedded += len(texts)
        return result

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model sees for `texts` (after truncation, special tokens included)."""
        return sum(len(ids) for ids, _, _ in self._encode(texts)) if texts else 0


def _plan(session: ort.InferenceSession) -> _Plan:
    names = [i.name for i in session.get_inputs()]
    unknown = [n for n in names if n not in _TEXT_INPUTS]
    if "input_ids" not in names or unknown:
        raise UsageError(f"not a text embedding model: its inputs are {names} "
                         "(expected input_ids, attention_mask[, token_type_ids])")
    outputs = session.get_outputs()
    by_name = {o.name: o for o in outputs}
    if "sentence_embedding" in by_name:
        return _Plan(tuple(names), "sentence_embedding", True)
    two_d = [o for o in outputs if len(o.shape or []) == 2]
    three_d = [o for o in outputs if len(o.shape or []) == 3]
    if "last_hidden_state" in by_name:
        return _Plan(tuple(names), "last_hidden_state", False)
    if two_d:
        return _Plan(tuple(names), two_d[0].name, True)
    if three_d:
        return _Plan(tuple(names), three_d[0].name, False)
    raise UsageError(f"no embedding output: the model's outputs are {[o.name for o in outputs]}")


def _tokenizer(folder: Path) -> Tokenizer:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise UsageError(f"{folder} has no tokenizer.json")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # the tokenizers package raises bare Exceptions
        raise UsageError(f"cannot read {path}: {exc}") from exc
    # Padding is done here per batch; a fixed padding length would only waste compute.
    tok.no_padding()
    if tok.truncation is None:
        tok.enable_truncation(max_length=DEFAULT_MAX_TOKENS)
    return tok


def find_model(folder: Path) -> Path:
    """The folder's ONNX model: `model.onnx`, else the one `.onnx` nearest the root."""
    if (folder / "model.onnx").is_file():
        return folder / "model.onnx"
    arts = [Artifact(p.relative_to(folder).as_posix(), "", 0) for p in folder.rglob("*.onnx")]
    found = main_onnx(arts)
    if found is None:
        raise UsageError(f"{folder} holds no .onnx model")
    return folder / found.path


def load_embedder(folder: Path, *, providers: list[str] | None = None) -> Embedder:
    """An Embedder over the ONNX model and tokenizer.json in `folder`."""
    model = find_model(folder)
    tokenizer = _tokenizer(folder)
    try:
        session = ort.InferenceSession(str(model), providers=providers or choose_providers())
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise UsageError(f"cannot load {model}: {exc}") from exc
    return Embedder(session, tokenizer)
