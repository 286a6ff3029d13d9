"""The `ModelVersion` type."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import strawberry
from strawberry.dataloader import DataLoader

from modelyard.catalog import policy
from modelyard.catalog.lineage import Direction
from modelyard.catalog.refs import check_key
from modelyard.catalog.versions import Status
from modelyard.db.records import VersionLike
from modelyard.db.tables import LineageEdgeRow
from modelyard.errors import LimitError
from modelyard.graphql.context import Info
from modelyard.graphql.execution import pure
from modelyard.graphql.prefetch import (
    check_keys,
    prefetch_ends,
    selected_edge_fields,
    soon,
    soon_many,
)
from modelyard.graphql.scalars import JSON, Long
from modelyard.graphql.types.artifact import Artifact, ModelInfo, Signature, TensorSpec
from modelyard.graphql.types.common import (
    Metric,
    MetricPoint,
    MetricSeries,
    Param,
    RunInfo,
    Tag,
    tags_of,
)
from modelyard.graphql.types.enums import StatusEnum
from modelyard.graphql.types.node import Node
from modelyard.graphql.visibility import visible_edges

if TYPE_CHECKING:
    from modelyard.graphql.types.lineage import LineageEdge
    from modelyard.graphql.types.model import Alias, Model

ModelT = Annotated["Model", strawberry.lazy("modelyard.graphql.types.model")]
AliasT = Annotated["Alias", strawberry.lazy("modelyard.graphql.types.model")]
EdgeT = Annotated["LineageEdge", strawberry.lazy("modelyard.graphql.types.lineage")]


V = TypeVar("V")
R = TypeVar("R")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _keyed(loader: DataLoader[tuple[int, str], V | None], keys: list[tuple[int, str]],
           convert: Callable[[V], R]) -> list[R]:
    """The rows found for `keys`, in their order, converted (an awaitable until all are loaded)."""
    return soon_many(loader, keys, lambda rows: [convert(r) for r in rows if r is not None])


def _edges(info: Info, loader: DataLoader[int, list[LineageEdgeRow]], version_id: int) -> list[LineageEdge]:
    """A version's direct edges the caller may see (at once when loaded and nothing is hidden)."""
    from modelyard.graphql.types.lineage import LineageEdge

    if policy.read_namespace(info.context.caller, info.context.settings.public_read) is None:
        return soon(loader, version_id, lambda rows: [LineageEdge.from_row(r) for r in rows])

    async def visible() -> list[LineageEdge]:
        return await visible_edges(info, [LineageEdge.from_row(r) for r in await loader.load(version_id)])

    return cast(list[LineageEdge], visible())


def check_depth(info: Info, depth: int) -> int:
    """Lineage depth must be 1..max_lineage_depth."""
    limit = info.context.settings.max_lineage_depth
    if depth < 1 or depth > limit:
        raise LimitError(f"lineage depth must be between 1 and {limit}, got {depth}")
    return depth


