"""The `VersionComparison` type: two versions side by side (see `modelyard.catalog.compare`)."""

from __future__ import annotations

import strawberry

from modelyard.catalog import compare
from modelyard.graphql.context import Info
from modelyard.graphql.scalars import Long
from modelyard.graphql.types.artifact import Artifact
from modelyard.graphql.types.common import Metric, Param
from modelyard.graphql.types.dataset import DatasetVersion
from modelyard.graphql.types.enums import RelationEnum
from modelyard.graphql.types.lineage import LineageEdge, LineageNode
from modelyard.graphql.types.version import ModelVersion
from modelyard.graphql.visibility import visible_edges

ChangeEnum = strawberry.enum(
    compare.Change, name="Change",
    description="How an entry of version b differs from version a: SAME, CHANGED, ADDED (only in b), "
    "REMOVED (only in a).",
)
SideEnum = strawberry.enum(compare.Side, name="ParentSide", description="Which compared version has a parent.")


@strawberry.type(description="One param of either version; `a` or `b` is null where that version lacks it.")
class ParamDiff:
    key: str
    change: ChangeEnum  # type: ignore[valid-type]
    a: Param | None
    b: Param | None
    delta: float | None = strawberry.field(description="b − a, when both are INT or FLOAT params.")

    @classmethod
    def of(cls, c: compare.ParamChange) -> ParamDiff:
        return cls(key=c.key, change=c.change, a=Param.of(c.a) if c.a else None,
                   b=Param.of(c.b) if c.b else None, delta=c.delta)


@strawberry.type(description="The latest value of one metric in either version.")
class MetricDiff:
    key: str
    change: ChangeEnum  # type: ignore[valid-type]
    a: Metric | None
    b: Metric | None
    delta: float | None = strawberry.field(description="b − a of the latest values, when both have the metric.")

    @classmethod
    def of(cls, c: compare.MetricChange) -> MetricDiff:
        return cls(key=c.key, change=c.change, a=Metric.of(c.a) if c.a else None,
                   b=Metric.of(c.b) if c.b else None, delta=c.delta)


@strawberry.type(description="One artifact path of either version: CHANGED when the digests differ.")
class ArtifactDiff:
    path: str
    change: ChangeEnum  # type: ignore[valid-type]
    a: Artifact | None
    b: Artifact | None
    size_delta: Long | None = strawberry.field(  # type: ignore[valid-type]
        description="b's size − a's, in bytes, when both have the path.")

    @classmethod
    def of(cls, c: compare.ArtifactChange) -> ArtifactDiff:
        return cls(path=c.path, change=c.change, a=Artifact(row=c.a) if c.a else None,
                   b=Artifact(row=c.b) if c.b else None,
                   size_delta=None if c.size_delta is None else Long(c.size_delta))


@strawberry.type(description="A direct lineage parent of either version, with its relation.")
class ParentDiff:
    relation: RelationEnum  # type: ignore[valid-type]
    side: SideEnum  # type: ignore[valid-type]
    edge: strawberry.Private[LineageEdge]

    @strawberry.field(description="The parent: a model version or a dataset version.")
    async def parent(self, info: Info) -> LineageNode:
        loaders = info.context.loaders
        if self.edge.parent_version_id is not None:
            return ModelVersion(row=await loaders.version.load(self.edge.parent_version_id))
        assert self.edge.parent_dataset_id is not None
        return DatasetVersion(row=await loaders.dataset_version.load(self.edge.parent_dataset_id))


@strawberry.type(description="Two versions side by side, of one model or of two.")
class VersionComparison:
    a: ModelVersion = strawberry.field(description="The version `a` names: the \"before\" side.")
    b: ModelVersion = strawberry.field(description="The version `b` names: the \"after\" side.")
    params: list[ParamDiff] = strawberry.field(description="Every param of either version, by key.")
    metrics: list[MetricDiff] = strawberry.field(description="Every metric of either version, by key.")
    artifacts: list[ArtifactDiff] = strawberry.field(description="Every artifact of either version, by path.")
    parents: list[ParentDiff] = strawberry.field(
        description="Direct lineage parents of either version, in relation order: each in a only, in b only "
        "or in both. Parents the caller may not read are left out, as everywhere in lineage.")

    @classmethod
    async def of(cls, info: Info, c: compare.Comparison) -> VersionComparison:
        """The view of a comparison, hiding parents as lineage edges are hidden."""
        _prime(info, c)
        # A parent in both versions is one edge here: under private reads both versions are in the
        # reader's namespace (checked before the lookup), so only the parent decides.
        edges = [LineageEdge(relation=p.relation, child_id=c.b.id if p.side is compare.Side.B_ONLY else c.a.id,
                             parent_version_id=p.parent_version_id, parent_dataset_id=p.parent_dataset_id, depth=1)
                 for p in c.parents]
        visible = {id(e) for e in await visible_edges(info, edges)}
        return cls(
            a=ModelVersion(row=c.a), b=ModelVersion(row=c.b),
            params=[ParamDiff.of(p) for p in c.params],
            metrics=[MetricDiff.of(m) for m in c.metrics],
            artifacts=[ArtifactDiff.of(f) for f in c.artifacts],
            parents=[ParentDiff(relation=p.relation, side=p.side, edge=e)
                     for p, e in zip(c.parents, edges, strict=True) if id(e) in visible],
        )


def _prime(info: Info, c: compare.Comparison) -> None:
    """Hand the rows the comparison read to the loaders that `a { params }` and the like call
    (each list already in the loaders' order: by key, by path)."""
    loaders = info.context.loaders
    loaders.prime_versions([c.a, c.b])
    for row, side in ((c.a, "a"), (c.b, "b")):
        loaders.params.prime(row.id, [r for r in (getattr(x, side) for x in c.params) if r is not None])
        loaders.metrics.prime(row.id, [r for r in (getattr(x, side) for x in c.metrics) if r is not None])
        loaders.artifacts.prime(row.id, [r for r in (getattr(x, side) for x in c.artifacts) if r is not None])
