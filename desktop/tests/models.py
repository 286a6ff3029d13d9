"""Tiny real ONNX models built with onnx.helper, written to a path for the runtime to load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def linear_model(path: Path) -> Path:
    """x FP32 [batch, 4] -> y = x @ W + b FP32 [batch, 3], and z = x + x FP32 [batch, 4]."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
            helper.make_node("Add", ["x", "x"], ["z"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4]),
        ],
        initializer=[
            numpy_helper.from_array(WEIGHTS, "W"),
            numpy_helper.from_array(np.array([1.0, -1.0, 0.5], dtype=np.float32), "b"),
        ],
    )
    return _save(graph, path)


def int_bool_model(path: Path) -> Path:
    """a INT64 [n], mask BOOL [n] -> picked INT64 [n] = where(mask, a * 2, 0), inverted BOOL [n]."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["a", "two"], ["doubled"]),
            helper.make_node("Where", ["mask", "doubled", "zero"], ["picked"]),
            helper.make_node("Not", ["mask"], ["inverted"]),
        ],
        "intbool",
        [
            helper.make_tensor_value_info("a", TensorProto.INT64, ["n"]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["n"]),
        ],
        [
            helper.make_tensor_value_info("picked", TensorProto.INT64, ["n"]),
            helper.make_tensor_value_info("inverted", TensorProto.BOOL, ["n"]),
        ],
        initializer=[
            numpy_helper.from_array(np.array(2, dtype=np.int64), "two"),
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        ],
    )
    return _save(graph, path)


def string_model(path: Path) -> Path:
    """text BYTES [n] -> same BYTES [n] (Identity on a string tensor)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["n"])],
    )
    return _save(graph, path)


def fixed_model(path: Path) -> Path:
    """x FP32 [2, 3] (all dimensions fixed) -> y = relu(x) FP32 [2, 3]."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    return _save(graph, path)


def broken_model(path: Path) -> Path:
    """A file that is not an ONNX model at all: loading it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a protobuf model")
    return path