@strawberry.type(description="One numbered version of a model, with everything it carries.")
class ModelVersion(Node):
    """Columns of the row are plain attributes, copied once (resolvers cost more per field)."""

    row: strawberry.Private[VersionLike]
    number: int = 0
    status: StatusEnum = Status.READY  # type: ignore[valid-type]
    description: str = ""
    manifest_digest: str = strawberry.field(
        default="", description="sha256 of the canonical manifest: `name@<digest>` pins this version.")
    created_at: datetime = _EPOCH
    updated_at: datetime = _EPOCH
    created_by: str | None = None

    def __post_init__(self) -> None:
        row = self.row
        self.number = row.number
        self.status = Status(row.status)
        self.description = row.description
        self.manifest_digest = row.manifest_digest
        self.created_at = row.created_at
        self.updated_at = row.updated_at
        self.created_by = row.created_by

    @property
    def pk(self) -> int:
        return self.row.id

    @strawberry.field
    @pure
    def model(self, info: Info) -> ModelT:
        from modelyard.graphql.types.model import Model

        return soon(info.context.loaders.model, self.row.model_id, lambda row: Model(row=row))

    @strawberry.field(description="`name:number`, usable wherever a ref is taken.")
    @pure
    def ref(self, info: Info) -> str:
        number = self.row.number
        return soon(info.context.loaders.model, self.row.model_id, lambda model: f"{model.full_name}:{number}")

    @strawberry.field(description="Typed params, by key (only those named in `keys`, in that order, when given).")
    def params(self, info: Info, keys: list[str] | None = None) -> list[Param]:
        loaders = info.context.loaders
        if keys is None:
            return soon(loaders.params, self.row.id, lambda rows: [Param.of(r) for r in rows])
        return _keyed(loaders.param, [(self.row.id, k) for k in check_keys(keys, "param")], Param.of)

    @strawberry.field
    @pure
    def param(self, info: Info, key: str) -> Param | None:
        return soon(info.context.loaders.param, (self.row.id, check_key(key, "param")),
                    lambda row: Param.of(row) if row else None)

    @strawberry.field(description="The latest value of each metric (only those named in `keys`, in that "
                      "order, when given).")
    def metrics(self, info: Info, keys: list[str] | None = None) -> list[Metric]:
        loaders = info.context.loaders
        if keys is None:
            return soon(loaders.metrics, self.row.id, lambda rows: [Metric.of(r) for r in rows])
        return _keyed(loaders.metric, [(self.row.id, k) for k in check_keys(keys, "metric")], Metric.of)

    @strawberry.field
    @pure
    def metric(self, info: Info, key: str) -> Metric | None:
        return soon(info.context.loaders.metric, (self.row.id, check_key(key, "metric")),
                    lambda row: Metric.of(row) if row else None)

    @strawberry.field(description="Every logged value of one metric, oldest first.")
    async def metric_history(self, info: Info, key: str) -> list[MetricPoint]:
        rows = await info.context.loaders.metric_history.load((self.row.id, check_key(key, "metric")))
        return [MetricPoint.of(r) for r in rows]

    @strawberry.field(description="Every logged value of every metric, by key (one query for all).")
    async def metric_series(self, info: Info) -> list[MetricSeries]:
        by_key: dict[str, list[MetricPoint]] = {}
        for row in await info.context.loaders.metric_points.load(self.row.id):
            by_key.setdefault(row.key, []).append(MetricPoint.of(row))
        return [MetricSeries(key=k, points=v) for k, v in sorted(by_key.items())]

    @strawberry.field
    def tags(self, info: Info) -> list[Tag]:
        return soon(info.context.loaders.tags, self.row.id, tags_of)

    @strawberry.field
    def aliases(self, info: Info) -> list[AliasT]:
        from modelyard.graphql.types.model import Alias

        return soon(info.context.loaders.version_aliases, self.row.id, lambda rows: [Alias.of(r) for r in rows])

    @strawberry.field(description="The files of this version, by path.")
    async def artifacts(self, info: Info) -> list[Artifact]:
        return [Artifact(row=r) for r in await info.context.loaders.artifacts.load(self.row.id)]

    @strawberry.field(description="Bytes of all artifacts.")
    async def total_size(self, info: Info) -> Long:  # type: ignore[valid-type]
        return sum(r.size for r in await info.context.loaders.artifacts.load(self.row.id))

    @strawberry.field(description="Inputs and outputs of the ONNX model, when the version holds one.")
    def signature(self) -> Signature | None:
        facts: dict[str, Any] | None = self.row.onnx
        if not facts:
            return None
        return Signature(
            inputs=[TensorSpec.from_json(t) for t in facts["inputs"]],
            outputs=[TensorSpec.from_json(t) for t in facts["outputs"]],
        )

    @strawberry.field(description="Opset, IR version, producer and parameter count of the ONNX model.")
    def model_info(self) -> ModelInfo | None:
        facts: dict[str, Any] | None = self.row.onnx
        if not facts:
            return None
        return ModelInfo(
            file=facts["file"], ir_version=facts["irVersion"], opset=JSON(facts["opset"]),
            producer_name=facts["producerName"], producer_version=facts["producerVersion"],
            parameter_count=facts["parameterCount"], external_data_files=facts.get("externalDataFiles") or [],
        )

    @strawberry.field
    def run(self) -> RunInfo | None:
        return RunInfo.from_json(self.row.run)

    @strawberry.field(description="Direct parents: the versions and datasets this one came from.")
    def parents(self, info: Info) -> list[EdgeT]:
        return _edges(info, info.context.loaders.parent_edges, self.row.id)

    @strawberry.field(description="Direct children: versions made from this one.")
    def children(self, info: Info) -> list[EdgeT]:
        return _edges(info, info.context.loaders.child_edges, self.row.id)

    @strawberry.field(description="Edges up to `depth` generations up, nearest first (one recursive query).")
    async def ancestors(self, info: Info, depth: int = 10) -> list[EdgeT]:
        from modelyard.graphql.types.lineage import LineageEdge

        key = (self.row.id, Direction.UP.value, check_depth(info, depth))
        edges = await visible_edges(info, [LineageEdge.from_walk(e) for e in await info.context.loaders.walks.load(key)])
        await prefetch_ends(info.context.loaders, edges, selected_edge_fields(info))
        return edges

    @strawberry.field(description="Edges up to `depth` generations down, nearest first (one recursive query).")
    async def descendants(self, info: Info, depth: int = 10) -> list[EdgeT]:
        from modelyard.graphql.types.lineage import LineageEdge

        key = (self.row.id, Direction.DOWN.value, check_depth(info, depth))
        edges = await visible_edges(info, [LineageEdge.from_walk(e) for e in await info.context.loaders.walks.load(key)])
        await prefetch_ends(info.context.loaders, edges, selected_edge_fields(info))
        return edges
