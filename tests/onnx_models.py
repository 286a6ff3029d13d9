"""Builders of real ONNX models for tests, and the onnx/onnxruntime oracle they are checked against."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import GraphProto, ModelProto, TensorProto, helper, numpy_helper

# onnxruntime's type strings → OIP datatypes, written out independently of the code under test.
ORT_TO_OIP = {
    "tensor(float)": "FP32",
    "tensor(uint8)": "UINT8",
    "tensor(int8)": "INT8",
    "tensor(uint16)": "UINT16",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(string)": "BYTES",
    "tensor(bool)": "BOOL",
    "tensor(float16)": "FP16",
    "tensor(double)": "FP64",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bfloat16)": "BF16",
}

# Every element type that has an OIP name, with the numpy dtype of a sample value.
ALL_OIP_TYPES: list[tuple[int, str]] = [
    (TensorProto.FLOAT, "FP32"),
    (TensorProto.UINT8, "UINT8"),
    (TensorProto.INT8, "INT8"),
    (TensorProto.UINT16, "UINT16"),
    (TensorProto.INT16, "INT16"),
    (TensorProto.INT32, "INT32"),
    (TensorProto.INT64, "INT64"),
    (TensorProto.STRING, "BYTES"),
    (TensorProto.BOOL, "BOOL"),
    (TensorProto.FLOAT16, "FP16"),
    (TensorProto.DOUBLE, "FP64"),
    (TensorProto.UINT32, "UINT32"),
    (TensorProto.UINT64, "UINT64"),
    (TensorProto.BFLOAT16, "BF16"),
]


@dataclass
class Oracle:
    """The facts as onnx.load and onnxruntime.InferenceSession report them."""

    inputs: list[tuple[str, str, list[int]]]
    outputs: list[tuple[str, str, list[int]]]
    opset: dict[str, int]
    ir_version: int
    producer_name: str
    producer_version: str
    parameter_count: int
    graph_name: str
    external_data_files: list[str]


def _ort_type(type_: str) -> str:
    """onnxruntime's type string as the registry names it; non-tensors by their kind."""
    kinds = {
        "seq(": "SEQUENCE",
        "map(": "MAP",
        "optional(": "OPTIONAL",
        "sparse_tensor(": "SPARSE_TENSOR",
    }
    for prefix, kind in kinds.items():
        if type_.startswith(prefix):
            return kind
    return ORT_TO_OIP[type_]


