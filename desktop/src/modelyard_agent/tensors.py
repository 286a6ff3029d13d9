"""Open Inference Protocol tensors: datatypes, JSON and the binary tensor data extension.

Spec: https://github.com/kserve/open-inference-protocol (inference_rest.md) and Triton's
binary_data extension: the body is a JSON header of `Inference-Header-Content-Length` bytes followed
by raw tensors, each input sized by `parameters.binary_data_size`, in the order of `inputs`. A
BYTES tensor is its elements each prefixed by a 4-byte little-endian length. Outputs go binary when
the request sets `parameters.binary_data_output` (all) or an output's `parameters.binary_data`
(also accepted as `binary_data_output`).

In memory a BYTES tensor is a numpy object array of `bytes`.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_BY_DTYPE = {dtype: name for name, dtype in DATATYPES.items()}


class InferenceError(Exception):
    """Base of the errors an inference request can meet."""

    status = 500


class InferenceInputError(InferenceError):
    """The request does not fit the protocol or the model's inputs (HTTP 400)."""

    status = 400


@dataclass
class InferRequest:
    """A decoded infer request: input arrays, the outputs asked for and which go binary."""

    inputs: dict[str, np.ndarray]
    outputs: list[str] | None
    binary_outputs: set[str] = field(default_factory=set)
    binary_all: bool = False
    id: str | None = None


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of an OIP datatype; InferenceInputError for an unknown one."""
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        raise InferenceInputError(
            f"unknown datatype {datatype!r}: expected one of {', '.join(DATATYPES)}"
        ) from None


def oip_datatype(dtype: np.dtype[Any]) -> str:
    """The OIP datatype of a numpy dtype (strings and bytes are BYTES)."""
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    try:
        return _BY_DTYPE[np.dtype(dtype)]
    except KeyError:
        raise InferenceError(f"numpy dtype {dtype} has no OIP datatype") from None


def _shape(spec: dict[str, Any], name: str) -> list[int]:
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InferenceInputError(f"input {name!r}: shape must be a list of non-negative integers")
    return shape


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item))
    return flat


def _check_values(name: str, datatype: str, values: list[Any]) -> None:
    if datatype == "BOOL":
        ok = all(isinstance(v, bool) for v in values)
    elif datatype == "BYTES":
        ok = all(isinstance(v, str) for v in values)
    elif datatype.startswith(("INT", "UINT")):
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        if ok and values:
            info = np.iinfo(DATATYPES[datatype])
            if min(values) < info.min or max(values) > info.max:
                raise InferenceInputError(f"input {name!r}: a value is out of range for {datatype}")
    else:
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not ok:
        raise InferenceInputError(f"input {name!r}: data does not match datatype {datatype}")


def decode_json_tensor(spec: dict[str, Any]) -> np.ndarray:
    """One OIP input whose `data` is JSON (flat or nested, row-major) as a numpy array."""
    name = str(spec.get("name"))
    datatype = str(spec.get("datatype"))
    dtype = numpy_dtype(datatype)
    shape = _shape(spec, name)
    if "data" not in spec:
        raise InferenceInputError(f"input {name!r} has no data and no binary_data_size")
    values = _flatten(spec["data"])
    if len(values) != math.prod(shape):
        raise InferenceInputError(
            f"input {name!r}: {len(values)} elements do not fill shape {shape}"
        )
    _check_values(name, datatype, values)
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = [v.encode() for v in values]
        return array.reshape(shape)
    return np.array(values, dtype=dtype).reshape(shape)


def decode_bytes_elements(raw: bytes, name: str = "tensor") -> list[bytes]:
    """Split a BYTES tensor's binary form: 4-byte little-endian length, then the element."""
    items: list[bytes] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise InferenceInputError(f"input {name!r}: truncated BYTES element length")
        (size,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + size > len(raw):
            raise InferenceInputError(f"input {name!r}: BYTES element runs past its data")
        items.append(bytes(raw[pos:pos + size]))
        pos += size
    return items


def encode_bytes_elements(array: np.ndarray) -> bytes:
    """A BYTES tensor in binary form: each element length-prefixed (4-byte little-endian)."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def decode_binary_tensor(spec: dict[str, Any], raw: bytes) -> np.ndarray:
    """One OIP input sent as raw bytes (binary extension) as a numpy array."""
    name = str(spec.get("name"))
    dtype = numpy_dtype(str(spec.get("datatype")))
    shape = _shape(spec, name)
    count = math.prod(shape)
    if dtype == np.object_:
        items = decode_bytes_elements(raw, name)
        if len(items) != count:
            raise InferenceInputError(f"input {name!r}: {len(items)} elements do not fill shape {shape}")
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    if len(raw) != count * dtype.itemsize:
        raise InferenceInputError(
            f"input {name!r}: {len(raw)} bytes do not fill shape {shape} of {spec.get('datatype')}"
        )
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)


def _binary_flag(params: Any, *keys: str) -> bool:
    if not isinstance(params, dict):
        return False
    return any(params.get(key) is True for key in keys)


def parse_infer_request(body: bytes, header_length: str | int | None = None) -> InferRequest:
    """Decode an infer request body; with a header length, raw tensors follow the JSON header."""
    if header_length is None or header_length == "":
        head, rest = body, b""
    else:
        try:
            size = int(header_length)
        except ValueError:
            raise InferenceInputError(f"{HEADER_LENGTH} is not an integer") from None
        if size < 0 or size > len(body):
            raise InferenceInputError(f"{HEADER_LENGTH} {size} exceeds the body ({len(body)} bytes)")
        head, rest = body[:size], body[size:]
    try:
        doc = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InferenceInputError(f"the request is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise InferenceInputError("the request needs an 'inputs' list of tensors")
    inputs: dict[str, np.ndarray] = {}
    pos = 0
    for spec in doc["inputs"]:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InferenceInputError("every input needs a 'name', 'shape', 'datatype' and data")
        name = spec["name"]
        if name in inputs:
            raise InferenceInputError(f"input {name!r} is given twice")
        params = spec.get("parameters") or {}
        nbytes = params.get("binary_data_size") if isinstance(params, dict) else None
        if nbytes is None:
            inputs[name] = decode_json_tensor(spec)
            continue
        if not isinstance(nbytes, int) or nbytes < 0 or pos + nbytes > len(rest):
            raise InferenceInputError(
                f"input {name!r}: binary_data_size {nbytes!r} does not fit the binary data sent"
                + ("" if header_length is not None else f" (no {HEADER_LENGTH} header)")
            )
        inputs[name] = decode_binary_tensor(spec, rest[pos:pos + nbytes])
        pos += nbytes
    if pos != len(rest):
        raise InferenceInputError(f"{len(rest) - pos} bytes of binary data belong to no input")
    request = InferRequest(inputs=inputs, outputs=None, id=doc.get("id") if isinstance(doc.get("id"), str) else None)
    request.binary_all = _binary_flag(doc.get("parameters"), "binary_data_output")
    wanted = doc.get("outputs")
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted):
            raise InferenceInputError("'outputs' must be a list of objects with a 'name'")
        request.outputs = [o["name"] for o in wanted]
        request.binary_outputs = {
            o["name"] for o in wanted
            if _binary_flag(o.get("parameters"), "binary_data", "binary_data_output")
        }
    return request


def _json_data(array: np.ndarray) -> list[Any]:
    flat = array.reshape(-1)
    if flat.dtype == np.object_ or flat.dtype.kind in ("U", "S"):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    if flat.dtype.kind == "f":
        return [None if not math.isfinite(v) else v for v in flat.astype(np.float64).tolist()]
    values: list[Any] = flat.tolist()
    return values


def encode_infer_response(
    model_name: str,
    model_version: str | None,
    outputs: dict[str, np.ndarray],
    binary: set[str] | None = None,
    request_id: str | None = None,
) -> tuple[bytes, int | None]:
    """The response body and, when some outputs are binary, the JSON header's length."""
    binary = binary or set()
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array in outputs.items():
        tensor: dict[str, Any] = {
            "name": name, "datatype": oip_datatype(array.dtype), "shape": list(array.shape),
        }
        if name in binary:
            raw = (
                encode_bytes_elements(array) if tensor["datatype"] == "BYTES"
                else np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            )
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = _json_data(array)
        tensors.append(tensor)
    doc: dict[str, Any] = {"model_name": model_name, "outputs": tensors}
    if model_version is not None:
        doc["model_version"] = model_version
    if request_id is not None:
        doc["id"] = request_id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not chunks:
        return head, None
    return head + b"".join(chunks), len(head)
