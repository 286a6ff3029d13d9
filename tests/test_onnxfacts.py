"""ONNX facts read from the protobuf bytes agree with onnx.load + onnxruntime, at flat memory."""

from __future__ import annotations

import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from modelyard.errors import InvalidError, LimitError
from modelyard.onnxfacts import OnnxFacts, TensorSpec, read_onnx_facts
from tests import onnx_models as om


def check_against_oracle(path: Path) -> OnnxFacts:
    """Every fact must equal what onnx.load and an InferenceSession say about the same file."""
    facts = read_onnx_facts(path)
    want = om.oracle(path)
    assert [(t.name, t.datatype, t.shape) for t in facts.inputs] == want.inputs
    assert [(t.name, t.datatype, t.shape) for t in facts.outputs] == want.outputs
    assert facts.opset == want.opset
    assert facts.ir_version == want.ir_version
    assert facts.producer_name == want.producer_name
    assert facts.producer_version == want.producer_version
    assert facts.parameter_count == want.parameter_count
    assert facts.graph_name == want.graph_name
    assert facts.external_data_files == want.external_data_files
    return facts


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save_model(model, str(path))
    return path


def test_mlp_with_dynamic_batch(tmp_path: Path) -> None:
    facts = check_against_oracle(save(om.mlp_model(), tmp_path / "mlp.onnx"))
    assert facts.inputs == [TensorSpec("x", "FP32", [-1, 8])]
    assert facts.outputs == [TensorSpec("logits", "FP32", [-1, 3])]
    assert facts.parameter_count == 8 * 16 + 16 + 16 * 3 + 3
    assert facts.opset == {"ai.onnx": 17}
    assert (facts.producer_name, facts.producer_version) == ("modelyard-tests", "1.2.3")
    assert facts.external_data_files == []
    # The model is real: onnxruntime runs it at two batch sizes.
    session = ort.InferenceSession(str(tmp_path / "mlp.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        (out,) = session.run(None, {"x": np.zeros((batch, 8), np.float32)})
        assert out.shape == (batch, 3)


def test_every_oip_datatype_and_shape_kind(tmp_path: Path) -> None:
    facts = check_against_oracle(save(om.all_types_model(), tmp_path / "types.onnx"))
    by_name = {t.name: t for t in facts.inputs + facts.outputs}
    for _, oip in om.ALL_OIP_TYPES:
        assert by_name[f"in_{oip.lower()}"] == TensorSpec(f"in_{oip.lower()}", oip, [-1, 3])
        # A dim with neither value nor name is as dynamic as a named one.
        assert by_name[f"out_{oip.lower()}"].shape == [-1, 3]
    # onnxruntime says [] for both; the registry tells a scalar from an unknown rank.
    assert by_name["scalar"] == TensorSpec("scalar", "INT64", [], rank_known=True)
    assert by_name["anyrank"] == TensorSpec("anyrank", "FP32", [], rank_known=False)


def test_int64_bool_and_string_inputs(tmp_path: Path) -> None:
    facts = check_against_oracle(save(om.tokens_model(), tmp_path / "tokens.onnx"))
    assert [(t.name, t.datatype, t.shape) for t in facts.inputs] == [
        ("input_ids", "INT64", [-1, -1]),
        ("mask", "BOOL", [-1, -1]),
        ("tags", "BYTES", [-1]),
    ]
    assert facts.parameter_count == 0


@pytest.mark.parametrize("one_file", [True, False], ids=["one-file", "file-per-tensor"])
def test_external_data(tmp_path: Path, one_file: bool) -> None:
    path = tmp_path / "mlp.onnx"
    om.save_external(om.mlp_model(), path, one_file=one_file)
    facts = check_against_oracle(path)
    expected = ["mlp.weights"] if one_file else ["W1", "W2", "b1", "b2"]
    assert facts.external_data_files == expected
    assert facts.parameter_count == 8 * 16 + 16 + 16 * 3 + 3
    # The model file itself holds no weights: the facts come from it alone.
    assert path.stat().st_size < 1024


def test_external_data_files_are_not_opened(tmp_path: Path) -> None:
    path = tmp_path / "mlp.onnx"
    om.save_external(om.mlp_model(), path, one_file=True)
    (tmp_path / "mlp.weights").unlink()
    facts = read_onnx_facts(path)
    assert facts.external_data_files == ["mlp.weights"]
    assert facts.parameter_count == 8 * 16 + 16 + 16 * 3 + 3


def test_external_data_in_subgraph_attributes(tmp_path: Path) -> None:
    path = tmp_path / "branches.onnx"
    om.save_external(om.subgraph_model(), path, one_file=False, attributes=True)
    facts = check_against_oracle(path)
    # Constant weights inside If branches are found; they are attributes, not initializers.
    assert facts.external_data_files == ["else_w", "then_w"]
    assert facts.parameter_count == 0
    assert [t.name for t in facts.inputs] == ["cond", "x"]


def test_old_style_initializers_listed_as_inputs(tmp_path: Path) -> None:
    model = om.old_style_model()
    assert len(model.graph.input) == 5
    facts = check_against_oracle(save(model, tmp_path / "old.onnx"))
    assert [t.name for t in facts.inputs] == ["x"]
    assert facts.ir_version == 3
    assert facts.opset == {"ai.onnx": 8}
    assert facts.parameter_count == 8 * 16 + 16 + 16 * 3 + 3


def test_multiple_opset_domains(tmp_path: Path) -> None:
    facts = check_against_oracle(save(om.multi_domain_model(), tmp_path / "multi.onnx"))
    assert facts.opset == {"ai.onnx": 17, "com.microsoft": 1, "local.fns": 1}


def test_sparse_initializer_counts_its_dense_shape(tmp_path: Path) -> None:
    facts = check_against_oracle(save(om.sparse_model(), tmp_path / "sparse.onnx"))
    assert facts.parameter_count == 4 * 5 + 5


def test_model_written_by_onnxruntime(tmp_path: Path) -> None:
    source = save(om.mlp_model(), tmp_path / "mlp.onnx")
    target = tmp_path / "mlp.opt.onnx"
    om.optimized_by_onnxruntime(source, target)
    facts = check_against_oracle(target)
    assert facts.inputs == [TensorSpec("x", "FP32", [-1, 8])]
    assert facts.parameter_count == 8 * 16 + 16 + 16 * 3 + 3


def test_model_exported_by_skl2onnx(tmp_path: Path) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    neural_network = pytest.importorskip("sklearn.neural_network")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    clf = neural_network.MLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0)
    exceptions = pytest.importorskip("sklearn.exceptions")
    with warnings.catch_warnings():
        # Five iterations are plenty for a fixture and too few to converge; that is expected.
        warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
        clf.fit(x, y)
    model = skl2onnx.to_onnx(clf, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    facts = check_against_oracle(save(model, tmp_path / "sk.onnx"))
    assert facts.producer_name == "skl2onnx"
    # skl2onnx imports the lowest ai.onnx.ml version its operators need; the oracle checked it.
    assert sorted(facts.opset) == ["ai.onnx", "ai.onnx.ml"]
    assert facts.inputs == [TensorSpec("X", "FP32", [-1, 6])]
    # The ZipMap output is a sequence of maps: no OIP tensor, named for what it is.
    assert [(t.name, t.datatype, t.rank_known) for t in facts.outputs] == [
        ("output_label", "INT64", True),
        ("output_probability", "SEQUENCE", False),
    ]
    # Every initializer element counts, so skl2onnx's small constants do too: "unity" (1),
    # "classes" (2) and "shape_tensor" (1) on top of the network's weights and biases.
    assert facts.parameter_count == sum(c.size for c in clf.coefs_ + clf.intercepts_) + 4


def test_two_hundred_megabytes_of_weights_at_flat_memory(tmp_path: Path) -> None:
    # The hand-written file is a real model: the same writer at a small size passes the oracle.
    small = tmp_path / "small.onnx"
    om.write_big_model(small, 1000)
    assert check_against_oracle(small).parameter_count == 1000

    n_floats = 50 * 1024 * 1024  # 200 MiB of float32
    path = tmp_path / "big.onnx"
    started = time.perf_counter()
    om.write_big_model(path, n_floats)
    write_seconds = time.perf_counter() - started
    assert path.stat().st_size > 200 * 1024 * 1024

    tracemalloc.start()
    try:
        started = time.perf_counter()
        facts = read_onnx_facts(path)
        read_seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f"\n200 MiB model: written in {write_seconds:.2f}s, facts read in {read_seconds * 1000:.1f} ms, "
        f"tracemalloc peak {peak / 1024:.0f} KiB"
    )
    assert facts.parameter_count == n_floats
    assert facts.inputs == [TensorSpec("x", "FP32", [n_floats])]
    assert facts.producer_name == "big-writer"
    assert peak < 1024 * 1024
    assert read_seconds < 1.0


# --- Bad input -------------------------------------------------------------------------------


def assert_rejected_quickly(path: Path, match: str = "ONNX") -> InvalidError:
    tracemalloc.start()
    try:
        started = time.perf_counter()
        with pytest.raises(InvalidError, match=match) as caught:
            read_onnx_facts(path)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 1024 * 1024
    return caught.value


def test_truncated_files_are_invalid(tmp_path: Path) -> None:
    data = om.mlp_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    # Fields are written in field-number order, so opset_import (8) is the tail after the graph.
    tail = onnx.ModelProto(opset_import=om.mlp_model().opset_import).SerializeToString()
    assert data.endswith(tail)
    graph_end = len(data) - len(tail)
    for cut in [1, 2, 3, 10, 25, 50, 100, len(data) // 3, len(data) // 2, graph_end - 1, graph_end]:
        path.write_bytes(data[:cut])
        error = assert_rejected_quickly(path)
        assert "cut.onnx" in error.message
    # A cut inside the last field is caught too.
    path.write_bytes(data[:-1])
    assert_rejected_quickly(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert_rejected_quickly(path, match="empty")


def test_random_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1234)
    path = tmp_path / "noise.onnx"
    for size in [1, 7, 64, 1000, 4096, 65536]:
        for _ in range(20):
            path.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
            assert_rejected_quickly(path)


@pytest.mark.parametrize(
    "data",
    [
        b"PK\x03\x04" + b"\x00" * 100,  # a zip (a .pt checkpoint, say)
        b'{"inputs": []}\n',
        b"\x89HDF\r\n\x1a\n" + b"\x00" * 64,
        b"pytorch_model.bin\n",
    ],
    ids=["zip", "json", "hdf5", "text"],
)
def test_other_file_formats(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "not.onnx"
    path.write_bytes(data)
    assert_rejected_quickly(path)


def test_valid_protobuf_that_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "shape.onnx"
    # A TensorShapeProto is well-formed protobuf, and to a ModelProto reader all unknown fields.
    shape = onnx.TensorShapeProto()
    shape.dim.add().dim_value = 3
    path.write_bytes(shape.SerializeToString())
    assert_rejected_quickly(path, match="not an ONNX model: shape.onnx has no IR version")
    # A TensorProto is not: its name lands on opset_import (8), which cannot parse it.
    path.write_bytes(numpy_helper.from_array(np.ones((3,), np.float32), "t").SerializeToString())
    assert_rejected_quickly(path, match="not a valid ONNX model")


# ModelProto.opset_import (8) = {version (2): 17}
OPSET_17 = b"B\x02\x10\x11"


def test_huge_bogus_length_prefix(tmp_path: Path) -> None:
    path = tmp_path / "huge.onnx"
    path.write_bytes(b"\x08\x08" + om._len_field(7, 1 << 62) + b"\x00" * 32)
    error = assert_rejected_quickly(path)
    assert "claims" in error.message


def test_bogus_length_inside_a_nested_message(tmp_path: Path) -> None:
    # The graph is well framed but an initializer inside it claims more than the graph holds.
    inner = om._len_field(5, 1000) + b"\x00" * 10
    path = tmp_path / "nested.onnx"
    path.write_bytes(b"\x08\x08" + om._len_field(7, len(inner)) + inner + OPSET_17)
    assert "field 5 claims 1000 bytes but only 10 remain" in assert_rejected_quickly(path).message


def test_overlong_varint_and_bad_wire_types(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    for data in [b"\x08" + b"\xff" * 11, b"\x0b\x0c", b"\x0e\x00", b"\x00\x00", b"\x08\x80"]:
        path.write_bytes(data)
        assert_rejected_quickly(path)


def test_missing_opset_import_is_invalid(tmp_path: Path) -> None:
    model = om.mlp_model()
    del model.opset_import[:]
    path = save(model, tmp_path / "no_opset.onnx")
    assert_rejected_quickly(path, match="opset")


def test_external_data_outside_the_model_folder(tmp_path: Path) -> None:
    for location in ["../secret.bin", "/etc/passwd", "sub/../../x.bin", ""]:
        model = om.mlp_model()
        tensor = model.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", location
        path = save(model, tmp_path / "escape.onnx")
        assert_rejected_quickly(path)


def test_external_location_is_normalised(tmp_path: Path) -> None:
    model = om.mlp_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "./weights/w1.bin"
    facts = read_onnx_facts(save(model, tmp_path / "m.onnx"))
    assert facts.external_data_files == ["weights/w1.bin"]


def test_subgraphs_nested_too_deep(tmp_path: Path) -> None:
    ok = read_onnx_facts(save(om.nested_if_model(10), tmp_path / "ok.onnx"))
    assert ok.inputs == [TensorSpec("c", "BOOL", []), TensorSpec("x", "FP32", [1])]
    # As deep as protobuf itself parses (onnx.helper cannot even build one level more).
    path = save(om.nested_if_model(32), tmp_path / "deepest.onnx")
    assert read_onnx_facts(path).graph_name == "level32"
    # Deeper files are written by hand; they are refused before Python's stack is at risk.
    path = tmp_path / "deep.onnx"
    for depth in (33, 5000):
        path.write_bytes(om.nested_subgraphs_bytes(depth))
        assert_rejected_quickly(path, match="nested")


def test_absurdly_long_name_is_refused(tmp_path: Path) -> None:
    model = om.mlp_model()
    model.graph.input[0].name = "x" * 100_000
    path = save(model, tmp_path / "long.onnx")
    with pytest.raises(LimitError, match="100000-byte name"):
        read_onnx_facts(path)