def _ort_shape(shape: Iterable[int | str | None]) -> list[int]:
    """onnxruntime says None or a symbol name for a dynamic dim; the registry says -1."""
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def oracle(path: Path) -> Oracle:
    """Load the model the heavy way (all weights, a real session) and report its facts."""
    model = onnx.load(str(path))  # loads external data from the model's folder too
    options = ort.SessionOptions()
    options.log_severity_level = 3  # old-style models make onnxruntime warn on stderr
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    params = sum(int(numpy_helper.to_array(t).size) for t in model.graph.initializer)
    params += sum(int(np.prod(s.dims, dtype=object)) for s in model.graph.sparse_initializer)
    return Oracle(
        inputs=[(i.name, _ort_type(i.type), _ort_shape(i.shape)) for i in session.get_inputs()],
        outputs=[(o.name, _ort_type(o.type), _ort_shape(o.shape)) for o in session.get_outputs()],
        opset={(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        parameter_count=params,
        graph_name=model.graph.name,
        external_data_files=external_locations(onnx.load(str(path), load_external_data=False)),
    )


def _graph_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    """Every stored tensor of a graph and its subgraphs: initializers and attribute tensors."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[TensorProto]:
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def external_locations(model: ModelProto) -> list[str]:
    """The external data files a model names, found by walking the parsed proto."""
    tensors = list(_graph_tensors(model.graph))
    for function in model.functions:
        tensors.extend(_node_tensors(function.node))
    found = set()
    for tensor in tensors:
        if onnx.external_data_helper.uses_external_data(tensor):
            found.add(next(e.value for e in tensor.external_data if e.key == "location"))
    return sorted(found)


def _model(graph: GraphProto, opset: int = 17, **kwargs: object) -> ModelProto:
    """A model with the given graph and an ir_version onnxruntime accepts."""
    kwargs.setdefault("opset_imports", [helper.make_opsetid("", opset)])
    kwargs.setdefault("ir_version", 8)
    return helper.make_model(graph, **kwargs)  # type: ignore[arg-type]


def mlp_model(hidden: int = 16, features: int = 8, classes: int = 3, seed: int = 0) -> ModelProto:
    """A MatMul/Add/Relu MLP with a dynamic batch dim named 'batch'."""
    rng = np.random.default_rng(seed)
    weights = {
        "W1": rng.standard_normal((features, hidden), dtype=np.float32),
        "b1": rng.standard_normal((hidden,), dtype=np.float32),
        "W2": rng.standard_normal((hidden, classes), dtype=np.float32),
        "b2": rng.standard_normal((classes,), dtype=np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    return _model(graph, producer_name="modelyard-tests", producer_version="1.2.3")


def all_types_model() -> ModelProto:
    """One Identity per OIP datatype, with fixed, symbolic, missing and scalar dims."""
    inputs, outputs, nodes = [], [], []
    for elem_type, oip in ALL_OIP_TYPES:
        name = oip.lower()
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem_type, ["n", 3]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem_type, [None, 3]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    inputs.append(helper.make_tensor_value_info("scalar", TensorProto.INT64, []))
    outputs.append(helper.make_tensor_value_info("scalar_out", TensorProto.INT64, []))
    nodes.append(helper.make_node("Identity", ["scalar"], ["scalar_out"]))
    inputs.append(helper.make_tensor_value_info("anyrank", TensorProto.FLOAT, None))
    outputs.append(helper.make_tensor_value_info("anyrank_out", TensorProto.FLOAT, None))
    nodes.append(helper.make_node("Identity", ["anyrank"], ["anyrank_out"]))
    graph = helper.make_graph(nodes, "all_types", inputs, outputs)
    return _model(graph, opset=21, ir_version=10)


def tokens_model() -> ModelProto:
    """Text-model-like inputs: int64 ids [batch, seq], a bool mask, string tags (BYTES)."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["mask"], ["mask64"], to=TensorProto.INT64),
            helper.make_node("Mul", ["input_ids", "mask64"], ["kept"]),
            helper.make_node("Identity", ["tags"], ["tags_out"]),
        ],
        "tokens",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["batch", "sequence"]),
            helper.make_tensor_value_info("tags", TensorProto.STRING, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("kept", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("tags_out", TensorProto.STRING, ["batch"]),
        ],
    )
    return _model(graph)


def old_style_model() -> ModelProto:
    """IR 3, opset 8: every initializer is also listed as a graph input, as old exporters did."""
    model = mlp_model()
    graph = model.graph
    for init in graph.initializer:
        graph.input.append(
            helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
        )
    # Opset 8 has the same MatMul/Add/Relu; IR 3 is the version that went with it.
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", 8))
    model.ir_version = 3
    return model


def multi_domain_model() -> ModelProto:
    """ai.onnx plus onnxruntime's com.microsoft ops plus a model-local function domain."""
    function = helper.make_function(
        "local.fns",
        "AddOne",
        ["a"],
        ["b"],
        [
            helper.make_node(
                "Constant", [], ["one"], value=numpy_helper.from_array(np.ones((1,), np.float32))
            ),
            helper.make_node("Add", ["a", "one"], ["b"]),
        ],
        [helper.make_opsetid("", 17)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Gelu", ["x"], ["g"], domain="com.microsoft"),
            helper.make_node("AddOne", ["g"], ["y"], domain="local.fns"),
        ],
        "multi_domain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return _model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 17),
            helper.make_opsetid("com.microsoft", 1),
            helper.make_opsetid("local.fns", 1),
        ],
        functions=[function],
    )


def sparse_model() -> ModelProto:
    """A weight stored as a sparse initializer: 3 values standing for a dense 4x5 matrix."""
    values = numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "S")
    indices = numpy_helper.from_array(np.array([0, 7, 19], np.int64), "S_indices")
    sparse = helper.make_sparse_tensor(values, indices, [4, 5])
    bias = numpy_helper.from_array(np.zeros((5,), np.float32), "bias")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "S"], ["m"]),
            helper.make_node("Add", ["m", "bias"], ["y"]),
        ],
        "sparse",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])],
        [bias],
        sparse_initializer=[sparse],
    )
    return _model(graph)


