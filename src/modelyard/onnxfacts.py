"""Read an ONNX model's signature and metadata from its protobuf bytes without loading weights."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from modelyard.errors import InvalidError, LimitError

# ONNX TensorProto.DataType → Open Inference Protocol datatype. BFLOAT16 → "BF16" is a choice:
# the OIP REST table stops at BYTES, but KServe's gRPC docs and Triton both name it BF16, so a
# client that knows bfloat16 at all knows it by that name.
OIP_DATATYPES: dict[int, str] = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "BYTES",
    9: "BOOL",
    10: "FP16",
    11: "FP64",
    12: "UINT32",
    13: "UINT64",
    16: "BF16",
}

# Element types OIP has no name for keep their ONNX name, so they can never be mistaken for an
# OIP datatype and a client can still tell what the model wants.
_ONNX_TYPE_NAMES: dict[int, str] = {
    0: "UNDEFINED",
    14: "COMPLEX64",
    15: "COMPLEX128",
    17: "FLOAT8E4M3FN",
    18: "FLOAT8E4M3FNUZ",
    19: "FLOAT8E5M2",
    20: "FLOAT8E5M2FNUZ",
    21: "UINT4",
    22: "INT4",
    23: "FLOAT4E2M1",
    24: "FLOAT8E8M0",
    25: "UINT2",
    26: "INT2",
    27: "FLOAT6E2M3",
    28: "FLOAT6E3M2",
}

DEFAULT_DOMAIN = "ai.onnx"

# Bounds that keep a hostile file from costing memory: every string and every dim that is kept
# is charged to one budget, and no single string may be longer than a sane tensor name.
_MAX_STRING = 64 * 1024
_MAX_RETAINED = 16 * 1024 * 1024
# protobuf refuses messages nested deeper than 100, which is 32 levels of subgraphs (graph →
# node → attribute → graph); deeper files cannot be loaded by onnx or onnxruntime anyway.
_MAX_GRAPH_DEPTH = 32
# One read fetches this much; skipped fields cost no I/O at all.
_WINDOW = 64 * 1024

_U64 = (1 << 64) - 1
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

# Wire types (the low 3 bits of a field key).
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


@dataclass(slots=True)
class TensorSpec:
    """One graph input or output: name, OIP datatype and shape (-1 for a dynamic dim)."""

    name: str
    datatype: str
    shape: list[int]
    # False when the model declares no shape at all (unknown rank), which `shape == []` (a
    # scalar) cannot say. Non-tensor values (SEQUENCE, MAP, OPTIONAL, OPAQUE) have no rank.
    rank_known: bool = True


@dataclass(slots=True)
class OnnxFacts:
    """What a registry tells about an ONNX model without running or loading it."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: dict[str, int]
    ir_version: int
    producer_name: str
    producer_version: str
    parameter_count: int
    graph_name: str
    external_data_files: list[str] = field(default_factory=list)


def read_onnx_facts(path: Path, *, label: str | None = None) -> OnnxFacts:
    """Read the facts of the ONNX model at `path`; blocking, so call it from a worker thread."""
    # Errors name the file by `label` (say, the artifact path) since `path` may be a blob's.
    label = label or path.name
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise InvalidError(f"not an ONNX model: {label} is empty")
        return _read_model(_Source(f, size, label))


def oip_datatype(elem_type: int) -> str:
    """Name an ONNX element type the way the Open Inference Protocol does, or by its ONNX name."""
    if elem_type in OIP_DATATYPES:
        return OIP_DATATYPES[elem_type]
    return _ONNX_TYPE_NAMES.get(elem_type, f"ONNX_TYPE_{elem_type}")


