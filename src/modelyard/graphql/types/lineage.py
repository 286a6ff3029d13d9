"""Lineage types: edges, the node union and whole graphs."""

from __future__ import annotations

from typing import Annotated

import strawberry

from modelyard.catalog import lineage
from modelyard.catalog.lineage import Relation
from modelyard.db.records import VersionLike
from modelyard.db.tables import DatasetVersionRow, LineageEdgeRow
from modelyard.graphql.context import Info
from modelyard.graphql.prefetch import soon
from modelyard.graphql.types.dataset import DatasetVersion
from modelyard.graphql.types.enums import RelationEnum
from modelyard.graphql.types.version import ModelVersion

LineageNode = Annotated[
    ModelVersion | DatasetVersion,
    strawberry.union("LineageNode", description="A model version or a dataset version."),
]


@strawberry.type(description="child → parent, with how the child came from the parent.")
class LineageEdge:
    relation: RelationEnum  # type: ignore[valid-type]
    child_id: strawberry.Private[int]
    parent_version_id: strawberry.Private[int | None]
    parent_dataset_id: strawberry.Private[int | None]
    depth: int = strawberry.field(description="Generations from the start of a walk (1 = direct).")

    @classmethod
    def from_row(cls, row: LineageEdgeRow) -> LineageEdge:
        return cls(
            relation=Relation(row.relation),
            child_id=row.child_id,
            parent_version_id=row.parent_version_id,
            parent_dataset_id=row.parent_dataset_id,
            depth=1,
        )

    @classmethod
    def from_walk(cls, edge: lineage.Edge) -> LineageEdge:
        return cls(
            relation=edge.relation,
            child_id=edge.child_id,
            parent_version_id=edge.parent_version_id,
            parent_dataset_id=edge.parent_dataset_id,
            depth=edge.depth,
        )

    @strawberry.field
    def child(self, info: Info) -> ModelVersion:
        return soon(info.context.loaders.version, self.child_id, _version)

    @strawberry.field
    def parent(self, info: Info) -> LineageNode:
        loaders = info.context.loaders
        if self.parent_version_id is not None:
            return soon(loaders.version, self.parent_version_id, _version)
        assert self.parent_dataset_id is not None
        return soon(loaders.dataset_version, self.parent_dataset_id, _dataset_version)


def _version(row: VersionLike) -> ModelVersion:
    return ModelVersion(row=row)


def _dataset_version(row: DatasetVersionRow) -> DatasetVersion:
    return DatasetVersion(row=row)


@strawberry.type(description="The versions and datasets around one version, and the edges between them.")
class LineageGraph:
    root: ModelVersion
    edges: list[LineageEdge]

    @strawberry.field(description="Every node the edges touch, the root first.")
    async def nodes(self, info: Info) -> list[LineageNode]:
        loaders = info.context.loaders
        version_ids = [self.root.row.id]
        dataset_ids: list[int] = []
        for e in self.edges:
            for vid in (e.child_id, e.parent_version_id):
                if vid is not None and vid not in version_ids:
                    version_ids.append(vid)
            if e.parent_dataset_id is not None and e.parent_dataset_id not in dataset_ids:
                dataset_ids.append(e.parent_dataset_id)
        versions = await loaders.version.load_many(version_ids)
        datasets = await loaders.dataset_version.load_many(dataset_ids)
        nodes: list[ModelVersion | DatasetVersion] = [ModelVersion(row=r) for r in versions]
        return nodes + [DatasetVersion(row=r) for r in datasets]
