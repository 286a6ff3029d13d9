"""ONNX Runtime sessions: created off the event loop, cached, reused, unloaded after an idle TTL.

Execution providers are chosen from `onnxruntime.get_available_providers()` in `PREFERRED` order,
CPU always last as the fallback; `LoadedModel.provider` is the one the session actually uses.
`session.run` always runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
import onnxruntime as ort

from modelyard_agent.tensors import DATATYPES, InferenceError, InferenceInputError

log = logging.getLogger("modelyard_agent.runtime")

CPU = "CPUExecutionProvider"
PREFERRED = [
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "OpenVINOExecutionProvider",
]
ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


class ModelLoadError(InferenceError):
    """The model file could not be loaded into a session (HTTP 503)."""

    status = 503


@dataclass(frozen=True)
class TensorSpec:
    """A session input or output: name, OIP datatype, shape with -1 for a free dimension."""

    name: str
    datatype: str
    shape: list[int]


@dataclass
class LoadedModel:
    """A cached session and what it takes and gives."""

    key: str
    path: Path
    session: ort.InferenceSession
    provider: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    last_used: float = field(default=0.0)


def choose_providers(available: list[str] | None = None) -> list[str]:
    """The available accelerators in preference order, then CPU."""
    have = ort.get_available_providers() if available is None else available
    return [p for p in PREFERRED if p in have] + [CPU]


def _specs(args: list[Any]) -> list[TensorSpec]:
    return [
        TensorSpec(
            a.name,
            ORT_TYPES.get(a.type, a.type),
            [d if isinstance(d, int) and d >= 0 else -1 for d in (a.shape or [])],
        )
        for a in args
    ]


def validate_inputs(loaded: LoadedModel, inputs: dict[str, np.ndarray]) -> None:
    """Check names, datatypes, ranks and fixed dimensions against the session's inputs."""
    expected = {spec.name: spec for spec in loaded.inputs}
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise InferenceInputError(
            f"unknown input(s) {', '.join(unknown)}: the model takes {', '.join(expected)}"
        )
    missing = [name for name in expected if name not in inputs]
    if missing:
        raise InferenceInputError(f"missing input(s) {', '.join(missing)}")
    for name, array in inputs.items():
        spec = expected[name]
        if spec.datatype not in DATATYPES:
            raise InferenceInputError(f"input {name!r} has type {spec.datatype}, not supported")
        want = DATATYPES[spec.datatype]
        got = "BYTES" if array.dtype.kind in ("O", "U", "S") else str(array.dtype)
        if array.dtype != want and not (want == np.object_ and got == "BYTES"):
            have = next((k for k, v in DATATYPES.items() if v == array.dtype), got)
            raise InferenceInputError(f"input {name!r} must be {spec.datatype}, not {have}")
        if array.ndim != len(spec.shape):
            raise InferenceInputError(
                f"input {name!r} must have rank {len(spec.shape)} (shape {spec.shape}), "
                f"not {list(array.shape)}"
            )
        for axis, (want_dim, got_dim) in enumerate(zip(spec.shape, array.shape, strict=True)):
            if want_dim >= 0 and want_dim != got_dim:
                raise InferenceInputError(
                    f"input {name!r}: dimension {axis} must be {want_dim} (shape {spec.shape}), "
                    f"not {got_dim}"
                )


def _to_ort(array: np.ndarray) -> np.ndarray:
    """BYTES arrays hold bytes; ONNX Runtime string tensors take str."""
    if array.dtype != np.object_:
        return array
    out = np.empty(array.shape, dtype=object)
    try:
        out.reshape(-1)[:] = [v.decode() if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    except UnicodeDecodeError:
        raise InferenceInputError("a BYTES element is not UTF-8 text, which the model needs") from None
    return out


def _from_ort(value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.object_ or array.dtype.kind in ("U", "S"):
        out = np.empty(array.shape, dtype=object)
        out.reshape(-1)[:] = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        return out
    return array


class Runtime:
    """Loaded sessions by key; idle ones are unloaded after `idle_ttl` seconds."""

    def __init__(
        self,
        idle_ttl: float = 600.0,
        providers: list[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_ttl = idle_ttl
        self.providers = providers or choose_providers()
        self.clock = clock
        self._models: dict[str, LoadedModel] = {}
        self._locks: dict[str, anyio.Lock] = {}

    def loaded(self) -> list[str]:
        """Keys of the sessions held now."""
        return sorted(self._models)

    def is_loaded(self, key: str) -> bool:
        """Whether a session is held for the key."""
        return key in self._models

    def unload(self, key: str) -> bool:
        """Drop a session; requests already running on it finish."""
        return self._models.pop(key, None) is not None

    def evict_idle(self) -> list[str]:
        """Unload the sessions idle longer than the TTL; returns their keys."""
        now = self.clock()
        idle = [k for k, m in self._models.items() if now - m.last_used > self.idle_ttl]
        for key in idle:
            log.info("unloading idle model %s", key)
            del self._models[key]
        return idle

    async def reap(self, interval: float | None = None) -> None:
        """Evict idle sessions forever (run it in a task group; cancel to stop)."""
        period = interval if interval is not None else max(self.idle_ttl / 4, 0.01)
        while True:
            await anyio.sleep(period)
            self.evict_idle()

    def _load(self, key: str, model_path: Path) -> LoadedModel:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(model_path), options, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"model {key} failed to load: {exc}") from exc
        return LoadedModel(
            key=key,
            path=model_path,
            session=session,
            provider=session.get_providers()[0],
            inputs=_specs(session.get_inputs()),
            outputs=_specs(session.get_outputs()),
        )

    async def session(self, key: str, model_path: Path) -> LoadedModel:
        """The cached session for the key, loading it in a worker thread on first use."""
        self.evict_idle()
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            loaded = self._models.get(key)
            if loaded is None or loaded.path != Path(model_path):
                loaded = await anyio.to_thread.run_sync(self._load, key, Path(model_path))
                log.info("loaded %s on %s", key, loaded.provider)
                self._models[key] = loaded
            loaded.last_used = self.clock()
            return loaded

    async def infer(
        self,
        loaded: LoadedModel,
        inputs: dict[str, np.ndarray],
        outputs: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Validate the inputs and run the session in a worker thread."""
        validate_inputs(loaded, inputs)
        names = [o.name for o in loaded.outputs]
        if outputs is not None:
            unknown = [o for o in outputs if o not in names]
            if unknown:
                raise InferenceInputError(
                    f"unknown output(s) {', '.join(unknown)}: the model gives {', '.join(names)}"
                )
            names = list(outputs)
        feed = {name: _to_ort(array) for name, array in inputs.items()}
        loaded.last_used = self.clock()
        try:
            results = await anyio.to_thread.run_sync(loaded.session.run, names, feed)
        except InferenceError:
            raise
        except Exception as exc:
            if "INVALID_ARGUMENT" in str(exc) or "InvalidArgument" in type(exc).__name__:
                raise InferenceInputError(f"the model rejected the inputs: {exc}") from exc
            raise InferenceError(f"inference failed: {exc}") from exc
        finally:
            loaded.last_used = self.clock()
        return {name: _from_ort(value) for name, value in zip(names, results, strict=True)}
