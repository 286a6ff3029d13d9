"""Artifacts of a version and what its ONNX model declares (signature and facts)."""

from __future__ import annotations

from typing import Any

import strawberry

from modelyard.db.tables import ArtifactRow
from modelyard.graphql.scalars import JSON, Long


@strawberry.type(description="A file of a version: its path and the content-addressed blob holding it.")
class Artifact:
    row: strawberry.Private[ArtifactRow]

    @strawberry.field
    def path(self) -> str:
        return self.row.path

    @strawberry.field(description="`sha256:<hex>`; download from `/api/blobs/<digest>`.")
    def digest(self) -> str:
        return self.row.digest

    @strawberry.field(description="Size in bytes.")
    def size(self) -> Long:  # type: ignore[valid-type]
        return self.row.size

    @strawberry.field
    def media_type(self) -> str:
        return self.row.media_type


@strawberry.type(description="One input or output tensor: name, OIP datatype and shape (-1 is dynamic).")
class TensorSpec:
    name: str
    datatype: str
    shape: list[int]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=data["name"], datatype=data["datatype"], shape=list(data["shape"]))


@strawberry.type(description="The inputs and outputs of the version's ONNX model.")
class Signature:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@strawberry.type(description="Facts read from the ONNX model file, without loading its weights.")
class ModelInfo:
    file: str = strawberry.field(description="The artifact path of the ONNX model.")
    ir_version: int
    opset: JSON = strawberry.field(description="Operator set versions by domain (`ai.onnx` for the default).")
    producer_name: str
    producer_version: str
    parameter_count: Long  # type: ignore[valid-type]
    external_data_files: list[str]
