"""The local OIP server under a real uvicorn, called by the real tritonclient (JSON and binary)."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
import uvicorn
from models import broken_model, fixed_model, int_bool_model, linear_model, string_model
from modelyard_agent.oip import LocalModel, LocalTensor, oip_app, parse_model_path
from modelyard_agent.runtime import Runtime
from modelyard_agent.tensors import (
    HEADER_LENGTH,
    InferenceInputError,
    encode_infer_response,
    parse_infer_request,
)
from tritonclient.utils import InferenceServerException


class DictRegistry:
    """A ModelRegistry over a dict of name -> {version: LocalModel}; the last version is default."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, LocalModel]] = {}

    def add(self, model: LocalModel) -> None:
        self.models.setdefault(model.name, {})[model.version] = model

    def names(self) -> list[str]:
        return sorted(self.models)

    def resolve(self, name: str, version: str | None) -> LocalModel | None:
        versions = self.models.get(name)
        if not versions:
            return None
        if version is None:
            return versions[list(versions)[-1]]
        return versions.get(version)


def _signature(path: Path) -> tuple[list[LocalTensor], list[LocalTensor]]:
    """The signature the cache would record, read from a session here."""
    from modelyard_agent.runtime import ORT_TYPES

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def tensors(args: list[Any]) -> list[LocalTensor]:
        return [
            LocalTensor(a.name, ORT_TYPES[a.type], [d if isinstance(d, int) else -1 for d in a.shape])
            for a in args
        ]

    return tensors(session.get_inputs()), tensors(session.get_outputs())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """What the module's server fixture hands out."""

    def __init__(self, url: str, paths: dict[str, Path]) -> None:
        self.url = url
        self.paths = paths

    def client(self) -> triton.InferenceServerClient:
        return triton.InferenceServerClient(url=self.url.removeprefix("http://"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("oip")
    paths = {
        "linear": linear_model(root / "linear.onnx"),
        "linear2": linear_model(root / "linear2.onnx"),
        "vision/intbool": int_bool_model(root / "intbool.onnx"),
        "strings": string_model(root / "strings.onnx"),
        "fixed": fixed_model(root / "fixed.onnx"),
        "broken": broken_model(root / "broken.onnx"),
    }
    registry = DictRegistry()
    for name, path in paths.items():
        if name == "broken":
            sig: tuple[list[LocalTensor], list[LocalTensor]] = ([], [])
        else:
            sig = _signature(path)
        model_name = "linear" if name == "linear2" else name
        version = "2" if name == "linear2" else "1"
        registry.add(LocalModel(model_name, version, path, *sig))
    port = _free_port()
    config = uvicorn.Config(
        oip_app(registry, Runtime(idle_ttl=60)), host="127.0.0.1", port=port,
        log_level="warning", lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield Served(f"http://127.0.0.1:{port}", paths)
    server.should_exit = True
    thread.join(10)


def _direct(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


# --- tensors, without a server -------------------------------------------------------------------


def test_json_request_nested_and_flat() -> None:
    body = json.dumps({
        "id": "r1",
        "inputs": [
            {"name": "a", "datatype": "INT64", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
            {"name": "b", "datatype": "BOOL", "shape": [2], "data": [True, False]},
            {"name": "c", "datatype": "BYTES", "shape": [1], "data": ["hé"]},
            {"name": "d", "datatype": "FP16", "shape": [3], "data": [1, 2.5, -1]},
        ],
        "outputs": [{"name": "o", "parameters": {"binary_data": True}}, {"name": "p"}],
    }).encode()
    request = parse_infer_request(body)
    assert request.id == "r1" and request.outputs == ["o", "p"] and request.binary_outputs == {"o"}
    np.testing.assert_array_equal(request.inputs["a"], np.array([[1, 2], [3, 4]], np.int64))
    assert request.inputs["b"].dtype == np.bool_
    assert list(request.inputs["c"]) == ["hé".encode()]
    assert request.inputs["d"].dtype == np.float16


def test_binary_request_with_bytes_elements() -> None:
    raw_a = np.array([1.5, 2.5], np.float32).tobytes()
    raw_s = struct.pack("<I", 2) + b"hi" + struct.pack("<I", 0)
    head = json.dumps({"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": len(raw_a)}},
        {"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw_s)}},
    ], "parameters": {"binary_data_output": True}}).encode()
    request = parse_infer_request(head + raw_a + raw_s, str(len(head)))
    np.testing.assert_array_equal(request.inputs["a"], [1.5, 2.5])
    assert list(request.inputs["s"]) == [b"hi", b""] and request.binary_all


def test_binary_response_layout() -> None:
    strings = np.empty(2, dtype=object)
    strings[:] = [b"ab", b"c"]
    body, header = encode_infer_response(
        "m", "1", {"y": np.array([[1, 2]], np.int32), "s": strings, "j": np.array([0.5])}, {"y", "s"}
    )
    assert header is not None
    doc = json.loads(body[:header])
    assert doc["outputs"][0] == {
        "name": "y", "datatype": "INT32", "shape": [1, 2], "parameters": {"binary_data_size": 8},
    }
    assert doc["outputs"][2]["data"] == [0.5]
    assert body[header:] == np.array([1, 2], np.int32).tobytes() + b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"


_HEAD_SHORT = json.dumps({"inputs": [
    {"name": "a", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 4}},
]}).encode()
_HEAD_JSON = json.dumps({"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}]}).encode()


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[]", None, "'inputs' list"),
        (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [3], "data": [1, 2]}]}', None, "do not fill"),
        (b'{"inputs": [{"name": "a", "datatype": "INT32", "shape": [1], "data": [1.5]}]}', None, "does not match datatype"),
        (b'{"inputs": [{"name": "a", "datatype": "UINT8", "shape": [1], "data": [300]}]}', None, "out of range"),
        (b'{"inputs": [{"name": "a", "datatype": "BOOL", "shape": [1], "data": [1]}]}', None, "does not match datatype"),
        (b'{"inputs": [{"name": "a", "datatype": "FP8", "shape": [1], "data": [1]}]}', None, "unknown datatype"),
        (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None, "shape must be"),
        (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]}', None, "binary_data_size"),
        (_HEAD_SHORT + b"\0\0\0\0", str(len(_HEAD_SHORT)), "do not fill"),
        (_HEAD_JSON + b"xx", str(len(_HEAD_JSON)), "belong to no input"),
        (b"{}", "99", "exceeds the body"),
    ],
)
def test_bad_requests(body: bytes, header: str | None, message: str) -> None:
    with pytest.raises(InferenceInputError) as info:
        parse_infer_request(body, header)
    assert message in str(info.value)


