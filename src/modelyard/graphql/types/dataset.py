"""`Dataset` and `DatasetVersion`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from modelyard.db.tables import DatasetRow, DatasetVersionRow
from modelyard.graphql.context import Info
from modelyard.graphql.scalars import Long
from modelyard.graphql.types.node import Node
from modelyard.graphql.visibility import visible_edges

if TYPE_CHECKING:
    from modelyard.graphql.types.lineage import LineageEdge

EdgeT = Annotated["LineageEdge", strawberry.lazy("modelyard.graphql.types.lineage")]


@strawberry.type(description="One version of a dataset.")
class DatasetVersion(Node):
    row: strawberry.Private[DatasetVersionRow]

    @property
    def pk(self) -> int:
        return self.row.id

    @strawberry.field(description="The label its owner gave it, e.g. `2024-06`.")
    def version(self) -> str:
        return self.row.version

    @strawberry.field(description="`dataset@version`, usable as a lineage parent.")
    async def ref(self, info: Info) -> str:
        ds = await info.context.loaders.dataset.load(self.row.dataset_id)
        return f"{ds.full_name}@{self.row.version}"

    @strawberry.field
    async def dataset(self, info: Info) -> Dataset:
        return Dataset(row=await info.context.loaders.dataset.load(self.row.dataset_id))

    @strawberry.field
    def uri(self) -> str:
        return self.row.uri

    @strawberry.field
    def digest(self) -> str | None:
        return self.row.digest

    @strawberry.field(description="Size in bytes.")
    def size(self) -> Long | None:  # type: ignore[valid-type]
        return self.row.size

    @strawberry.field
    def description(self) -> str:
        return self.row.description

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field(description="Model versions trained or evaluated on this dataset version.")
    async def used_by(self, info: Info) -> list[EdgeT]:
        from modelyard.graphql.types.lineage import LineageEdge

        rows = await info.context.loaders.dataset_children.load(self.row.id)
        return await visible_edges(info, [LineageEdge.from_row(r) for r in rows])


@strawberry.type(description="A named series of dataset versions.")
class Dataset(Node):
    row: strawberry.Private[DatasetRow]

    @property
    def pk(self) -> int:
        return self.row.id

    @strawberry.field
    def name(self) -> str:
        return self.row.full_name

    @strawberry.field
    def description(self) -> str:
        return self.row.description

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field(description="Versions, newest first.")
    async def versions(self, info: Info) -> list[DatasetVersion]:
        rows = await info.context.loaders.dataset_versions.load(self.row.id)
        return [DatasetVersion(row=r) for r in rows]
