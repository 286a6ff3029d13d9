"""The runtime: sessions cached and reused, unloaded when idle, run off the loop, inputs checked."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import onnxruntime as ort
import pytest
from models import WEIGHTS, broken_model, fixed_model, int_bool_model, linear_model, string_model
from modelyard_agent.runtime import (
    CPU,
    LoadedModel,
    ModelLoadError,
    Runtime,
    TensorSpec,
    choose_providers,
)
from modelyard_agent.tensors import InferenceInputError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ThreadRecorder:
    """Wraps a session and records the thread each `run` happens on."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.threads: list[int] = []

    def run(self, names: Any, feed: Any) -> Any:
        self.threads.append(threading.get_ident())
        return self.session.run(names, feed)


def test_providers_put_cpu_last() -> None:
    assert choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider"]) == [
        "CUDAExecutionProvider", CPU,
    ]
    assert choose_providers(["AzureExecutionProvider"]) == [CPU]
    assert choose_providers()[-1] == CPU


async def test_session_is_cached_reused_and_reports_provider(tmp_path: Path) -> None:
    path = linear_model(tmp_path / "linear.onnx")
    runtime = Runtime()
    first = await runtime.session("linear:1", path)
    second = await runtime.session("linear:1", path)
    assert first is second and first.session is second.session
    assert first.provider == first.session.get_providers()[0]
    assert first.provider in ort.get_available_providers()
    assert first.inputs == [TensorSpec("x", "FP32", [-1, 4])]
    assert [o.name for o in first.outputs] == ["y", "z"]
    assert runtime.loaded() == ["linear:1"]


async def test_concurrent_first_use_loads_once(tmp_path: Path) -> None:
    path = linear_model(tmp_path / "linear.onnx")
    runtime = Runtime()
    got: list[LoadedModel] = []

    async def load() -> None:
        got.append(await runtime.session("linear:1", path))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(load)
    assert len({id(m) for m in got}) == 1


async def test_idle_session_unloads_after_ttl(tmp_path: Path) -> None:
    path = linear_model(tmp_path / "linear.onnx")
    clock = Clock()
    runtime = Runtime(idle_ttl=60, clock=clock)
    first = await runtime.session("linear:1", path)
    clock.now += 30
    await runtime.infer(first, {"x": np.ones((1, 4), np.float32)})  # use keeps it alive
    clock.now += 45
    assert runtime.evict_idle() == []
    clock.now += 61
    assert runtime.evict_idle() == ["linear:1"]
    assert not runtime.is_loaded("linear:1")
    again = await runtime.session("linear:1", path)
    assert again is not first


async def test_reaper_unloads_in_the_background(tmp_path: Path) -> None:
    path = linear_model(tmp_path / "linear.onnx")
    runtime = Runtime(idle_ttl=0.05)
    await runtime.session("linear:1", path)
    with anyio.move_on_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.reap, 0.01)
            for _ in range(200):
                if not runtime.is_loaded("linear:1"):
                    break
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert runtime.loaded() == []


async def test_infer_runs_in_a_worker_thread_and_matches_numpy(tmp_path: Path) -> None:
    path = linear_model(tmp_path / "linear.onnx")
    runtime = Runtime()
    loaded = await runtime.session("linear:1", path)
    recorder = ThreadRecorder(loaded.session)
    loaded.session = recorder
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    out = await runtime.infer(loaded, {"x": x})
    np.testing.assert_allclose(out["y"], x @ WEIGHTS + np.array([1.0, -1.0, 0.5], np.float32), rtol=1e-6)
    np.testing.assert_array_equal(out["z"], x + x)
    assert recorder.threads and recorder.threads[0] != threading.get_ident()
    only = await runtime.infer(loaded, {"x": x}, ["z"])
    assert list(only) == ["z"]


async def test_loop_stays_responsive_while_a_model_runs(tmp_path: Path) -> None:
    path = linear_model(tmp_path / "linear.onnx")
    runtime = Runtime()
    loaded = await runtime.session("linear:1", path)
    started = threading.Event()
    release = threading.Event()
    released: list[bool] = []

    class Slow:
        def run(self, names: Any, feed: Any) -> Any:
            started.set()
            released.append(release.wait(5))  # False if the loop was blocked by this very call
            return inner.run(names, feed)

    inner = loaded.session
    loaded.session = Slow()
    ticks = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.infer, loaded, {"x": np.ones((1, 4), np.float32)})
        await anyio.to_thread.run_sync(started.wait, 5)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
            ticks += 1
        release.set()
    assert ticks == 5 and released == [True]


async def test_int_bool_and_string_models(tmp_path: Path) -> None:
    runtime = Runtime()
    ib = await runtime.session("ib", int_bool_model(tmp_path / "ib.onnx"))
    out = await runtime.infer(ib, {"a": np.array([1, 2, 3], np.int64), "mask": np.array([True, False, True])})
    np.testing.assert_array_equal(out["picked"], [2, 0, 6])
    np.testing.assert_array_equal(out["inverted"], [False, True, False])
    text = np.empty(2, dtype=object)
    text[:] = [b"hello", "héllo".encode()]
    st = await runtime.session("st", string_model(tmp_path / "st.onnx"))
    assert st.inputs == [TensorSpec("text", "BYTES", [-1])]
    assert list((await runtime.infer(st, {"text": text}))["same"]) == [b"hello", "héllo".encode()]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "missing input(s) x"),
        ({"x": np.ones((1, 4), np.float32), "w": np.ones(1, np.float32)}, "unknown input(s) w"),
        ({"x": np.ones((1, 4), np.float64)}, "must be FP32, not FP64"),
        ({"x": np.ones((4,), np.float32)}, "must have rank 2"),
        ({"x": np.ones((3, 2), np.float32)}, "dimension 0 must be 2"),
        ({"x": np.ones((2, 4), np.float32)}, "dimension 1 must be 3"),
    ],
)
async def test_bad_inputs_are_clear_errors(tmp_path: Path, inputs: dict[str, np.ndarray], message: str) -> None:
    runtime = Runtime()
    loaded = await runtime.session("fixed", fixed_model(tmp_path / "fixed.onnx"))
    with pytest.raises(InferenceInputError) as info:
        await runtime.infer(loaded, inputs)
    assert message in str(info.value)


async def test_unknown_output_is_an_input_error(tmp_path: Path) -> None:
    runtime = Runtime()
    loaded = await runtime.session("linear", linear_model(tmp_path / "linear.onnx"))
    with pytest.raises(InferenceInputError, match="unknown output"):
        await runtime.infer(loaded, {"x": np.ones((1, 4), np.float32)}, ["nope"])


async def test_broken_model_fails_to_load(tmp_path: Path) -> None:
    runtime = Runtime()
    with pytest.raises(ModelLoadError, match="failed to load"):
        await runtime.session("broken", broken_model(tmp_path / "broken.onnx"))
    assert runtime.loaded() == []