def test_model_path_parsing() -> None:
    assert parse_model_path(["vision", "resnet", "versions", "3", "infer"]).name == "vision/resnet"
    path = parse_model_path(["vision/resnet", "ready"])
    assert (path.name, path.version, path.action) == ("vision/resnet", None, "ready")
    assert parse_model_path(["x/ready"]).action == "metadata"


# --- the server, through tritonclient --------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_infer_fp32_matches_session(served: Served, binary: bool) -> None:
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    client = served.client()
    try:
        given = triton.InferInput("x", list(x.shape), "FP32")
        given.set_data_from_numpy(x, binary_data=binary)
        wanted = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("y", "z")]
        result = client.infer("linear", [given], outputs=wanted)
    finally:
        client.close()
    expected = _direct(served.paths["linear2"], {"x": x})
    np.testing.assert_array_equal(result.as_numpy("y"), expected["y"])
    np.testing.assert_array_equal(result.as_numpy("z"), expected["z"])
    outputs = result.get_response()["outputs"]
    assert all(("parameters" in o) is binary for o in outputs)
    assert result.get_response()["model_version"] == "2"


def test_infer_default_outputs_are_binary_and_versions_pick(served: Served) -> None:
    x = np.ones((1, 4), np.float32)
    client = served.client()
    try:
        given = triton.InferInput("x", [1, 4], "FP32")
        given.set_data_from_numpy(x)  # binary by default, and no outputs: binary_data_output
        result = client.infer("linear", [given], model_version="1")
    finally:
        client.close()
    assert result.get_response()["model_version"] == "1"
    assert all(o["parameters"]["binary_data_size"] > 0 for o in result.get_response()["outputs"])
    np.testing.assert_array_equal(result.as_numpy("z"), x + x)


@pytest.mark.parametrize("binary", [False, True])
def test_infer_int64_bool_in_namespace(served: Served, binary: bool) -> None:
    a = np.array([5, -3, 7, 1], np.int64)
    mask = np.array([True, True, False, True])
    client = served.client()
    try:
        inputs = [triton.InferInput("a", [4], "INT64"), triton.InferInput("mask", [4], "BOOL")]
        inputs[0].set_data_from_numpy(a, binary_data=binary)
        inputs[1].set_data_from_numpy(mask, binary_data=binary)
        wanted = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("picked", "inverted")]
        result = client.infer("vision/intbool", inputs, outputs=wanted)
    finally:
        client.close()
    expected = _direct(served.paths["vision/intbool"], {"a": a, "mask": mask})
    np.testing.assert_array_equal(result.as_numpy("picked"), expected["picked"])
    np.testing.assert_array_equal(result.as_numpy("inverted"), expected["inverted"])
    assert result.as_numpy("inverted").dtype == np.bool_


@pytest.mark.parametrize("binary", [False, True])
def test_infer_bytes(served: Served, binary: bool) -> None:
    text = np.array([b"hello", "wörld".encode(), b""], dtype=object)
    client = served.client()
    try:
        given = triton.InferInput("text", [3], "BYTES")
        given.set_data_from_numpy(text, binary_data=binary)
        result = client.infer(
            "strings", [given], outputs=[triton.InferRequestedOutput("same", binary_data=binary)]
        )
    finally:
        client.close()
    got = result.as_numpy("same")
    assert [v if isinstance(v, bytes) else str(v).encode() for v in got] == list(text)


