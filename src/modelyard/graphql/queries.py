"""Query root: thin resolvers over the catalog."""

from __future__ import annotations

import strawberry

from modelyard.catalog import datasets, lineage, search, versions
from modelyard.catalog.models import get_model
from modelyard.db.tables import DatasetRow, DatasetVersionRow, ModelRow, VersionRow
from modelyard.errors import NotFoundError
from modelyard.graphql.context import Info
from modelyard.graphql.inputs import ModelFilter, VersionFilter, VersionOrder
from modelyard.graphql.pagination import page_args
from modelyard.graphql.types.connection import Connection
from modelyard.graphql.types.dataset import Dataset, DatasetVersion
from modelyard.graphql.types.enums import DirectionEnum
from modelyard.graphql.types.lineage import LineageEdge, LineageGraph
from modelyard.graphql.types.model import Model
from modelyard.graphql.types.node import Node, parse_global_id
from modelyard.graphql.types.version import ModelVersion, check_depth

_NODES = {
    "Model": (ModelRow, Model),
    "ModelVersion": (VersionRow, ModelVersion),
    "Dataset": (DatasetRow, Dataset),
    "DatasetVersion": (DatasetVersionRow, DatasetVersion),
}


async def _or_none(coro: object) -> object:
    try:
        return await coro  # type: ignore[misc]
    except NotFoundError:
        return None


@strawberry.type
class Query:
    @strawberry.field(description="Any object by its global id.")
    async def node(self, id: strawberry.ID) -> Node | None:
        type_name, pk = parse_global_id(id)
        if type_name not in _NODES or pk == 0:
            return None
        table, view = _NODES[type_name]
        row = await table.get_or_none(id=pk)
        return view(row=row) if row else None  # type: ignore[call-arg]

    @strawberry.field(description="A model by name; null when there is none.")
    async def model(self, info: Info, name: str) -> Model | None:
        row = await _or_none(get_model(name))
        if row is None:
            return None
        info.context.loaders.prime_model(row)  # type: ignore[arg-type]
        return Model(row=row)  # type: ignore[arg-type]

    @strawberry.field(description="Models by name.")
    async def models(
        self, info: Info, first: int | None = None, after: str | None = None,
        filter: ModelFilter | None = None,
    ) -> Connection[Model]:
        limit, offset = page_args(first, after, info.context.settings.max_page_size)
        spec = filter.to_catalog() if filter else None
        rows, has_next = await search.search_models(spec, limit, offset)
        for row in rows:
            info.context.loaders.prime_model(row)

        async def count() -> int:
            return await search.model_query(spec).count()

        return Connection.page([Model(row=r) for r in rows], offset, has_next, count)

    @strawberry.field(description="The version a ref names: `name`, `name:3`, `name@alias`, `name@sha256:…`.")
    async def version(self, info: Info, ref: str) -> ModelVersion | None:
        row = await _or_none(versions.get_version(ref))
        return ModelVersion(row=row) if row else None  # type: ignore[arg-type]

    @strawberry.field(description="Versions across all models matching a typed filter.")
    async def versions(
        self, info: Info, first: int | None = None, after: str | None = None,
        filter: VersionFilter | None = None, order_by: VersionOrder | None = None,
    ) -> Connection[ModelVersion]:
        limit, offset = page_args(first, after, info.context.settings.max_page_size)
        page = await search.search_versions(
            filter.to_catalog() if filter else None, order_by.to_catalog() if order_by else None,
            limit, offset,
        )
        rows = await info.context.loaders.version.load_many(page.ids)

        async def count() -> int:
            return await search.count(page)

        return Connection.page([ModelVersion(row=r) for r in rows], offset, page.has_next, count)

    @strawberry.field(description="The lineage graph around a version, one recursive query per direction.")
    async def lineage(
        self, info: Info, ref: str, direction: DirectionEnum = lineage.Direction.BOTH,  # type: ignore[valid-type]
        depth: int = 3,
    ) -> LineageGraph:
        check_depth(info, depth)
        root = await versions.get_version(ref)
        info.context.loaders.prime_versions([root])
        edges = (await lineage.walk([root.id], lineage.Direction(direction), depth))[root.id]
        return LineageGraph(root=ModelVersion(row=root), edges=[LineageEdge.from_walk(e) for e in edges])

    @strawberry.field(description="A dataset by name; null when there is none.")
    async def dataset(self, name: str) -> Dataset | None:
        row = await _or_none(datasets.get_dataset(name))
        return Dataset(row=row) if row else None  # type: ignore[arg-type]
