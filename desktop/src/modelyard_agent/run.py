"""`modelyard-agent run REF --input FILE`: one inference on a pulled version, offline, as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from modelyard_agent.cache import Cache
from modelyard_agent.errors import UsageError
from modelyard_agent.oip import LocalModel
from modelyard_agent.refs import parse
from modelyard_agent.registry import find, local_model
from modelyard_agent.runtime import Runtime
from modelyard_agent.tensors import InferenceError, decode_json_tensor, encode_infer_response


def read_inputs(path: Path, model: LocalModel) -> dict[str, np.ndarray]:
    """Inputs from an OIP-shaped JSON file or, for a single-input model, a `.npy` array."""
    try:
        if path.suffix.lower() == ".npy":
            if len(model.inputs) != 1:
                names = ", ".join(t.name for t in model.inputs) or "none recorded"
                raise UsageError(f"a .npy file is one array but the model takes {names}: use JSON")
            return {model.inputs[0].name: np.load(path, allow_pickle=False)}
        doc: Any = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    items = doc.get("inputs") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UsageError(f'{path}: expected {{"inputs": [{{"name", "shape", "datatype", "data"}}]}}')
    try:
        return {str(i.get("name")): decode_json_tensor(i) for i in items}
    except InferenceError as exc:
        raise UsageError(f"{path}: {exc}") from None


async def _infer(model: LocalModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    runtime = Runtime(idle_ttl=3600)
    loaded = await runtime.session(f"{model.name}:{model.version}", model.path)
    return await runtime.infer(loaded, inputs)


def run(cache: Cache, ref: str, input_path: Path) -> str:
    """Run the version on the file's inputs; the outputs as an OIP infer response (JSON text)."""
    manifest = find(cache, parse(ref))
    if manifest is None:
        raise UsageError(f"{ref} is not in the cache ({cache.home}); pull it first")
    if not cache.complete(manifest):
        raise UsageError(f"{manifest.ref} is missing blobs in the cache; pull it again")
    model = local_model(cache, manifest)
    inputs = read_inputs(input_path, model)
    try:
        outputs = anyio.run(_infer, model, inputs)
    except InferenceError as exc:
        raise UsageError(f"{manifest.ref}: {' '.join(str(exc).split())}") from None
    body, _ = encode_infer_response(model.name, model.version, outputs)
    return format_response(json.loads(body))


def format_response(doc: dict[str, Any]) -> str:
    """The infer response as JSON with one output per line (readable, and still one document)."""
    head = {k: v for k, v in doc.items() if k != "outputs"}
    lines = [json.dumps(o) for o in doc.get("outputs", [])]
    return json.dumps(head)[:-1] + ', "outputs": [\n  ' + ",\n  ".join(lines) + "\n]}"