def test_health_and_metadata(served: Served) -> None:
    client = served.client()
    try:
        assert client.is_server_live() and client.is_server_ready()
        server = client.get_server_metadata()
        assert server["name"] == "modelyard-agent" and "binary_tensor_data" in server["extensions"]
        meta = client.get_model_metadata("vision/intbool")
        assert meta["platform"] == "onnxruntime_onnx" and meta["versions"] == ["1"]
        assert meta["inputs"] == [
            {"name": "a", "datatype": "INT64", "shape": [-1]},
            {"name": "mask", "datatype": "BOOL", "shape": [-1]},
        ]
        assert client.get_model_metadata("linear", "1")["inputs"][0]["shape"] == [-1, 4]
        assert client.is_model_ready("linear") and client.is_model_ready("linear", "2")
        assert not client.is_model_ready("nope")
        with pytest.raises(InferenceServerException, match="unknown model"):
            client.get_model_metadata("linear", "9")
    finally:
        client.close()
    encoded = httpx.get(f"{served.url}/v2/models/vision%2Fintbool/ready")
    assert encoded.json() == {"name": "vision/intbool", "ready": True}


def test_errors_through_tritonclient(served: Served) -> None:
    client = served.client()
    try:
        given = triton.InferInput("x", [1, 4], "FP64")
        given.set_data_from_numpy(np.ones((1, 4), np.float64))
        with pytest.raises(InferenceServerException, match="must be FP32, not FP64") as info:
            client.infer("linear", [given])
        assert info.value.status() == "400"
        given = triton.InferInput("x", [1, 4], "FP32")
        given.set_data_from_numpy(np.ones((1, 4), np.float32))
        with pytest.raises(InferenceServerException, match="unknown model") as info:
            client.infer("nope", [given])
        assert info.value.status() == "404"
    finally:
        client.close()


def _post(served: Served, model: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{served.url}/v2/models/{model}/infer", content=body, headers=headers or {})


def _json_infer(inputs: list[dict[str, Any]]) -> bytes:
    return json.dumps({"inputs": inputs}).encode()


@pytest.mark.parametrize(
    ("model", "body", "status", "message"),
    [
        ("nope", _json_infer([{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]), 404, "unknown model nope"),
        ("linear/versions/7", _json_infer([{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]), 404, "version 7"),
        ("linear", _json_infer([{"name": "x", "datatype": "INT32", "shape": [1, 4], "data": [1, 2, 3, 4]}]), 400, "must be FP32, not INT32"),
        ("linear", _json_infer([{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}]), 400, "dimension 1 must be 4"),
        ("fixed", _json_infer([{"name": "x", "datatype": "FP32", "shape": [3, 2], "data": [1, 2, 3, 4, 5, 6]}]), 400, "dimension 0 must be 2"),
        ("linear", _json_infer([{"name": "x", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]), 400, "must have rank 2"),
        ("vision/intbool", _json_infer([{"name": "a", "datatype": "INT64", "shape": [1], "data": [1]}]), 400, "missing input(s) mask"),
        ("linear", _json_infer([{"name": "q", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]), 400, "unknown input(s) q"),
        ("linear", _json_infer([{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": ["a", 2, 3, 4]}]), 400, "does not match datatype"),
        ("linear", b"{garbage", 400, "not valid JSON"),
        ("broken", _json_infer([{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]), 503, "failed to load"),
    ],
)
def test_infer_errors(served: Served, model: str, body: bytes, status: int, message: str) -> None:
    response = _post(served, model, body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and message in response.json()["error"]


def test_unknown_output_and_wrong_method(served: Served) -> None:
    body = json.dumps({
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}],
        "outputs": [{"name": "nope"}],
    }).encode()
    response = _post(served, "linear", body)
    assert response.status_code == 400 and "unknown output(s) nope" in response.json()["error"]
    assert httpx.get(f"{served.url}/v2/models/linear/infer").status_code == 405
    assert httpx.get(f"{served.url}/v2/models/nope").status_code == 404


def test_raw_binary_request_and_selected_binary_output(served: Served) -> None:
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    head = json.dumps({
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}],
        "outputs": [{"name": "y", "parameters": {"binary_data_output": True}}, {"name": "z"}],
    }).encode()
    response = _post(served, "linear", head + x.tobytes(), {HEADER_LENGTH: str(len(head))})
    assert response.status_code == 200
    size = int(response.headers[HEADER_LENGTH])
    doc = json.loads(response.content[:size])
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 12}
    expected = _direct(served.paths["linear2"], {"x": x})
    np.testing.assert_array_equal(np.frombuffer(response.content[size:], np.float32), expected["y"].reshape(-1))
    assert doc["outputs"][1]["data"] == (x + x).reshape(-1).tolist()
