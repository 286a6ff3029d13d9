"""What a version's ONNX model declares: inputs, outputs and facts, read without its weights."""

from __future__ import annotations

import posixpath
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import aiofiles
import anyio.to_thread

from modelyard.catalog.artifacts import Artifact
from modelyard.errors import NotFoundError
from modelyard.onnxfacts import OnnxFacts, read_onnx_facts
from modelyard.storage import BlobStore


def main_onnx(artifacts: list[Artifact]) -> Artifact | None:
    """The version's ONNX model: `model.onnx` nearest the root, else the first `.onnx` by path."""
    candidates = [a for a in artifacts if a.path.lower().endswith(".onnx")]
    if not candidates:
        return None
    named = [a for a in candidates if posixpath.basename(a.path) == "model.onnx"]
    return min(named or candidates, key=lambda a: (a.path.count("/"), a.path))


async def inspect_onnx(store: BlobStore, artifacts: list[Artifact]) -> dict[str, Any] | None:
    """The signature and facts of the version's ONNX model as stored JSON; None without one.

    A local store's file is read in place; an S3 blob is streamed to a temporary file first
    (memory stays flat either way). The reader seeks past weights, off the event loop.
    """
    model = main_onnx(artifacts)
    if model is None:
        return None
    read = partial(read_onnx_facts, label=model.path)  # errors name the artifact, not the blob
    path = await store.local_path(model.digest)
    if path is not None:
        try:
            facts = await anyio.to_thread.run_sync(read, path)
        except FileNotFoundError:  # removed by garbage collection since resolve_artifacts looked
            raise NotFoundError(f"upload blob {model.digest} again: it was removed meanwhile") from None
    else:
        with tempfile.TemporaryDirectory(prefix="modelyard-onnx-") as tmp:
            copy = Path(tmp) / "model.onnx"
            async with aiofiles.open(copy, "wb") as out:
                async for chunk in store.open(model.digest):
                    await out.write(chunk)
            facts = await anyio.to_thread.run_sync(read, copy)
    return as_json(model.path, facts)


def as_json(path: str, facts: OnnxFacts) -> dict[str, Any]:
    """Facts in the JSON shape `ModelVersion.signature`/`modelInfo` and the OIP routes read."""
    tensor = lambda t: {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}  # noqa: E731
    return {
        "file": path,
        "inputs": [tensor(t) for t in facts.inputs],
        "outputs": [tensor(t) for t in facts.outputs],
        "opset": {(k or "ai.onnx"): v for k, v in facts.opset.items()},
        "irVersion": facts.ir_version,
        "producerName": facts.producer_name,
        "producerVersion": facts.producer_version,
        "parameterCount": facts.parameter_count,
        "graphName": facts.graph_name,
        "externalDataFiles": list(facts.external_data_files),
    }