def subgraph_model() -> ModelProto:
    """An If whose branches hold weights as Constant attributes, for attribute external data."""
    rng = np.random.default_rng(1)

    def branch(name: str) -> GraphProto:
        value = numpy_helper.from_array(
            rng.standard_normal((64, 64), dtype=np.float32), f"{name}_w"
        )
        return helper.make_graph(
            [helper.make_node("Constant", [], [f"{name}_out"], value=value)],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [64, 64])],
        )

    graph = helper.make_graph(
        [
            helper.make_node(
                "If", ["cond"], ["w"], then_branch=branch("then"), else_branch=branch("else")
            ),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ],
        "branches",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])],
    )
    return _model(graph)


def save_external(
    model: ModelProto, path: Path, *, one_file: bool, attributes: bool = False
) -> None:
    """Save with every tensor's bytes in external files beside the model."""
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=one_file,
        location=f"{path.stem}.weights" if one_file else None,
        size_threshold=0,
        convert_attribute=attributes,
    )


def optimized_by_onnxruntime(source: Path, target: Path) -> None:
    """Let onnxruntime itself write the model out (its optimizer is the exporter here)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def nested_if_model(depth: int) -> ModelProto:
    """If nodes nested `depth` deep: each then-branch holds the next If, each else-branch a leaf."""

    def leaf(level: int) -> GraphProto:
        return helper.make_graph(
            [helper.make_node("Identity", ["x"], [f"y{level}"])],
            f"leaf{level}",
            [],
            [helper.make_tensor_value_info(f"y{level}", TensorProto.FLOAT, [1])],
        )

    inner = leaf(0)
    for level in range(1, depth + 1):
        # Not the same graph twice: that would double the file with every level.
        inner = helper.make_graph(
            [
                helper.make_node(
                    "If", ["c"], [f"y{level}"], then_branch=inner, else_branch=leaf(level)
                )
            ],
            f"level{level}",
            [],
            [helper.make_tensor_value_info(f"y{level}", TensorProto.FLOAT, [1])],
        )
    inner.input.extend(
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
        ]
    )
    return _model(inner)


# --- Writing protobuf by hand, for a model too large to build in memory ----------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, length: int) -> bytes:
    """The key and length prefix of a length-delimited field."""
    return _varint(number << 3 | 2) + _varint(length)


def write_big_model(path: Path, n_floats: int, chunk: int = 1 << 22) -> None:
    """Write y = x + W with W of n_floats float32s embedded as raw_data, streaming W to disk."""
    # Protobuf fields may come in any order and a message is just its fields back to back, so the
    # tensor is its small head (name, dims, type) followed by a raw_data field whose bytes are
    # written in chunks; only the length prefixes need the total size, which is known up front.
    head = TensorProto(name="W", dims=[n_floats], data_type=TensorProto.FLOAT).SerializeToString()
    raw_len = 4 * n_floats
    tensor_len = len(head) + len(_len_field(9, raw_len)) + raw_len
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "W"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n_floats])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n_floats])],
    )
    graph_head = graph.SerializeToString()
    graph_len = len(graph_head) + len(_len_field(5, tensor_len)) + tensor_len
    model_head = _model(helper.make_graph([], "", [], []), producer_name="big-writer")
    model_head.ClearField("graph")
    block = np.arange(chunk // 4, dtype="<f4").tobytes()
    with open(path, "wb") as f:
        f.write(model_head.SerializeToString())
        f.write(_len_field(7, graph_len) + graph_head)
        f.write(_len_field(5, tensor_len) + head + _len_field(9, raw_len))
        left = raw_len
        while left:
            f.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def nested_subgraphs_bytes(depth: int) -> bytes:
    """A model whose graph nests `depth` subgraphs (graph → node → attribute g → graph …)."""
    graph = b""
    for _ in range(depth):
        attribute = b"\x0a\x01g" + _len_field(6, len(graph)) + graph  # name "g", g = graph
        node = _len_field(5, len(attribute)) + attribute
        graph = _len_field(1, len(node)) + node
    opset = b"\x10\x11"  # version 17 of the default domain
    return b"\x08\x08" + _len_field(7, len(graph)) + graph + _len_field(8, len(opset)) + opset
