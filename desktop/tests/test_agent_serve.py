"""`run` and `serve` on versions published to a real server and pulled by the agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from conftest import Agent, Publisher, free_port
from models import WEIGHTS, linear_model


def _direct(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(["y", "z"], session.run(["y", "z"], {"x": x}), strict=True))


@pytest.fixture
def pulled(agent: Agent, publisher: Publisher, tmp_path: Path) -> tuple[str, Path]:
    """A linear model published as version 1 and 2 (alias `production` on 1), both pulled."""
    path = linear_model(tmp_path / "src" / "model.onnx")
    name = publisher.model("lin")
    v1 = publisher.version(name, {"model.onnx": path.read_bytes(), "README.md": b"linear"})
    publisher.version(name, {"model.onnx": path.read_bytes(), "README.md": b"linear v2"})
    publisher.alias(name, "production", v1.ref.rpartition(":")[2])
    assert agent("pull", f"{name}@production").code == 0
    assert agent("pull", f"{name}:2").code == 0
    return name, path


def _outputs(text: str) -> dict[str, np.ndarray]:
    doc = json.loads(text)
    return {o["name"]: np.array(o["data"], dtype=np.float32).reshape(o["shape"]) for o in doc["outputs"]}


def test_run_json_and_npy_match_onnxruntime(agent: Agent, pulled: tuple[str, Path], tmp_path: Path) -> None:
    name, path = pulled
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 3
    want = _direct(path, x)
    as_json = tmp_path / "in.json"
    as_json.write_text(json.dumps({"inputs": [
        {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.tolist()}]}))
    as_npy = tmp_path / "in.npy"
    np.save(as_npy, x)
    for ref, file in ((f"{name}@production", as_json), (f"{name}:2", as_npy), (name, as_npy)):
        done = agent("run", ref, "--input", str(file), "--output-format", "json", "--offline")
        assert done.code == 0, done.err
        got = _outputs(done.out)
        np.testing.assert_allclose(got["y"], want["y"], rtol=1e-6)
        np.testing.assert_allclose(got["z"], want["z"], rtol=1e-6)
    assert json.loads(agent("run", name, "--input", str(as_npy)).out)["model_version"] == "2"
    folder = agent.home / "versions" / name / "1"
    assert (folder / "model.onnx").read_bytes() == path.read_bytes()
    assert (folder / "README.md").read_bytes() == b"linear"


def test_run_refuses_bad_inputs_and_unpulled_refs(
    agent: Agent, pulled: tuple[str, Path], tmp_path: Path
) -> None:
    name, _ = pulled
    cases = {
        "wrong-name": {"inputs": [{"name": "q", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
        "wrong-type": {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]},
        "wrong-shape": {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
        "not-oip": {"x": [1, 2, 3, 4]},
    }
    for label, doc in cases.items():
        file = tmp_path / f"{label}.json"
        file.write_text(json.dumps(doc))
        done = agent("run", name, "--input", str(file))
        assert done.code == 2, (label, done.out)
        assert done.err.count("\n") == 1 and done.err.startswith("modelyard-agent: "), done.err
    wrong = tmp_path / "int.npy"
    np.save(wrong, np.ones((1, 4), dtype=np.int64))
    assert agent("run", name, "--input", str(wrong)).code == 2
    done = agent("run", f"{name}:9", "--input", str(wrong))
    assert done.code == 2 and "pull it first" in done.err


@pytest.fixture
def served(agent: Agent, pulled: tuple[str, Path]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`modelyard-agent serve` as a subprocess on a free port, ready."""
    port = free_port()
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(agent.home)}
    proc = subprocess.Popen([sys.executable, "-m", "modelyard_agent", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()


def test_serve_with_tritonclient_and_errors(
    served: tuple[str, subprocess.Popen[bytes]], pulled: tuple[str, Path]
) -> None:
    url, _ = served
    name, path = pulled
    client = triton.InferenceServerClient(url=url.removeprefix("http://"))
    meta = client.get_model_metadata(name)
    assert meta["versions"] == ["2"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert client.get_model_metadata(name, model_version="production")["versions"] == ["1"]
    assert client.is_model_ready(name, "1")
    x = np.random.default_rng(1).random((3, 4), dtype=np.float32)
    want = _direct(path, x)
    for binary in (False, True):
        inp = triton.InferInput("x", [3, 4], "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        outs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("y", "z")]
        result = client.infer(name, [inp], model_version="production", outputs=outs)
        np.testing.assert_allclose(result.as_numpy("y"), want["y"], rtol=1e-6)
        np.testing.assert_allclose(result.as_numpy("z"), x + x, rtol=1e-6)
    assert np.allclose(want["y"], x @ WEIGHTS + np.array([1.0, -1.0, 0.5], dtype=np.float32))
    r = httpx.get(f"{url}/v2/models/nope-{name}")
    assert r.status_code == 404 and "error" in r.json()
    assert httpx.get(f"{url}/v2/models/{name}/versions/7").status_code == 404
    r = httpx.post(f"{url}/v2/models/{name}/infer",
                   json={"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
    assert r.status_code == 400 and "dimension" in r.json()["error"]
    r = httpx.post(f"{url}/v2/models/{name}/infer",
                   json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT32", "data": [1, 2, 3, 4]}]})
    assert r.status_code == 400


def test_rm_refused_while_serving(
    agent: Agent, served: tuple[str, subprocess.Popen[bytes]], pulled: tuple[str, Path]
) -> None:
    _, proc = served
    name, _ = pulled
    done = agent("rm", f"{name}:2")
    assert done.code == 2 and "being served" in done.err
    assert (agent.home / "manifests" / name / "2.json").exists()
    proc.terminate()
    assert proc.wait(10) == 0
    assert proc.stdout is not None and b"http://127.0.0.1:" in proc.stdout.read()
    assert not list((agent.home / "serving").glob("*.json"))
    assert agent("rm", f"{name}:2").code == 0
    assert not (agent.home / "versions" / name / "2").exists()
    assert agent("rm", f"{name}:2").code == 2


def test_stale_marker_of_a_killed_server_is_ignored(
    agent: Agent, served: tuple[str, subprocess.Popen[bytes]], pulled: tuple[str, Path]
) -> None:
    _, proc = served
    name, _ = pulled
    proc.kill()
    proc.wait(10)
    assert list((agent.home / "serving").glob("*.json"))
    assert agent("rm", f"{name}@production").code == 0


def test_run_relinks_a_blob_pulled_again_after_corruption(
    agent: Agent, pulled: tuple[str, Path], tmp_path: Path
) -> None:
    name, path = pulled
    x = np.ones((1, 4), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert agent("run", f"{name}:2", "--input", str(tmp_path / "x.npy")).code == 0
    blob = agent.blob(path.read_bytes())
    with blob.open("r+b") as f:  # the materialised link shares these bytes
        f.write(b"garbage")
    assert agent("verify").code == 1
    assert agent("pull", f"{name}:2").code == 0
    done = agent("run", f"{name}:2", "--input", str(tmp_path / "x.npy"))
    assert done.code == 0, done.err
    np.testing.assert_allclose(_outputs(done.out)["y"], _direct(path, x)["y"], rtol=1e-6)
    assert (agent.home / "versions" / name / "2" / "model.onnx").read_bytes() == path.read_bytes()