class _Source:
    """Random access to the file through one small window, so skipping a field costs no I/O."""

    def __init__(self, f: BinaryIO, size: int, label: str) -> None:
        self._f = f
        self.size = size
        self.label = label
        self._buf = b""
        self._start = 0
        self._retained = 0

    def fail(self, pos: int, what: str) -> InvalidError:
        """Build the error for a malformed file, naming where it went wrong."""
        return InvalidError(f"not a valid ONNX model: {self.label} at byte {pos}: {what}")

    def retain(self, nbytes: int) -> None:
        """Charge kept metadata to the budget; past it the file is refused rather than read."""
        self._retained += nbytes
        if self._retained > _MAX_RETAINED:
            raise LimitError(
                f"ONNX model {self.label} declares more than {_MAX_RETAINED} bytes of "
                "names and shapes; refusing to read its facts"
            )

    def _window(self, pos: int, n: int) -> tuple[bytes, int]:
        """Return a buffer holding bytes [pos, pos + n) and the index of pos in it."""
        i = pos - self._start
        if i >= 0 and i + n <= len(self._buf):
            return self._buf, i
        self._f.seek(pos)
        buf = self._f.read(max(n, _WINDOW))
        if len(buf) < n:
            # Bounds were checked against the size seen at open, so the file shrank under us.
            raise self.fail(pos, "file ended early")
        self._buf, self._start = buf, pos
        return buf, 0

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """Decode the varint at pos, which must end before `end`; return (value, next pos)."""
        # Fast path: keys and short lengths are one byte and usually already in the window.
        i = pos - self._start
        if pos < end and 0 <= i < len(self._buf) and self._buf[i] < 0x80:
            return self._buf[i], pos + 1
        n = min(10, end - pos)
        if n <= 0:
            raise self.fail(pos, self._ran_out(end))
        buf, i = self._window(pos, n)
        value = 0
        for k in range(n):
            b = buf[i + k]
            value |= (b & 0x7F) << (7 * k)
            if b < 0x80:
                return value & _U64, pos + k + 1
        if n < 10:
            raise self.fail(pos, self._ran_out(end))
        raise self.fail(pos, "varint longer than 10 bytes")

    def _ran_out(self, end: int) -> str:
        return "file is truncated" if end == self.size else "field runs past the end of its message"

    def text(self, start: int, end: int) -> str:
        """Decode a string field, refusing absurd lengths before reading them."""
        n = end - start
        if n > _MAX_STRING:
            raise LimitError(
                f"ONNX model {self.label} has a {n}-byte name at byte {start}; "
                f"names longer than {_MAX_STRING} bytes are refused"
            )
        buf, i = self._window(start, n)
        try:
            return buf[i : i + n].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(start, "string field is not valid UTF-8") from None

    def fields(self, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """Yield (number, wire type, a, b) per field in [pos, end): a varint's value in a, else a span."""
        while pos < end:
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise self.fail(pos, "field number 0")
            if wire == _VARINT:
                value, pos = self.varint(pos, end)
                yield number, wire, value, 0
            elif wire == _LEN:
                start = pos
                length, pos = self.varint(pos, end)
                # The guard that keeps a bogus length from sending us past the file (or the
                # enclosing message): every span stays inside its parent, so inside the file.
                if length > end - pos:
                    raise self.fail(
                        start, f"field {number} claims {length} bytes but only {end - pos} remain"
                    )
                yield number, wire, pos, pos + length
                pos += length
            elif wire in (_I64, _I32):
                width = 8 if wire == _I64 else 4
                if width > end - pos:
                    raise self.fail(pos, self._ran_out(end))
                yield number, wire, pos, pos + width
                pos += width
            else:
                # Groups (3, 4) are unused by ONNX; 6 and 7 do not exist.
                raise self.fail(pos, f"unsupported wire type {wire} in field {number}")


def _int64(value: int) -> int:
    """Reinterpret a decoded varint as a signed 64-bit integer."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _read_model(src: _Source) -> OnnxFacts:
    """Walk ModelProto: the scalars here, the graph in two passes over its spans."""
    ir_version: int | None = None
    producer_name = producer_version = ""
    opset: dict[str, int] = {}
    graphs: list[tuple[int, int]] = []
    files: set[str] = set()
    for number, wire, a, b in src.fields(0, src.size):
        if number == 1 and wire == _VARINT:
            ir_version = _int64(a)
        elif wire != _LEN:
            continue
        elif number == 2:
            producer_name = src.text(a, b)
        elif number == 3:
            producer_version = src.text(a, b)
        elif number == 7:
            # protobuf merges a repeated non-repeated message field, so keep every span.
            src.retain(64)
            graphs.append((a, b))
        elif number == 8:
            domain, version = _read_opset(src, a, b)
            src.retain(len(domain) + 64)
            opset[domain or DEFAULT_DOMAIN] = version
        elif number == 25:
            _scan_function(src, a, b, files)
    # Any byte string parses as *some* protobuf; these two fields are what make it a model.
    if ir_version is None:
        raise InvalidError(f"not an ONNX model: {src.label} has no IR version")
    if not graphs:
        raise InvalidError(f"not an ONNX model: {src.label} has no graph")
    # IR 3 introduced opset_import and made it mandatory (onnx's checker and onnxruntime refuse a
    # model without one); it follows the graph on the wire, so this also catches a file cut
    # exactly at the end of its graph, which no protobuf reader could otherwise tell.
    if ir_version >= 3 and not opset:
        raise InvalidError(f"not a valid ONNX model: {src.label} imports no opset")

    graph_name = ""
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    for start, end in graphs:
        for number, wire, a, b in src.fields(start, end):
            if wire != _LEN:
                continue
            if number == 2:
                graph_name = src.text(a, b)
            elif number == 11:
                inputs.append(_read_value_info(src, a, b))
            elif number == 12:
                outputs.append(_read_value_info(src, a, b))

    # Second pass, so that only the names of inputs (already bounded) are held, never a set of
    # every initializer name.
    input_names = {spec.name for spec in inputs}
    baked_in: set[str] = set()
    parameter_count = 0
    for start, end in graphs:
        for number, wire, a, b in src.fields(start, end):
            if wire != _LEN:
                continue
            if number == 5:
                name, count = _read_tensor(src, a, b, files)
            elif number == 15:
                name, count = _read_sparse_tensor(src, a, b, files)
            elif number == 1:
                _scan_node(src, a, b, files, 0)
                continue
            else:
                continue
            parameter_count += count
            if name in input_names:
                baked_in.add(name)
    # IR < 4 exporters listed every weight as a graph input too. Those are not inputs a caller
    # must feed, and onnxruntime's get_inputs() leaves them out at every IR version as well.
    inputs = [spec for spec in inputs if spec.name not in baked_in]
    return OnnxFacts(
        inputs=inputs,
        outputs=outputs,
        opset=opset,
        ir_version=ir_version,
        producer_name=producer_name,
        producer_version=producer_version,
        parameter_count=parameter_count,
        graph_name=graph_name,
        external_data_files=sorted(files),
    )


def _read_opset(src: _Source, start: int, end: int) -> tuple[str, int]:
    """Read OperatorSetIdProto (domain=1, version=2)."""
    domain, version = "", 0
    for number, wire, a, b in src.fields(start, end):
        if number == 1 and wire == _LEN:
            domain = src.text(a, b)
        elif number == 2 and wire == _VARINT:
            version = _int64(a)
    return domain, version


def _read_value_info(src: _Source, start: int, end: int) -> TensorSpec:
    """Read ValueInfoProto (name=1, type=2) into a TensorSpec."""
    name = ""
    datatype, rank_known = "UNDEFINED", False
    shape: list[int] = []
    for number, wire, a, b in src.fields(start, end):
        if wire != _LEN:
            continue
        if number == 1:
            name = src.text(a, b)
        elif number == 2:
            datatype, shape, rank_known = _read_type(src, a, b)
    # Roughly what the objects cost in CPython, so the budget bounds real memory.
    src.retain(len(name) + 200)  # dims were charged as they were read
    return TensorSpec(name=name, datatype=datatype, shape=shape, rank_known=rank_known)


# TypeProto's other members: their values cannot travel as one OIP tensor, so they are named
# for what they are and carry no shape (ONNX Runtime reports [] for them too).
_NON_TENSOR_TYPES = {4: "SEQUENCE", 5: "MAP", 7: "OPAQUE", 9: "OPTIONAL"}


def _read_type(src: _Source, start: int, end: int) -> tuple[str, list[int], bool]:
    """Read TypeProto: tensor_type=1 (or sparse_tensor_type=8) → (datatype, shape, rank known)."""
    datatype, rank_known = "UNDEFINED", False
    shape: list[int] = []
    for number, wire, a, b in src.fields(start, end):
        if wire != _LEN:
            continue
        if number == 1:
            datatype, shape, rank_known = _read_tensor_type(src, a, b)
        elif number == 8:
            _, shape, rank_known = _read_tensor_type(src, a, b)
            datatype = "SPARSE_TENSOR"
        elif number in _NON_TENSOR_TYPES:
            datatype, shape, rank_known = _NON_TENSOR_TYPES[number], [], False
    return datatype, shape, rank_known


def _read_tensor_type(src: _Source, start: int, end: int) -> tuple[str, list[int], bool]:
    """Read TypeProto.Tensor (elem_type=1, shape=2 → TensorShapeProto.dim=1)."""
    elem_type = 0
    shape: list[int] = []
    rank_known = False
    for number, wire, a, b in src.fields(start, end):
        if number == 1 and wire == _VARINT:
            elem_type = _int64(a)
        elif number == 2 and wire == _LEN:
            # A present-but-empty shape is a scalar; an absent one is an unknown rank.
            rank_known = True
            for dnum, dwire, da, db in src.fields(a, b):
                if dnum == 1 and dwire == _LEN:
                    src.retain(36)
                    shape.append(_read_dim(src, da, db))
    return oip_datatype(elem_type), shape, rank_known


def _read_dim(src: _Source, start: int, end: int) -> int:
    """Read TensorShapeProto.Dimension: dim_value=1 or dim_param=2; symbolic or missing → -1."""
    dim = -1
    for number, wire, a, _ in src.fields(start, end):
        # A oneof: the last member on the wire wins, as in protobuf.
        if number == 1 and wire == _VARINT:
            value = _int64(a)
            dim = value if value >= 0 else -1
        elif number == 2 and wire == _LEN:
            dim = -1
    return dim


def _read_tensor(src: _Source, start: int, end: int, files: set[str]) -> tuple[str, int]:
    """Read TensorProto's name and element count, noting external data; data fields are skipped."""
    name = ""
    count = 1
    location: str | None = None
    external = False
    for number, wire, a, b in src.fields(start, end):
        if number == 1:
            count *= _dims_product(src, start, wire, a, b)
        elif number == 8 and wire == _LEN:
            name = src.text(a, b)
        elif number == 13 and wire == _LEN:
            key, value = _read_entry(src, a, b)
            if key == "location":
                location = value
        elif number == 14 and wire == _VARINT:
            external = a == _EXTERNAL
        # raw_data (9), float_data (4), int32_data (5), string_data (6), int64_data (7),
        # double_data (10), uint64_data (11): spans the field iterator steps over unread.
    # Like onnx and onnxruntime, external_data entries count only when data_location says so.
    if external:
        if location is None:
            raise src.fail(start, f"tensor {name!r} is stored externally but names no location")
        path = _external_path(src, start, name, location)
        if path not in files:
            src.retain(len(path) + 64)
            files.add(path)
    return name, count


def _dims_product(src: _Source, tensor_start: int, wire: int, a: int, b: int) -> int:
    """The product of a repeated int64 dims field, unpacked (one varint) or packed (a run)."""
    # dims is unpacked in onnx.proto (proto2), but parsers must take the packed form too.
    if wire == _VARINT:
        return _dim(src, tensor_start, a)
    product = 1
    if wire == _LEN:
        pos = a
        while pos < b:
            value, pos = src.varint(pos, b)
            product *= _dim(src, tensor_start, value)
    return product


def _dim(src: _Source, tensor_start: int, value: int) -> int:
    """Check one dim of a stored tensor: stored tensors have no dynamic dims."""
    dim = _int64(value)
    if dim < 0:
        raise src.fail(tensor_start, f"tensor has a negative dimension {dim}")
    return dim


def _read_entry(src: _Source, start: int, end: int) -> tuple[str, str]:
    """Read StringStringEntryProto (key=1, value=2)."""
    key = value = ""
    for number, wire, a, b in src.fields(start, end):
        if number == 1 and wire == _LEN:
            key = src.text(a, b)
        elif number == 2 and wire == _LEN:
            value = src.text(a, b)
    return key, value


def _external_path(src: _Source, start: int, name: str, location: str) -> str:
    """Normalise an external data location, refusing what onnx refuses: escapes from the model's folder."""
    parts = location.replace("\\", "/").split("/")
    if (
        not location
        or location.startswith(("/", "\\"))
        or (len(location) > 1 and location[1] == ":")
    ):
        raise src.fail(
            start, f"tensor {name!r} has external data at non-relative path {location!r}"
        )
    if ".." in parts:
        raise src.fail(
            start, f"tensor {name!r} has external data outside the model folder: {location!r}"
        )
    return posixpath.normpath(location)


def _read_sparse_tensor(src: _Source, start: int, end: int, files: set[str]) -> tuple[str, int]:
    """Read SparseTensorProto (values=1, indices=2, dims=3): its name and dense element count."""
    name = ""
    count = 1
    for number, wire, a, b in src.fields(start, end):
        if number == 1 and wire == _LEN:
            # The spec names a sparse initializer by its values tensor.
            name, _ = _read_tensor(src, a, b, files)
        elif number == 2 and wire == _LEN:
            _read_tensor(src, a, b, files)
        elif number == 3:
            # Counted dense: a sparse initializer is a dense constant stored compactly.
            count *= _dims_product(src, start, wire, a, b)
    return name, count


def _scan_function(src: _Source, start: int, end: int, files: set[str]) -> None:
    """Scan FunctionProto's nodes (7) for externally stored attribute tensors."""
    for number, wire, a, b in src.fields(start, end):
        if number == 7 and wire == _LEN:
            _scan_node(src, a, b, files, 0)


def _scan_node(src: _Source, start: int, end: int, files: set[str], depth: int) -> None:
    """Scan NodeProto's attributes (5) for external data, as onnx.load does."""
    for number, wire, a, b in src.fields(start, end):
        if number == 5 and wire == _LEN:
            _scan_attribute(src, a, b, files, depth)


def _scan_attribute(src: _Source, start: int, end: int, files: set[str], depth: int) -> None:
    """Scan AttributeProto: t=5, tensors=10, sparse_tensor=22, sparse_tensors=23, g=6, graphs=11."""
    for number, wire, a, b in src.fields(start, end):
        if wire != _LEN:
            continue
        if number in (5, 10):
            _read_tensor(src, a, b, files)
        elif number in (22, 23):
            _read_sparse_tensor(src, a, b, files)
        elif number in (6, 11):
            _scan_subgraph(src, a, b, files, depth + 1)


def _scan_subgraph(src: _Source, start: int, end: int, files: set[str], depth: int) -> None:
    """Scan a subgraph (If/Loop/Scan body) for external data; its weights are not counted."""
    if depth > _MAX_GRAPH_DEPTH:
        raise src.fail(start, f"subgraphs nested more than {_MAX_GRAPH_DEPTH} deep")
    for number, wire, a, b in src.fields(start, end):
        if wire != _LEN:
            continue
        if number == 5:
            _read_tensor(src, a, b, files)
        elif number == 15:
            _read_sparse_tensor(src, a, b, files)
        elif number == 1:
            _scan_node(src, a, b, files, depth)
